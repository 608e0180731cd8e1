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
)
INSERT INTO audit_events (seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash)
SELECT (SELECT seq FROM head) + ev.i, ev.time, ev.actor_id, ev.action, ev.subject_id, ev.fields::jsonb, ev.purposes::jsonb, ev.decision, ev.reason, ev.request_id, (SELECT hash FROM head), sha256(ev.tail)
FROM ev
ORDER BY ev.i
RETURNING seq, prev_hash, hash;
COMMIT;
