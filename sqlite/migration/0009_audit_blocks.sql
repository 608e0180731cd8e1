-- 0009_audit_blocks: the audit log's indexes, built in blocks of
-- consecutive events instead of one event at a time.
--
-- The indexes on subject_id, actor_id, action and time put every event's
-- entries on their B-trees' pages one commit at a time, and SQLite's WAL
-- takes whole pages: the subject's entry on a random leaf, the others on
-- the last leaf of their key. That was most of a read's commit (a read's
-- only write is its audit event), and at 10M customers a subject leaf the
-- writer's cache did not hold (BENCHMARKS.md, thirteenth session). Only
-- the audit query (GET /v1/audit) reads them.
--
-- Now the writer files committed events into audit_blocks afterwards, a
-- few thousand at a time, sorted (auditindex.go). Each event has four
-- entries, keyed by its block (seq >> 14: 16,384 consecutive events) and
-- a key: 's' + subject id, 'a' + actor id, 'c' + action, 't' + its time
-- in microseconds as 20 digits. One filing writes into the pages of one
-- block only. A query probes each block once for its most selective
-- filter and scans the events not yet filed: those after
-- audit_blocks_filed.seq, which every event up to is filed under. Both
-- tables are derived from audit_events and are not dumped; a store
-- loaded from a dump files its events again.
CREATE TABLE audit_blocks (
	block INTEGER NOT NULL,
	key   TEXT NOT NULL,
	seq   INTEGER NOT NULL,
	PRIMARY KEY (block, key, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_blocks_filed (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	seq INTEGER NOT NULL
) STRICT;

INSERT INTO audit_blocks (block, key, seq)
	SELECT seq >> 14, 's' || subject_id, seq FROM audit_events
	UNION ALL SELECT seq >> 14, 'a' || actor_id, seq FROM audit_events
	UNION ALL SELECT seq >> 14, 'c' || action, seq FROM audit_events
	UNION ALL SELECT seq >> 14, 't' || printf('%020d', max(time, 0)), seq FROM audit_events
	ORDER BY 1, 2, 3;

INSERT INTO audit_blocks_filed (one, seq) SELECT 1, coalesce(max(seq), 0) FROM audit_events;

DROP INDEX audit_events_subject_id;
DROP INDEX audit_events_actor_id;
DROP INDEX audit_events_action;
DROP INDEX audit_events_time;
