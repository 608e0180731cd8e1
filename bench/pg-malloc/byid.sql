\set n random(1, :subjects)
SELECT id FROM ids WHERE n = :n \gset
SELECT s.id, CASE WHEN row_number() OVER (ORDER BY c.seq) = 1 THEN s.sealed END, s.created_at, s.updated_at, s.restricted_until, k.version, k.kek_version, k.wrapped, k.created_at, c.seq, c.id, c.purpose, c.scope, c.action, c.notice_version, c.at, c.channel, c.initiated_by, c.by_guardian, c.actor_id, c.sealed FROM subjects s LEFT JOIN data_keys k ON k.subject_id = s.id LEFT JOIN consents c ON c.subject_id = s.id WHERE s.id = :id ORDER BY c.seq;
