), head AS (
	SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1
)
INSERT INTO audit_events (seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash)
SELECT (SELECT seq FROM head) + ev.i, ev.time, ev.actor_id, ev.action, ev.subject_id, ev.fields::jsonb, ev.purposes::jsonb, ev.decision, ev.reason, ev.request_id, (SELECT hash FROM head), sha256(ev.tail)
FROM ev
ORDER BY ev.i
RETURNING seq, prev_hash, hash;
COMMIT;
