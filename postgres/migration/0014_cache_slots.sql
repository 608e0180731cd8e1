-- 0014_cache_slots: a generation for each slot of customers beside the
-- one for the whole database (postgres/readcache.go).
--
-- With cache_gen alone, any change to any customer made every node's
-- cached entries unusable: beside a steady stream of corrections a cache
-- answered almost nothing. A customer's slot is the first 16 bits of the
-- MD5 of their id (cache_slot; the node computes the same in Go). A
-- custos transaction that changes the rows of customers it can name (a
-- correction, a consent, a restriction, an erasure) adds one to their
-- slots' gens, under the append lock, instead of to cache_gen; one that
-- cannot name them, and every change made outside custos (the triggers of
-- 0013), still moves cache_gen, which retires every entry. A read returns
-- both gens, cache_gen's and its customer's slot's; the check at the end
-- of the group that audits a cached read compares both (cache_check).
--
-- A slot's row is written the first time it moves (a missing row is gen
-- 0), so the table holds only slots of customers that have changed.
CREATE TABLE cache_slots (
	slot integer PRIMARY KEY,
	gen bigint NOT NULL
);

-- cache_slot is a customer's slot. Go's cacheSlot computes the same.
CREATE FUNCTION cache_slot(id text) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT ('x' || left(md5(id), 4))::bit(16)::integer
$$;

-- cache_check returns cache_gen's gen when every gen in gens is it and
-- each slot in slots still has the gen at the same place in slot_gens;
-- otherwise it fails with SQLSTATE CU001, its DETAIL cache_gen's gen and
-- then, for each slot that moved, "slot:gen".
CREATE FUNCTION cache_check(gens bigint[], slots integer[], slot_gens bigint[]) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	g bigint;
	sg bigint;
	moved text;
BEGIN
	SELECT gen INTO g FROM cache_gen;
	-- A probe of the key a slot, each a cached plan: half the time of one
	-- join of the arrays with the table (pgbench, fifty-second session),
	-- and this runs under the append lock.
	FOR i IN 1 .. coalesce(array_length(slots, 1), 0) LOOP
		SELECT gen INTO sg FROM cache_slots WHERE slot = slots[i];
		IF coalesce(sg, 0) <> slot_gens[i] THEN
			moved := concat_ws(' ', moved, slots[i] || ':' || coalesce(sg, 0));
		END IF;
	END LOOP;
	IF moved IS NOT NULL OR NOT (g = ALL (gens)) THEN
		RAISE EXCEPTION 'custos: a read cache generation is out of date'
			USING ERRCODE = 'CU001', DETAIL = concat_ws(' ', g::text, moved);
	END IF;
	RETURN g;
END
$$;

-- A node of the version before this one, still running during a rolling
-- upgrade, checks its cached reads against cache_gen alone, which a newer
-- node's change to a customer no longer moves. Its check now always
-- fails, naming a gen one past cache_gen's: that node then reads every
-- customer from the tables (its members fail as stale, and the entries it
-- fills are of an older gen than the one it learned), until it is
-- upgraded. Its own changes still move cache_gen, which newer nodes see.
CREATE OR REPLACE FUNCTION cache_gen_check(want bigint[]) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	g bigint;
BEGIN
	SELECT gen INTO g FROM cache_gen;
	RAISE EXCEPTION 'custos: a read cache generation is out of date'
		USING ERRCODE = 'CU001', DETAIL = (g + 1)::text;
END
$$;
