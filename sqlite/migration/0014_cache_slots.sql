-- 0014_cache_slots: on PostgreSQL, a read cache generation for each slot
-- of customers (postgres/migration/0014_cache_slots.sql). SQLite's read
-- cache drops a changed customer's entries itself (sqlite/readcache.go),
-- so its schema does not change; the migration exists so that both stores
-- carry the same names.
SELECT 1;
