-- Customer rights requests (R1–R7): the columns the staff queue filters
-- on, the request as a JSON document of ids, names, times and counts (no
-- personal data), and its personal details sealed under the customer's
-- data key (corrected values, a relative's identity and proof).
CREATE TABLE rights_requests (
	id         TEXT PRIMARY KEY,
	subject_id TEXT NOT NULL,
	status     TEXT NOT NULL,
	filed_at   INTEGER NOT NULL,
	deadline   INTEGER NOT NULL,
	doc        TEXT NOT NULL,
	sealed     BLOB
) STRICT;

CREATE INDEX rights_requests_subject ON rights_requests (subject_id, filed_at);
CREATE INDEX rights_requests_open ON rights_requests (status, deadline);
