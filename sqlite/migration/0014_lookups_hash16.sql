-- 0014_lookups_hash16: blind-index keys are 16 bytes, the first half of
-- their HMAC-SHA-256 (keys.IndexSize says why that is enough), where they
-- were 32. Every stored key is cut to its first 16 bytes, which is what
-- this custos computes for the same value.
--
-- A key's first 16 bytes sort as the whole key does, so the table is
-- rebuilt by copying it in its own order into a new one, which appends
-- every row at the right edge: about 6 s a million customers here, where
-- an UPDATE of the keys in place moved each row within a random leaf and
-- took 203 s (BENCHMARKS.md, fifty-fourth session). If two keys of a
-- field shared their first 16 bytes (about 1e-21 at a billion), the
-- primary key stops the copy and the migration rolls back, changing
-- nothing.
--
-- The new table is created without its foreign key, which SQLite would
-- check for every copied row (32 s a million customers); the rows come
-- from a table that enforced the same key. The key is then written into
-- the table's text as 0010 did, which SQLite's documentation allows for
-- changes that leave the stored rows as they are (lang_altertable.html,
-- "Making Other Kinds Of Table Schema Changes").
CREATE TABLE lookups_0014 (
	field      TEXT NOT NULL,
	hash       BLOB NOT NULL,
	subject_id TEXT NOT NULL,
	PRIMARY KEY (field, hash)
) STRICT, WITHOUT ROWID;

INSERT INTO lookups_0014 (field, hash, subject_id)
	SELECT field, substr(hash, 1, 16), subject_id FROM lookups ORDER BY field, hash;

DROP TABLE lookups;

ALTER TABLE lookups_0014 RENAME TO lookups;

CREATE INDEX lookups_subject_id ON lookups (subject_id);

PRAGMA writable_schema = ON;

UPDATE sqlite_schema
	SET sql = replace(sql, 'subject_id TEXT NOT NULL,', 'subject_id TEXT NOT NULL REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,')
	WHERE type = 'table' AND name = 'lookups';

-- RESET turns schema editing off and has this connection read the schema
-- again, edited; a syntax error in the edit fails here, and the
-- transaction rolls back.
PRAGMA writable_schema = RESET;

-- Moves the schema cookie on, so that every other connection reads the
-- schema again (0010).
CREATE TABLE migration_0014 (one INTEGER);
DROP TABLE migration_0014;

-- The edit must have taken: if not, this inserts a NULL into a NOT NULL
-- column and the migration fails.
INSERT INTO meta (key, value)
	SELECT '0014_lookups_hash16', NULL
	WHERE NOT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'lookups'
		AND sql LIKE '%subject_id TEXT NOT NULL REFERENCES subjects (id) DEFERRABLE INITIALLY DEFERRED,%');
