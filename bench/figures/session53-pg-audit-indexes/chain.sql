\set t random(1, 200000000)
BEGIN;
SET LOCAL synchronous_commit = off;
WITH RECURSIVE ev AS (
	SELECT * FROM unnest(ARRAY[1764990000000000+:t::bigint,1764990000000001+:t::bigint,1764990000000002+:t::bigint,1764990000000003+:t::bigint,1764990000000004+:t::bigint]::bigint[],
	 ARRAY['prn_2k3jd8s7f6g5h4j3k2l1m0n9b8','prn_2k3jd8s7f6g5h4j3k2l1m0n9b8','prn_2k3jd8s7f6g5h4j3k2l1m0n9b8','prn_2k3jd8s7f6g5h4j3k2l1m0n9b8','prn_2k3jd8s7f6g5h4j3k2l1m0n9b8']::text[],
	 ARRAY['subject.read','subject.read','subject.read','subject.read','subject.read']::text[],
	 ARRAY['sub_'||md5((:t)::text),'sub_'||md5((:t+1)::text),'sub_'||md5((:t+2)::text),'sub_'||md5((:t+3)::text),'sub_'||md5((:t+4)::text)]::text[],
	 ARRAY['["name","mobile"]','["name","mobile"]','["name","mobile"]','["name","mobile"]','["name","mobile"]']::text[],
	 ARRAY['["cs"]','["cs"]','["cs"]','["cs"]','["cs"]']::text[],
	 ARRAY['allow','allow','allow','allow','allow']::text[],
	 ARRAY['','','','','']::text[],
	 ARRAY['req_'||md5((:t::bigint*7)::text),'req_'||md5((:t::bigint*7+1)::text),'req_'||md5((:t::bigint*7+2)::text),'req_'||md5((:t::bigint*7+3)::text),'req_'||md5((:t::bigint*7+4)::text)]::text[],
	 ARRAY['\x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20'::bytea,'\x0102'::bytea,'\x0103'::bytea,'\x0104'::bytea,'\x0105'::bytea]::bytea[])
		WITH ORDINALITY AS e(time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, tail, i)
), head AS (
	SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1
), chain(i, seq, prev, hash) AS (
	SELECT 0::bigint, COALESCE((SELECT seq FROM head), 0::bigint), NULL::bytea, COALESCE((SELECT hash FROM head), '\x00'::bytea)
	UNION ALL
	SELECT c.i + 1, c.seq + 1, c.hash, sha256('\x637573746f73'::bytea || int8send(length(c.hash)::bigint) || c.hash || int8send(c.seq + 1) || ev.tail)
	FROM chain c JOIN ev ON ev.i = c.i + 1
)
INSERT INTO audit_events (seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash)
SELECT c.seq, ev.time, ev.actor_id, ev.action, ev.subject_id, ev.fields::jsonb, ev.purposes::jsonb, ev.decision, ev.reason, ev.request_id, c.prev, c.hash
FROM chain c JOIN ev ON ev.i = c.i
WHERE c.i > 0 AND 1 / (CASE WHEN 0 > 0 AND c.seq % 1 = 0 THEN 0 ELSE 1 END) = 1
ORDER BY c.seq
RETURNING seq, prev_hash, hash;
COMMIT;
