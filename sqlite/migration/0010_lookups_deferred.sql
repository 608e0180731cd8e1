-- 0010_lookups_deferred: the blind index's foreign key to subjects is
-- checked when the transaction commits, not after each statement.
--
-- SQLite keeps a statement journal, a copy of every page the statement
-- changes, for a multi-row INSERT that could fail half way and then has
-- to undo itself: one with an immediate foreign key, or a NOT NULL or
-- other constraint whose conflict action is ABORT. A batch of lookup
-- keys lands on random leaves of both of this table's B-trees, so the
-- journal copied about a page a key (BENCHMARKS.md, twenty-first
-- session). With the key DEFERRABLE INITIALLY DEFERRED, and the store's
-- multi-row inserts written INSERT OR FAIL (sqlutil.InsertRows), such a
-- statement cannot abort and keeps no journal; a failed one still fails
-- its whole transaction or savepoint. The key is still enforced: a
-- transaction that leaves a lookup key without its subject does not
-- commit.
--
-- SQLite cannot change a constraint with ALTER TABLE. Rebuilding the
-- table took longer than the query timeout on a store of a million
-- customers (45 s, 1.6 GB of memory) and would take minutes at ten
-- million, so the constraint's text is edited in place, as SQLite's
-- documentation allows for changes that leave the stored rows as they
-- are (lang_altertable.html, "Making Other Kinds Of Table Schema
-- Changes"): the foreign key's timing is not part of any row or index.
PRAGMA writable_schema = ON;

UPDATE sqlite_schema
	SET sql = replace(sql, 'REFERENCES subjects (id),', 'REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,')
	WHERE type = 'table' AND name = 'lookups';

-- RESET turns schema editing off and has this connection read the schema
-- again, edited; a syntax error in the edit fails here, and the
-- transaction rolls back.
PRAGMA writable_schema = RESET;

-- Creating and dropping a table moves the schema cookie on, so that every
-- other connection, in this process or another, reads the schema again.
CREATE TABLE migration_0010 (one INTEGER);
DROP TABLE migration_0010;

-- The edit must have taken: if the table's text did not hold the key as
-- 0001 wrote it, this inserts a NULL into a NOT NULL column, and the
-- migration fails instead of passing without effect.
INSERT INTO meta (key, value)
	SELECT '0010_lookups_deferred', NULL
	WHERE NOT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'lookups'
		AND sql LIKE '%REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,%');
