-- 0001_init: the initial custos schema (PostgreSQL).
--
-- The same tables, columns and indexes as sqlite/migration/0001_init.sql.
-- Conventions: times are BIGINT Unix microseconds (UTC); ids are opaque
-- prefixed TEXT in the "C" collation, so ordering and range scans compare
-- bytes exactly as SQLite does whatever the database's locale; lists are
-- JSONB arrays (or JSON null for a nil list); sealed values are BYTEA the
-- store never reads.

-- A subject's sealed fields in one row (see sqlutil.EncodeSealed).
CREATE TABLE subjects (
	id         TEXT COLLATE "C" PRIMARY KEY,
	sealed     BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- Data keys live apart from the data they protect, with no foreign key:
-- a subject's key is inserted before the subject and is deleted on its own
-- (crypto-shredding).
CREATE TABLE data_keys (
	subject_id  TEXT COLLATE "C" PRIMARY KEY,
	version     INTEGER NOT NULL,
	kek_version INTEGER NOT NULL,
	wrapped     BYTEA NOT NULL,
	created_at  BIGINT NOT NULL
);

CREATE INDEX data_keys_kek_version ON data_keys (kek_version);

-- Blind index: (field, HMAC of the normalised value) → subject.
CREATE TABLE lookups (
	field      TEXT COLLATE "C" NOT NULL,
	hash       BYTEA NOT NULL,
	subject_id TEXT COLLATE "C" NOT NULL REFERENCES subjects (id),
	PRIMARY KEY (field, hash)
);

CREATE INDEX lookups_subject_id ON lookups (subject_id);

CREATE TABLE records (
	id          TEXT COLLATE "C" PRIMARY KEY,
	subject_id  TEXT COLLATE "C" NOT NULL REFERENCES subjects (id),
	type        TEXT COLLATE "C" NOT NULL,
	category    TEXT NOT NULL,
	occurred_at BIGINT NOT NULL,
	created_at  BIGINT NOT NULL,
	sealed      BYTEA NOT NULL
);

CREATE INDEX records_subject_id_occurred_at ON records (subject_id, occurred_at);

-- An identity column is never reused, so "after seq N" stays valid; the
-- store appends under the audit append lock, so seq order is commit order.
CREATE TABLE shred_ledger (
	seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	subject_id TEXT COLLATE "C" NOT NULL,
	shred_at   BIGINT NOT NULL,
	reason     TEXT NOT NULL,
	actor_id   TEXT COLLATE "C" NOT NULL
);

CREATE TABLE import_rows (
	job        TEXT COLLATE "C" NOT NULL,
	line       INTEGER NOT NULL,
	status     TEXT NOT NULL,
	subject_id TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (job, line)
);

CREATE TABLE principals (
	id         TEXT COLLATE "C" PRIMARY KEY,
	name       TEXT NOT NULL,
	kind       TEXT NOT NULL,
	roles      JSONB NOT NULL CHECK (jsonb_typeof(roles) IN ('array', 'null')),
	blocked    BOOLEAN NOT NULL,
	created_at BIGINT NOT NULL
);

-- Only the SHA-256 of a token is stored.
CREATE TABLE api_keys (
	id           TEXT COLLATE "C" PRIMARY KEY,
	principal_id TEXT COLLATE "C" NOT NULL REFERENCES principals (id),
	hash         BYTEA NOT NULL UNIQUE,
	created_at   BIGINT NOT NULL
);

CREATE INDEX api_keys_principal_id ON api_keys (principal_id);

-- The hash-chained audit log. seq is set by the caller (head + 1) while it
-- holds the append lock (see Tx.AuditHead), so a second appender with the
-- same seq fails with a conflict.
CREATE TABLE audit_events (
	seq        BIGINT PRIMARY KEY,
	time       BIGINT NOT NULL,
	actor_id   TEXT COLLATE "C" NOT NULL,
	action     TEXT COLLATE "C" NOT NULL,
	subject_id TEXT COLLATE "C" NOT NULL,
	fields     JSONB NOT NULL CHECK (jsonb_typeof(fields) IN ('array', 'null')),
	purposes   JSONB NOT NULL CHECK (jsonb_typeof(purposes) IN ('array', 'null')),
	decision   TEXT NOT NULL,
	reason     TEXT NOT NULL,
	request_id TEXT NOT NULL,
	prev_hash  BYTEA,
	hash       BYTEA NOT NULL
);

CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
CREATE INDEX audit_events_action ON audit_events (action);
CREATE INDEX audit_events_time ON audit_events (time);

CREATE TABLE audit_checkpoints (
	seq       BIGINT PRIMARY KEY,
	hash      BYTEA NOT NULL,
	time      BIGINT NOT NULL,
	key_id    TEXT NOT NULL,
	signature BYTEA NOT NULL
);

CREATE TABLE meta (
	key   TEXT COLLATE "C" PRIMARY KEY,
	value TEXT NOT NULL
);
