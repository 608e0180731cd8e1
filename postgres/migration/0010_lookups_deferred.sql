-- 0010_lookups_deferred: on SQLite, the blind index's foreign key became
-- DEFERRABLE INITIALLY DEFERRED so that a multi-row insert of lookup keys
-- needs no statement journal (sqlite/migration/0010_lookups_deferred.sql).
-- PostgreSQL keeps no such journal, so its schema does not change; the
-- migration exists so that both stores carry the same names.
SELECT 1;
