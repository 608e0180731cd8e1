package sqlite

import "database/sql"

// WritePool and ReadPool expose the pools to the external tests.
func (db *DB) WritePool() *sql.DB { return db.write }
func (db *DB) ReadPool() *sql.DB  { return db.read }
