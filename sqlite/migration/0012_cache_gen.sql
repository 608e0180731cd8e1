-- 0012_cache_gen: on PostgreSQL, the generation that nodes' read caches
-- check their entries against (postgres/migration/0012_cache_gen.sql). A
-- SQLite store's read cache is kept coherent through a file beside it
-- (sqlite/readcache.go), so its schema does not change; the migration
-- exists so that both stores carry the same names.
SELECT 1;
