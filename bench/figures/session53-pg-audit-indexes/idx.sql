CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_time ON audit_events (time);
ANALYZE audit_events;
