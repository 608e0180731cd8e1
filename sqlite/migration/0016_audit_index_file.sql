-- 0016_audit_index_file: the audit log's index moves out of the database,
-- into a file of its own (custos.db-auditindex).
--
-- Until now the writer filed the index between its commit groups, holding
-- SQLite's one write lock for 5–9 ms a chunk of 1,024 events while every
-- write waited, a read's audit event included (BENCHMARKS.md, fifty-sixth
-- to fifty-eighth sessions). In a file of its own, with its own WAL and
-- lock, a goroutine files it beside the writer (sqlite/auditindex.go).
--
-- The entries are derived data, outside the hash chain: the tables go,
-- and the filer files the whole log again in the background, about 8 µs
-- an event, while no group commits; audit queries scan the events not
-- filed yet meanwhile, with the same answers, more slowly.
DROP TABLE audit_blocks;

DROP TABLE audit_blocks_filed;
