-- 0009_audit_blocks: nothing changes on PostgreSQL.
--
-- On SQLite this migration replaces the audit log's per-event indexes
-- with entries filed in blocks of events (see the SQLite migration of the
-- same name): there every commit is written to the WAL as whole pages by
-- the one writer, and the index pages of a read's audit event were most
-- of a read's commit. PostgreSQL logs an index insert as a small record
-- and writes the pages back in the background, so its indexes stay.
SELECT 1;
