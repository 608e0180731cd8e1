-- 0013_cache_gen_triggers: changes made outside custos's own accounting
-- move the read caches' generation too (postgres/readcache.go).
--
-- A custos node moves cache_gen on at the end of each transaction that
-- changed a cached row, after the append lock. A transaction of another
-- tool (psql, a script), or of a node of a version before 0012 still
-- running during a rolling upgrade, does not; without these triggers its
-- change would leave other nodes' cached rows in use. Each statement that
-- changes a customer's subject row, data key, lookup keys or consents
-- fires cache_gen_touch once, which moves the generation on in the same
-- transaction, unless the transaction is custos's own: custos marks its
-- write transactions with custos.bumps (SET LOCAL), and moves the
-- generation itself at their end, where it waits for no other writer's
-- change. (The triggers' own move takes the row lock from that statement
-- to the commit, so such writers take turns; that is the price of an
-- outside change, not of custos's.)
--
-- Inserts of subject, data key and lookup rows fire nothing: only rows
-- that exist are cached. An insert of a consent adds to a cached history.
CREATE FUNCTION cache_gen_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF current_setting('custos.bumps', true) IS DISTINCT FROM '1' THEN
		UPDATE cache_gen SET gen = gen + 1;
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER subjects_cache_gen AFTER UPDATE OR DELETE OR TRUNCATE ON subjects
	FOR EACH STATEMENT EXECUTE FUNCTION cache_gen_touch();
CREATE TRIGGER data_keys_cache_gen AFTER UPDATE OR DELETE OR TRUNCATE ON data_keys
	FOR EACH STATEMENT EXECUTE FUNCTION cache_gen_touch();
CREATE TRIGGER lookups_cache_gen AFTER UPDATE OR DELETE OR TRUNCATE ON lookups
	FOR EACH STATEMENT EXECUTE FUNCTION cache_gen_touch();
CREATE TRIGGER consents_cache_gen AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON consents
	FOR EACH STATEMENT EXECUTE FUNCTION cache_gen_touch();
