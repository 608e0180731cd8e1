BEGIN;
SELECT seq AS mark FROM audit_keys_filed FOR UPDATE \gset
WITH n AS (
  INSERT INTO audit_keys (key, seq)
  SELECT k.key, e.seq FROM audit_events e, LATERAL (VALUES ('s' || e.subject_id), ('a' || e.actor_id), ('c' || e.action), ('t' || lpad(e.time::text, 20, '0'))) AS k(key)
  WHERE e.seq > :mark AND e.seq <= :mark + 1024
  ORDER BY 1, 2
  RETURNING seq)
UPDATE audit_keys_filed SET seq = COALESCE((SELECT max(seq) FROM n), seq);
COMMIT;
