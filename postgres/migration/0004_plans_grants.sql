-- Collection plans (C2) and data-use requests / grants (U1), and staff
-- compliance prerequisites on principals (S4). Plans and grants hold no
-- personal data (field names, reasons, opaque subject ids), so their full
-- document is kept as JSON beside the columns queries filter on.
ALTER TABLE principals ADD COLUMN prerequisites TEXT NOT NULL DEFAULT '';

CREATE TABLE plans (
	id         TEXT PRIMARY KEY,
	status     TEXT NOT NULL,
	purpose    TEXT NOT NULL,
	filed_at   BIGINT NOT NULL,
	doc        JSONB NOT NULL
);

CREATE INDEX plans_status_purpose ON plans (status, purpose);

CREATE TABLE grants (
	id         TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	status     TEXT NOT NULL,
	end_at     BIGINT NOT NULL,
	expired    BOOLEAN NOT NULL,
	applied_at BIGINT NOT NULL,
	doc        JSONB NOT NULL
);

CREATE INDEX grants_holder ON grants (holder, status);
CREATE INDEX grants_expiry ON grants (status, expired, end_at);
