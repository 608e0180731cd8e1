package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// CheckpointEvery is how often the checkpointer copies committed WAL frames
// into the database file.
const CheckpointEvery = 250 * time.Millisecond

// checkpointer copies the WAL into the database file beside the writer,
// on a connection of its own, every CheckpointEvery until the store is
// closed.
//
// The write connection has wal_autocheckpoint off. SQLite's automatic
// checkpoint runs inside the commit that crosses 1,000 WAL pages, so the
// writer — and every request of its commit group — waited for the copy and
// the fsync of the database file (about 7 % of a create's CPU, and an extra
// fsync on the commit's critical path). A PASSIVE checkpoint takes no lock
// that the writer or the readers need; it copies what no reader still
// needs and leaves the rest for the next round. Durability is unchanged:
// a transaction is durable once its commit frame is synced to the WAL,
// before any checkpoint.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	t := time.NewTicker(CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-db.closed:
			return
		case <-t.C:
		}
		db.checkpointPassive()
	}
}

// checkpointPassive runs one PASSIVE checkpoint. A failure is left to the
// next round: the WAL only grows meanwhile, and every committed
// transaction is already durable in it.
func (db *DB) checkpointPassive() {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	var busy, logFrames, checkpointed int
	_ = db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &checkpointed)
}

// openCheckpointer opens the checkpointer's connection.
func (db *DB) openCheckpointer(ctx context.Context) error {
	var err error
	if db.ckpt, err = sql.Open("sqlite", baseDSN(db.path)); err != nil {
		return internal("open", err)
	}
	db.ckpt.SetMaxOpenConns(1)
	db.ckpt.SetMaxIdleConns(1)
	return db.ping(ctx, db.ckpt)
}
