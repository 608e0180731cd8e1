-- 0015_audit_blocks_1024: nothing changes on PostgreSQL.
--
-- On SQLite this migration files the audit log's entries again in blocks
-- of 1,024 events instead of 16,384 (see the SQLite migration of the same
-- name). PostgreSQL keeps ordinary indexes on the audit log (0009). The
-- migration is here so that both stores carry the same schema versions,
-- which backups name.
SELECT 1;
