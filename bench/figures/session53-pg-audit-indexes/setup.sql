DROP TABLE IF EXISTS audit_events;
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
INSERT INTO audit_events SELECT g, 1764950000000000 + g*100, 'prn_2k3jd8s7f6g5h4j3k2l1m0n9b8', 'subject.read', 'sub_' || md5(g::text), '["name","mobile","email","address"]', '["customer_service"]', 'allow', '', 'req_' || md5((g*7)::text), sha256(g::text::bytea), sha256((g+1)::text::bytea) FROM generate_series(1,300000) g;
