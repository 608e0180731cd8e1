-- 0009_audit_subject_blocks: nothing changes on PostgreSQL.
--
-- On SQLite this migration replaces the audit log's per-event index by
-- subject with one filed in blocks of events (see the SQLite migration of
-- the same name): there every commit is written to the WAL as whole pages
-- by the one writer, and a random 4 KiB leaf per read's audit event was
-- most of a read's commit. PostgreSQL writes changed index pages back in
-- the background and logs each insert as a small record, so
-- audit_events_subject_id stays.
SELECT 1;
