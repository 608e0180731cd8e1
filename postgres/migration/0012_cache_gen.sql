-- 0012_cache_gen: the generation of the customers' data that nodes' read
-- caches hold (postgres/readcache.go).
--
-- Every transaction that changes a row a read cache may hold (a
-- customer's subject row, data key, consent history or lookup keys, but
-- not an insert of a new customer's) adds one to gen before it commits,
-- in the same transaction, so a commit and its step are seen together. A
-- node tags what it caches with the gen its read's snapshot saw, answers
-- a read from the cache only with entries of one gen, and has the group
-- that commits the read's audit event check, under the append lock and
-- before the event is chained, that gen has not moved since
-- (cache_gen_check). If it has, the group runs again without that read,
-- which then reads from the tables.
CREATE TABLE cache_gen (
	one integer PRIMARY KEY CHECK (one = 1),
	gen bigint NOT NULL
);

INSERT INTO cache_gen (one, gen) VALUES (1, 1);

-- cache_gen_check returns gen when every generation in want is gen, and
-- otherwise fails with SQLSTATE CU001, gen in its DETAIL.
CREATE FUNCTION cache_gen_check(want bigint[]) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	g bigint;
BEGIN
	SELECT gen INTO g FROM cache_gen;
	IF NOT (g = ALL (want)) THEN
		RAISE EXCEPTION 'custos: a read cache generation is out of date'
			USING ERRCODE = 'CU001', DETAIL = g::text;
	END IF;
	RETURN g;
END
$$;
