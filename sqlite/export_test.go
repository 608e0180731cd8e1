package sqlite

import "database/sql"

// WritePool and ReadPool expose the pools to the external tests.
func (db *DB) WritePool() *sql.DB { return db.write }
func (db *DB) ReadPool() *sql.DB  { return db.read }

// CachedStatements reports how many statements each pool keeps prepared.
func (db *DB) CachedStatements() (write, read int) {
	db.wcache.mu.RLock()
	write = len(db.wcache.stmts)
	db.wcache.mu.RUnlock()
	db.rcache.mu.RLock()
	read = len(db.rcache.stmts)
	db.rcache.mu.RUnlock()
	return write, read
}
