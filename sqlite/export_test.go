package sqlite

import (
	"context"
	"database/sql"
	"time"

	"custos"
)

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

// SetWALResetFrames changes the WAL size at which the writer starts the
// WAL again, until the test ends.
func SetWALResetFrames(tb interface{ Cleanup(func()) }, n int) {
	old := walResetFrames
	walResetFrames = n
	tb.Cleanup(func() { walResetFrames = old })
}

// SetCheckpointEvery changes the checkpointer's period, until the test
// ends; call it before opening the store.
func SetCheckpointEvery(tb interface{ Cleanup(func()) }, d time.Duration) {
	old := checkpointEvery
	checkpointEvery = d
	tb.Cleanup(func() { checkpointEvery = old })
}

// ExecUntracked runs query in tx as a statement that names no customer.
func ExecUntracked(ctx context.Context, tx custos.Tx, query string) error {
	_, err := tx.(*Tx).exec(ctx, query)
	return err
}
