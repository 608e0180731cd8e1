-- 0001_init: the initial custos schema.
--
-- Conventions: times are INTEGER Unix microseconds (UTC); ids are opaque
-- prefixed TEXT; lists are JSON TEXT arrays; sealed values are BLOBs the store
-- never reads. Tables are STRICT so a wrong type fails instead of being kept.

-- A subject's sealed fields in one row (see sqlutil.EncodeSealed).
CREATE TABLE subjects (
	id         TEXT PRIMARY KEY,
	sealed     BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

-- Data keys live apart from the data they protect, with no foreign key:
-- a subject's key is inserted before the subject and is deleted on its own
-- (crypto-shredding).
CREATE TABLE data_keys (
	subject_id  TEXT PRIMARY KEY,
	version     INTEGER NOT NULL,
	kek_version INTEGER NOT NULL,
	wrapped     BLOB NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX data_keys_kek_version ON data_keys (kek_version);

-- Blind index: (field, HMAC of the normalised value) → subject.
CREATE TABLE lookups (
	field      TEXT NOT NULL,
	hash       BLOB NOT NULL,
	subject_id TEXT NOT NULL REFERENCES subjects (id),
	PRIMARY KEY (field, hash)
) STRICT, WITHOUT ROWID;

CREATE INDEX lookups_subject_id ON lookups (subject_id);

CREATE TABLE records (
	id          TEXT PRIMARY KEY,
	subject_id  TEXT NOT NULL REFERENCES subjects (id),
	type        TEXT NOT NULL,
	category    TEXT NOT NULL,
	occurred_at INTEGER NOT NULL,
	created_at  INTEGER NOT NULL,
	sealed      BLOB NOT NULL
) STRICT;

CREATE INDEX records_subject_id_occurred_at ON records (subject_id, occurred_at);

-- AUTOINCREMENT: a ledger seq is never reused, so "after seq N" stays valid.
CREATE TABLE shred_ledger (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	subject_id TEXT NOT NULL,
	shred_at   INTEGER NOT NULL,
	reason     TEXT NOT NULL,
	actor_id   TEXT NOT NULL
) STRICT;

CREATE TABLE import_rows (
	job        TEXT NOT NULL,
	line       INTEGER NOT NULL,
	status     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	PRIMARY KEY (job, line)
) STRICT;

CREATE TABLE principals (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	kind       TEXT NOT NULL,
	roles      TEXT NOT NULL, -- JSON array
	blocked    INTEGER NOT NULL CHECK (blocked IN (0, 1)),
	created_at INTEGER NOT NULL
) STRICT;

-- Only the SHA-256 of a token is stored.
CREATE TABLE api_keys (
	id           TEXT PRIMARY KEY,
	principal_id TEXT NOT NULL REFERENCES principals (id),
	hash         BLOB NOT NULL UNIQUE,
	created_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX api_keys_principal_id ON api_keys (principal_id);

-- The hash-chained audit log. seq is set by the caller (head + 1), so a
-- second appender with the same seq fails with a conflict.
CREATE TABLE audit_events (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER NOT NULL,
	actor_id   TEXT NOT NULL,
	action     TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	fields     TEXT NOT NULL, -- JSON array
	purposes   TEXT NOT NULL, -- JSON array
	decision   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	request_id TEXT NOT NULL,
	prev_hash  BLOB,
	hash       BLOB NOT NULL
) STRICT;

CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_time ON audit_events (time);

CREATE TABLE audit_checkpoints (
	seq       INTEGER PRIMARY KEY,
	hash      BLOB NOT NULL,
	time      INTEGER NOT NULL,
	key_id    TEXT NOT NULL,
	signature BLOB NOT NULL
) STRICT;

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
