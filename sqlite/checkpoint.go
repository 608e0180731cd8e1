package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// CheckpointEvery is how often the checkpointer copies committed WAL frames
// into the database file.
const CheckpointEvery = 250 * time.Millisecond

// checkpointEvery is CheckpointEvery, shortened by tests.
var checkpointEvery = CheckpointEvery

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
	t := time.NewTicker(checkpointEvery)
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

// walResetFrames is the WAL size, in frames (pages), above which the
// checkpointer makes SQLite start the WAL again from its beginning.
var walResetFrames = 4096 // 16 MiB of 4 KiB pages

// checkpointPassive runs one PASSIVE checkpoint and, when the WAL has
// grown past walResetFrames, asks the writer to empty it. A failure is
// left to the next round: the WAL only grows meanwhile, and every
// committed transaction is already durable in it.
//
// PASSIVE alone is not enough under a sustained write load: SQLite starts
// the WAL again from its beginning only when a write transaction begins
// after a checkpoint has copied every frame, and a writer that commits
// every few milliseconds has almost always added frames by then — a 1M
// import grew the WAL to 9 GB. A RESTART checkpoint here would not help
// either: it needs the write lock, and it polls for it with sleeps while
// the writer takes it again right after each commit. So the writer
// itself empties the WAL between two commit groups (resetWAL).
func (db *DB) checkpointPassive() {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	var busy, logFrames, checkpointed int
	if err := db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return
	}
	if logFrames > walResetFrames {
		db.walReset.Store(true)
	}
}

// resetWAL runs a RESTART checkpoint on the write connection when the
// checkpointer asked for one; the writer calls it between commit groups,
// holding no transaction. It copies what the PASSIVE rounds left — little
// — and waits for readers still using the WAL (busy_timeout), so that the
// next commit writes the WAL from its beginning, reusing the file's blocks
// (journal_size_limit trims a file that grew larger). Its failure leaves
// the request standing for the next round.
func (db *DB) resetWAL() {
	if !db.walReset.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	var busy, logFrames, checkpointed int
	if err := db.write.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &logFrames, &checkpointed); err == nil && busy == 0 {
		db.walReset.Store(false)
	}
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
