-- Privacy notices (C3): one row per published version, immutable; content
-- is the canonical JSON the hash was computed over.
CREATE TABLE notices (
	version      INTEGER PRIMARY KEY,
	hash         TEXT NOT NULL,
	content      TEXT NOT NULL,
	published_at BIGINT NOT NULL,
	published_by TEXT COLLATE "C" NOT NULL
);

-- Consent decisions (C4): append-only history per subject; the latest row
-- per (purpose, scope) is the one in force. Evidence and guardian details
-- are personal data and live in sealed, under the subject's data key.
CREATE TABLE consents (
	seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id             TEXT COLLATE "C" NOT NULL UNIQUE,
	subject_id     TEXT COLLATE "C" NOT NULL,
	purpose        TEXT NOT NULL,
	scope          TEXT NOT NULL,
	action         TEXT NOT NULL,
	notice_version INTEGER NOT NULL,
	at             BIGINT NOT NULL,
	channel        TEXT NOT NULL,
	initiated_by   TEXT NOT NULL,
	by_guardian    SMALLINT NOT NULL,
	actor_id       TEXT COLLATE "C" NOT NULL,
	sealed         BYTEA
);

CREATE INDEX consents_subject ON consents (subject_id, seq);
