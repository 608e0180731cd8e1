-- 0009_audit_subject_blocks: the audit log's index by subject, built in
-- blocks of consecutive events instead of one event at a time.
--
-- audit_events_subject_id put every event on a random leaf of a B-tree
-- keyed by subject: a read's audit event wrote one 4 KiB WAL frame for
-- a ~40-byte entry, the largest part of a read's commit, and at 10M
-- customers a leaf the writer's cache did not hold (BENCHMARKS.md,
-- thirteenth session). Only the audit query by subject reads it.
--
-- Now the writer files events into audit_subject_blocks after they are
-- committed, a few thousand at a time, sorted (auditindex.go). An entry
-- is keyed by its block (seq >> 14: 16,384 consecutive events), so one
-- filing writes into the pages of one block only, a few dozen. A query
-- by subject probes each block once, and scans the events not yet filed:
-- those after audit_subject_indexed.seq, which every event up to is
-- filed under. Both tables are derived from audit_events and are not
-- dumped; a store loaded from a dump files its events again.
CREATE TABLE audit_subject_blocks (
	block      INTEGER NOT NULL,
	subject_id TEXT NOT NULL,
	seq        INTEGER NOT NULL,
	PRIMARY KEY (block, subject_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit_subject_indexed (
	one INTEGER PRIMARY KEY CHECK (one = 1),
	seq INTEGER NOT NULL
) STRICT;

INSERT INTO audit_subject_blocks (block, subject_id, seq)
	SELECT seq >> 14, subject_id, seq FROM audit_events ORDER BY 1, 2, 3;

INSERT INTO audit_subject_indexed (one, seq) SELECT 1, coalesce(max(seq), 0) FROM audit_events;

DROP INDEX audit_events_subject_id;
