-- 0006_rights: infrastructure for customer rights (R7, R4).
--
-- One-time codes: only an HMAC of the code and of the client address is
-- kept; the rate limits count rows here, so they hold across nodes.
CREATE TABLE otp_challenges (
	id           TEXT PRIMARY KEY,
	subject_id   TEXT NOT NULL,
	purpose      TEXT NOT NULL,
	channel      TEXT NOT NULL,
	code_hash    BLOB NOT NULL,
	client_hash  BLOB NOT NULL,
	attempts     INTEGER NOT NULL,
	max_attempts INTEGER NOT NULL,
	status       TEXT NOT NULL CHECK (status IN ('pending', 'verified', 'dead')),
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	done_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX otp_challenges_subject ON otp_challenges (subject_id, created_at);
CREATE INDEX otp_challenges_client ON otp_challenges (client_hash, created_at);
CREATE INDEX otp_challenges_expires ON otp_challenges (expires_at);

-- Transactional outbox: written in the same transaction as the change it
-- reports. Payloads hold ids and names only.
CREATE TABLE outbox (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	id         TEXT NOT NULL UNIQUE,
	type       TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	payload    TEXT NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;

-- Downstream endpoints; the signing secret is sealed by core.
CREATE TABLE webhook_recipients (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	url           TEXT NOT NULL,
	sealed_secret BLOB NOT NULL,
	events        TEXT NOT NULL, -- JSON array
	disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) STRICT;

-- One row per event and recipient; times 0 mean "not yet".
CREATE TABLE webhook_deliveries (
	event_id        TEXT NOT NULL REFERENCES outbox (id),
	recipient_id    TEXT NOT NULL REFERENCES webhook_recipients (id),
	status          TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'delivered')),
	attempts        INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	last_attempt_at INTEGER NOT NULL,
	delivered_at    INTEGER NOT NULL,
	last_code       INTEGER NOT NULL,
	last_error      TEXT NOT NULL,
	alerted_at      INTEGER NOT NULL,
	created_at      INTEGER NOT NULL,
	PRIMARY KEY (event_id, recipient_id)
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status <> 'delivered';
CREATE INDEX webhook_deliveries_unacked ON webhook_deliveries (created_at) WHERE status <> 'delivered' AND alerted_at = 0;
