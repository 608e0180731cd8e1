-- 0010_lookups_deferred: the blind index's foreign key to subjects is
-- checked when the transaction commits, not after each statement.
--
-- SQLite keeps a statement journal, a copy of every page the statement
-- changes, for a multi-row INSERT that could fail half way and then has
-- to undo itself: one with an immediate foreign key, or a NOT NULL or
-- other constraint whose conflict action is ABORT. A batch of lookup
-- keys lands on random leaves of both of this table's B-trees, so the
-- journal copied about a page a key, a tenth of a bulk load's writer
-- (BENCHMARKS.md, twenty-first session). With the key DEFERRABLE
-- INITIALLY DEFERRED, and the store's multi-row inserts written INSERT OR
-- FAIL (sqlutil.InsertRows), such a statement cannot abort and keeps no
-- journal; a failed one still fails its whole transaction or savepoint.
-- The key is still enforced: a transaction that leaves a lookup key
-- without its subject does not commit.
--
-- SQLite cannot change a constraint in place, so the table is rebuilt:
-- on a store of a million customers this copies about four million rows
-- once, checking each one's subject.
CREATE TABLE lookups_0010 (
	field      TEXT NOT NULL,
	hash       BLOB NOT NULL,
	subject_id TEXT NOT NULL REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,
	PRIMARY KEY (field, hash)
) STRICT, WITHOUT ROWID;

INSERT INTO lookups_0010 (field, hash, subject_id)
	SELECT field, hash, subject_id FROM lookups ORDER BY field, hash;

DROP TABLE lookups;

ALTER TABLE lookups_0010 RENAME TO lookups;

CREATE INDEX lookups_subject_id ON lookups (subject_id);
