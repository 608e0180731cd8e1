-- 0005_retention: retention rules' state (L1–L3); the same tables as
-- sqlite/migration/0005_retention.sql.
--
-- restricted_until (Unix microseconds, 0 = not restricted): data in the
-- "restricted" state is kept but locked and excluded from every use until
-- then (PIPL Art. 47: a legal retention period still runs).
ALTER TABLE subjects ADD COLUMN restricted_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN restricted_until BIGINT NOT NULL DEFAULT 0;

-- Lifecycle events a retention period counts from (account closure,
-- consent withdrawal, last activity), one time per subject and event.
CREATE TABLE subject_lifecycle (
	subject_id TEXT COLLATE "C" NOT NULL,
	event      TEXT COLLATE "C" NOT NULL,
	at         BIGINT NOT NULL,
	PRIMARY KEY (subject_id, event)
);

CREATE INDEX subject_lifecycle_event_at ON subject_lifecycle (event, at);

-- Legal holds stop destruction of what they cover. released_at and
-- expires_at are 0 when unset.
CREATE TABLE legal_holds (
	id          TEXT COLLATE "C" PRIMARY KEY,
	scope       TEXT NOT NULL,
	subject_id  TEXT COLLATE "C" NOT NULL,
	category    TEXT NOT NULL,
	reason      TEXT NOT NULL,
	owner       TEXT NOT NULL,
	created_at  BIGINT NOT NULL,
	created_by  TEXT NOT NULL,
	expires_at  BIGINT NOT NULL,
	released_at BIGINT NOT NULL,
	released_by TEXT NOT NULL
);

-- Anonymised records: statistics only. No subject id, no record id, no
-- sealed data, no blind index: nothing links a row back to a customer.
CREATE TABLE anonymised_records (
	id       TEXT COLLATE "C" PRIMARY KEY,
	type     TEXT NOT NULL,
	category TEXT NOT NULL,
	month    TEXT NOT NULL,
	data     JSONB NOT NULL,
	rule     TEXT NOT NULL
);

-- Signed destruction certificates, one per retention run.
CREATE TABLE retention_certificates (
	id          TEXT COLLATE "C" PRIMARY KEY,
	run_id      TEXT NOT NULL,
	started_at  BIGINT NOT NULL,
	finished_at BIGINT NOT NULL,
	as_of       BIGINT NOT NULL,
	body        TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	signature   BYTEA NOT NULL
);

CREATE INDEX retention_certificates_finished_at ON retention_certificates (finished_at);
