-- 0015_audit_blocks_1024: the audit log's filed entries in blocks of
-- 1,024 events (seq >> 10) instead of 16,384 (seq >> 14).
--
-- The writer files 1,024 events at a time (auditindex.go). In blocks of
-- 16,384 each filing put its subject entries on random leaves of its
-- block, up to some 250 pages that the block's sixteen filings wrote
-- again and again, and split pages in the middle of the B-tree for the
-- actor, action and time entries. With blocks of one filing's size, a
-- filing's entries go into the last block filed and the ones after it,
-- at the B-tree's right edge (BENCHMARKS.md, fifty-fifth session).
-- Queries probe up to sixteen blocks in one statement, so a rare filter
-- still costs one statement per 16,384 events.
--
-- The events filed so far are filed again under the new blocks, sorted,
-- so that the table is written in key order; the mark stays where it
-- was. Entries are derived data, outside the hash chain.
DELETE FROM audit_blocks;

INSERT INTO audit_blocks (block, key, seq)
	SELECT seq >> 10, 's' || subject_id, seq FROM audit_events
		WHERE seq <= coalesce((SELECT seq FROM audit_blocks_filed), 0)
	UNION ALL SELECT seq >> 10, 'a' || actor_id, seq FROM audit_events
		WHERE seq <= coalesce((SELECT seq FROM audit_blocks_filed), 0)
	UNION ALL SELECT seq >> 10, 'c' || action, seq FROM audit_events
		WHERE seq <= coalesce((SELECT seq FROM audit_blocks_filed), 0)
	UNION ALL SELECT seq >> 10, 't' || printf('%020d', max(time, 0)), seq FROM audit_events
		WHERE seq <= coalesce((SELECT seq FROM audit_blocks_filed), 0)
	ORDER BY 1, 2, 3;
