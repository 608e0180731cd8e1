-- 0006_rights: infrastructure for customer rights (R7, R4).
--
-- One-time codes: only an HMAC of the code and of the client address is
-- kept; the rate limits count rows here, so they hold across nodes.
CREATE TABLE otp_challenges (
	id           TEXT PRIMARY KEY,
	subject_id   TEXT NOT NULL,
	purpose      TEXT NOT NULL,
	channel      TEXT NOT NULL,
	code_hash    BYTEA NOT NULL,
	client_hash  BYTEA NOT NULL,
	attempts     BIGINT NOT NULL,
	max_attempts BIGINT NOT NULL,
	status       TEXT NOT NULL CHECK (status IN ('pending', 'verified', 'dead')),
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL,
	done_at      BIGINT NOT NULL
);

CREATE INDEX otp_challenges_subject ON otp_challenges (subject_id, created_at);
CREATE INDEX otp_challenges_client ON otp_challenges (client_hash, created_at);
CREATE INDEX otp_challenges_expires ON otp_challenges (expires_at);

-- Transactional outbox: written in the same transaction as the change it
-- reports. Payloads hold ids and names only.
CREATE TABLE outbox (
	seq        BIGSERIAL PRIMARY KEY,
	id         TEXT NOT NULL UNIQUE,
	type       TEXT NOT NULL,
	subject_id TEXT NOT NULL,
	payload    TEXT NOT NULL,
	created_at BIGINT NOT NULL
);

-- Downstream endpoints; the signing secret is sealed by core.
CREATE TABLE webhook_recipients (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL UNIQUE,
	url           TEXT NOT NULL,
	sealed_secret BYTEA NOT NULL,
	events        JSONB NOT NULL CHECK (jsonb_typeof(events) = 'array'),
	disabled      BOOLEAN NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);

-- One row per event and recipient; times 0 mean "not yet".
CREATE TABLE webhook_deliveries (
	event_id        TEXT NOT NULL REFERENCES outbox (id),
	recipient_id    TEXT NOT NULL REFERENCES webhook_recipients (id),
	status          TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'delivered')),
	attempts        BIGINT NOT NULL,
	next_attempt_at BIGINT NOT NULL,
	last_attempt_at BIGINT NOT NULL,
	delivered_at    BIGINT NOT NULL,
	last_code       BIGINT NOT NULL,
	last_error      TEXT NOT NULL,
	alerted_at      BIGINT NOT NULL,
	created_at      BIGINT NOT NULL,
	PRIMARY KEY (event_id, recipient_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status <> 'delivered';
CREATE INDEX webhook_deliveries_unacked ON webhook_deliveries (created_at) WHERE status <> 'delivered' AND alerted_at = 0;
