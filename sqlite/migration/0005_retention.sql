-- 0005_retention: retention rules' state (L1–L3).
--
-- restricted_until (Unix microseconds, 0 = not restricted): data in the
-- "restricted" state is kept but locked and excluded from every use until
-- then (PIPL Art. 47: a legal retention period still runs).
ALTER TABLE subjects ADD COLUMN restricted_until INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN restricted_until INTEGER NOT NULL DEFAULT 0;

-- Lifecycle events a retention period counts from (account closure,
-- consent withdrawal, last activity), one time per subject and event.
CREATE TABLE subject_lifecycle (
	subject_id TEXT NOT NULL,
	event      TEXT NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (subject_id, event)
) STRICT, WITHOUT ROWID;

CREATE INDEX subject_lifecycle_event_at ON subject_lifecycle (event, at);

-- Legal holds stop destruction of what they cover. released_at and
-- expires_at are 0 when unset.
CREATE TABLE legal_holds (
	id          TEXT PRIMARY KEY,
	scope       TEXT NOT NULL,
	subject_id  TEXT NOT NULL,
	category    TEXT NOT NULL,
	reason      TEXT NOT NULL,
	owner       TEXT NOT NULL,
	created_at  INTEGER NOT NULL,
	created_by  TEXT NOT NULL,
	expires_at  INTEGER NOT NULL,
	released_at INTEGER NOT NULL,
	released_by TEXT NOT NULL
) STRICT;

-- Anonymised records: statistics only. No subject id, no record id, no
-- sealed data, no blind index: nothing links a row back to a customer.
CREATE TABLE anonymised_records (
	id       TEXT PRIMARY KEY,
	type     TEXT NOT NULL,
	category TEXT NOT NULL,
	month    TEXT NOT NULL,
	data     TEXT NOT NULL, -- JSON object of generalised attributes
	rule     TEXT NOT NULL
) STRICT;

-- Signed destruction certificates, one per retention run.
CREATE TABLE retention_certificates (
	id          TEXT PRIMARY KEY,
	run_id      TEXT NOT NULL,
	started_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL,
	as_of       INTEGER NOT NULL,
	body        TEXT NOT NULL,
	key_id      TEXT NOT NULL,
	signature   BLOB NOT NULL
) STRICT;

CREATE INDEX retention_certificates_finished_at ON retention_certificates (finished_at);
