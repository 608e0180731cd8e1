-- SCRATCH: data_keys as a WITHOUT ROWID table.
CREATE TABLE data_keys_0015 (
	subject_id  TEXT PRIMARY KEY,
	version     INTEGER NOT NULL,
	kek_version INTEGER NOT NULL,
	wrapped     BLOB NOT NULL,
	created_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO data_keys_0015 (subject_id, version, kek_version, wrapped, created_at)
	SELECT subject_id, version, kek_version, wrapped, created_at FROM data_keys ORDER BY subject_id;
DROP TABLE data_keys;
ALTER TABLE data_keys_0015 RENAME TO data_keys;
CREATE INDEX data_keys_kek_version ON data_keys (kek_version);
