-- 0013_cache_gen_triggers: on PostgreSQL, triggers that move the read
-- caches' generation for changes made outside custos
-- (postgres/migration/0013_cache_gen_triggers.sql). A SQLite store is not
-- written by other tools while custos runs (docs/deploy.md), so its schema
-- does not change; the migration exists so that both stores carry the
-- same names.
SELECT 1;
