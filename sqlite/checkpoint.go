package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
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
		// Snapshots kept past their time would keep the round from
		// copying the frames after them (kept.go).
		db.kept.expire()
		// What a process that died on the file left (readcache.go's
		// repairDead), for a process whose reads do not look.
		db.gen.repairDead()
		db.checkpointPassive()
	}
}

// walResetFrames is the WAL size, in frames (pages), above which the
// checkpointer makes SQLite start the WAL again from its beginning, for
// a database of up to ten times that; a larger database lets its WAL grow
// to a tenth of its size (walLimitFor).
var walResetFrames = 4096 // 16 MiB of 4 KiB pages

// maxWALResetFrames bounds the WAL a large database lets grow before the
// writer starts it again.
const maxWALResetFrames = 65536 // 256 MiB of 4 KiB pages

// walLimitFor is the WAL size, in frames, above which a database of pages
// pages is asked to start its WAL again, when that is above
// walResetFrames: a tenth of the database, at most maxWALResetFrames.
//
// Why it grows with the database: starting the WAL again (resetWAL) runs
// on the writer and first copies every frame the PASSIVE rounds have not,
// which is at least the last commit group's. A bulk write's groups are
// large (a seed's 2,000 customers with six random blind-index keys each:
// about 12,000 frames), so with a 16 MiB WAL the writer restarted it after
// every group and did all the copying itself, 250 ms a time: 12 % of a
// seed's CPU samples, on the writer, while the checkpointer on the other
// core found nothing to copy. With a WAL of up to 256 MiB the checkpointer
// copies each group while the writer runs the next, and the writer's
// restart copies only the last group every 20 or so. Seeds of 100,000
// onto a 1M store: 36.3/37.4/38.0 s → 32.2/32.3/32.6 s (BENCHMARKS.md,
// twelfth session). The price is disk: the WAL keeps its largest size,
// which passes the limit by what the writer commits while a restart
// waits for the checkpoint lock (444 MB at the end of a 1M import), and
// is cut back only past walSizeLimit.
func walLimitFor(pages int64) int64 {
	return min(pages/10, maxWALResetFrames)
}

// walSizeLimit is the journal_size_limit, in bytes, for a WAL asked to
// start again past frames frames of pageSize bytes: twice that, at least
// the 64 MiB of the DSN, so that a WAL that grew that far keeps its
// blocks instead of being cut back and grown again (and a grown file's
// flush also writes its new size).
func walSizeLimit(frames, pageSize int64) int64 {
	return max(64<<20, 2*frames*(pageSize+24))
}

// checkpointPassive runs one PASSIVE round (passiveRound) and, when the
// WAL has grown past walResetFrames (or walLimitFor the database's size),
// asks the writer to empty it. A failure is left to the next round: the
// WAL only grows meanwhile, and every committed transaction is already
// durable in it.
//
// PASSIVE alone is not enough under a sustained write load: SQLite starts
// the WAL again from its beginning only when a write transaction begins
// after a checkpoint has copied every frame, and a writer that commits
// every few milliseconds has almost always added frames by then — a 1M
// import grew the WAL to 9 GB. A RESTART checkpoint here would not help
// either: it needs the write lock, and it polls for it with sleeps while
// the writer takes it again right after each commit. So the writer
// itself empties the WAL between two commit groups (resetWAL).
//
// Whatever is left to copy and sync then is copied and synced on the
// writer, and every request waits for it. So before asking, the
// checkpointer runs up to catchUpRounds more rounds, each copying what
// the writer committed during the one before, until one copies fewer than
// catchUpFrames.
func (db *DB) checkpointPassive() {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	copied, logFrames, err := db.passiveRound(ctx, false)
	if err != nil {
		return
	}
	var pages, pageSize int64
	if err := db.ckpt.QueryRowContext(ctx, "SELECT page_count, page_size FROM pragma_page_count(), pragma_page_size()").Scan(&pages, &pageSize); err != nil {
		return
	}
	limit := max(int64(walResetFrames), walLimitFor(pages))
	db.walSizeLimit.Store(walSizeLimit(limit, pageSize))
	if int64(logFrames) <= limit {
		return
	}
	db.walOverdue.Store(int64(logFrames) > walOverdueFactor*limit)
	// What this round copied, and every round since the last restart,
	// waits in the kernel for the restart's sync: start writing it out.
	// Only now: a page copied in several rounds between two restarts (a
	// bulk load's, whose WAL may be large) is written once.
	_ = dbFileWriteback(db.dbFile)
	for range catchUpRounds {
		if copied < catchUpFrames {
			break
		}
		if copied, _, err = db.passiveRound(ctx, true); err != nil {
			return
		}
	}
	db.walReset.Store(true)
}

// dbFileWriteback starts the database file's writeback; a test may
// replace it.
var dbFileWriteback = startWriteback

// catchUpRounds and catchUpFrames bound the rounds checkpointPassive adds
// before it asks the writer to empty the WAL.
var (
	catchUpRounds = 2
	catchUpFrames = 256
)

// passiveRound runs one PASSIVE checkpoint and, with writeback, if it
// copied frames into the database file, has the kernel start writing them
// to the disk (startWriteback). It returns how many frames it copied and
// how many the WAL holds.
//
// SQLite syncs the database file after a checkpoint only when the
// checkpoint copied the WAL to its end. Under a sustained write load a
// PASSIVE round never does (the writer has committed more while it
// copied), so every round's copies waited in the kernel until the
// writer's RESTART (resetWAL) caught up and synced them all: about 7,000
// pages, 27 ms at the median with every request waiting, four times a
// second during creates at c=16 (BENCHMARKS.md, thirty-third session).
// Written out beside the writer, they leave the restart's sync less to
// do: 8 ms. An fsync after every round did as well for the restart, but
// made the store's durability depend on one more sync, and wrote out
// every round's copies during bulk loads, which restart the WAL rarely.
//
// Its error is not the store's: starting a write makes nothing durable
// and is not waited for, and a page that failed to reach the disk fails
// the fsync SQLite makes before the WAL starts again (Linux reports a
// writeback error to every open file that has not seen it yet).
func (db *DB) passiveRound(ctx context.Context, writeback bool) (copied, logFrames int, err error) {
	var busy, checkpointed int
	if err := db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return 0, 0, err
	}
	// checkpointed counts from the WAL's beginning: fewer than last time
	// means the WAL was started again since. A WAL started again and
	// checkpointed to exactly the last count looks unchanged, and the
	// round is taken for one that copied nothing: the restart then writes
	// those copies itself, as it always did.
	if copied = checkpointed - db.backfilled; checkpointed < db.backfilled {
		copied = checkpointed
	}
	db.backfilled = checkpointed
	if writeback && copied > 0 {
		_ = dbFileWriteback(db.dbFile)
	}
	return copied, logFrames, nil
}

// resetWAL runs a RESTART checkpoint on the write connection when the
// checkpointer asked for one; the writer calls it between commit groups,
// holding no transaction. It copies what the PASSIVE rounds left — little
// — and waits for readers still using the WAL (busy_timeout), so that the
// next commit writes the WAL from its beginning, reusing the file's blocks
// (journal_size_limit, set here to walSizeLimit, trims a file that grew
// larger). Its failure leaves the request standing for the next round.
//
// While another process's writer has begun since this one's last turn
// (it may hold the write lock now) or waits for it, the restart, which
// waits for that lock and then holds it through a checkpoint, is left for
// a later group (turns.go). But while two processes take turns one of
// them nearly always waits, and the other's restart waits likewise.
// Beside a seed the WAL then grew to 270–330 MB, past its 256 MiB limit,
// and stayed there only because SQLite starts the WAL again by itself when
// a PASSIVE round has copied all of it, which the pauses between turns
// happened to allow (BENCHMARKS.md, forty-seventh session); nothing
// bounds it otherwise (a 1M import without the writer's restart grew it
// to 9 GB, twelfth session). So once the WAL is overdue
// (walOverdueFactor), the restart takes a turn as a write does
// (restartInTurn).
func (db *DB) resetWAL() {
	if !db.walReset.Load() {
		return
	}
	inTurn := db.othersWriting()
	if inTurn && !db.walOverdue.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	// The first commit after the restart cuts the WAL back to this. Set
	// at every restart, which is rare, so that a write connection the
	// pool opened again has it too; a failure keeps the DSN's 64 MiB.
	if want := db.walSizeLimit.Load(); want > 0 {
		_, _ = db.write.ExecContext(ctx, fmt.Sprintf("PRAGMA journal_size_limit = %d", want))
	}
	// Kept snapshots hold the WAL: end them, and keep none meanwhile.
	db.kept.pause()
	defer db.kept.resume()
	var done bool
	if inTurn {
		done = db.restartInTurn(ctx)
	} else {
		done = restart(ctx, db.write) == nil
	}
	if done {
		db.walReset.Store(false)
		db.walOverdue.Store(false)
	}
}

// walOverdueFactor: a WAL past this many times the size at which the
// checkpointer asks for a restart is overdue (resetWAL).
const walOverdueFactor = 2

// errRestartBusy is a RESTART checkpoint that could not finish: the
// write lock, or a reader still using the WAL, was busy.
var errRestartBusy = errors.New("wal checkpoint(RESTART): busy")

// restart runs a RESTART checkpoint on q.
func restart(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) error {
	var busy, logFrames, checkpointed int
	if err := q.QueryRowContext(ctx, "PRAGMA wal_checkpoint(RESTART)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return err
	}
	if busy != 0 {
		return errRestartBusy
	}
	return nil
}

// restartInTurn runs the RESTART checkpoint as a turn at the write lock
// among the processes on the file: marked waiting, so that the others'
// writers yield to it at their next transaction (yield), and tried
// without the busy handler every yieldPoll, as a waiting BEGIN is
// (pollBusy), for at most restartInTurnMax; it advances the turn
// counter once it ran, which ends the others' yields. It says whether the
// restart ran.
func (db *DB) restartInTurn(ctx context.Context) bool {
	c, err := db.write.Conn(ctx)
	if err != nil {
		return false
	}
	defer c.Close()
	defer db.markWaiting()()
	err = pollBusy(ctx, c, restartInTurnMax, func() error { return restart(ctx, c) })
	if err != nil {
		return false
	}
	db.lastTurn.Store(db.gen.tookTurn())
	return true
}

// restartInTurnMax bounds restartInTurn's tries: longer than the others'
// yields (yieldMax), during which the lock is free, and than a kept
// snapshot of theirs lives (keepFor), which the restart waits out.
const restartInTurnMax = 2 * yieldMax

// openCheckpointer opens the checkpointer's connection, and the database
// file for its writebacks (passiveRound). That descriptor is closed only
// after every SQLite connection (Close): closing any descriptor of a file
// drops every POSIX lock the process holds on it, SQLite's included.
func (db *DB) openCheckpointer(ctx context.Context) error {
	var err error
	if db.dbFile, err = os.OpenFile(db.path, os.O_RDWR, 0); err != nil {
		return internal("open", err)
	}
	if db.ckpt, err = sql.Open("sqlite", baseDSN(db.path)); err != nil {
		return internal("open", err)
	}
	db.ckpt.SetMaxOpenConns(1)
	db.ckpt.SetMaxIdleConns(1)
	return db.ping(ctx, db.ckpt)
}
