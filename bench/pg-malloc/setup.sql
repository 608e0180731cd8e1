-- A numbered list of the customers in a custos PostgreSQL database and
-- their mobile's blind-index hash, for byid.sql and bylookup.sql to draw
-- from. Run it in that database; drop the table afterwards.
CREATE TABLE ids AS
	SELECT row_number() OVER () AS n, s.id, l.hash
	FROM subjects s JOIN lookups l ON l.subject_id = s.id AND l.field = 'mobile';
CREATE INDEX ON ids (n);
ANALYZE ids;
