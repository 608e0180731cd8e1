-- 0014_lookups_hash16: blind-index keys are 16 bytes, the first half of
-- their HMAC-SHA-256 (keys.IndexSize says why that is enough), where they
-- were 32. Every stored key is cut to its first 16 bytes, which is what
-- this custos computes for the same value (sqlite/migration/0014 does the
-- same; backups carry their keys as stored, and restore needs the
-- backup's own schema, so an older backup is restored by the custos that
-- took it and then upgraded).
--
-- If two keys of a field shared their first 16 bytes (about 1e-21 at a
-- billion), the primary key stops the update and the migration rolls
-- back, changing nothing.
UPDATE lookups SET hash = substring(hash FROM 1 FOR 16) WHERE octet_length(hash) > 16;

-- During a rolling upgrade, nodes still running an older custos compute
-- 32-byte keys. Their lookups find nobody, and without this constraint
-- their creates and corrections would store keys that no upgraded node
-- finds, beside which a second customer could claim the same mobile
-- number or e-mail. The constraint refuses such keys instead, so an older
-- node's create or correction of a customer with a lookup field fails
-- until the node is upgraded (docs/deploy.md, "Upgrading").
ALTER TABLE lookups ADD CONSTRAINT lookups_hash_not_before_0014 CHECK (octet_length(hash) <> 32);
