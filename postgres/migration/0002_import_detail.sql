-- The outcome of a handled import line, not just its status: the reasons a
-- refused line got (a JSON array of {field, rule, detail}; never values)
-- and the message, so that a run resuming the job after a lost answer can
-- still report the line (C5).
ALTER TABLE import_rows
	ADD COLUMN violations JSONB NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(violations) = 'array'),
	ADD COLUMN message    TEXT NOT NULL DEFAULT '';
