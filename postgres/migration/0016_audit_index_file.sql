-- 0016_audit_index_file: nothing changes on PostgreSQL.
--
-- On SQLite this migration moves the audit log's index out of the
-- database into a file of its own (see the SQLite migration of the same
-- name). PostgreSQL keeps ordinary indexes on the audit log (0009). The
-- migration is here so that both stores carry the same schema versions,
-- which backups name.
SELECT 1;
