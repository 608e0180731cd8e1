package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Taking turns at the write lock with the other processes on the file.
//
// SQLite lets one connection write at a time. A writer of another process
// that finds the write lock held waits in SQLite's busy handler, which
// tries again after growing sleeps, up to 100 ms apart. A process that
// runs transactions back to back (`custos retention run`'s windows,
// `custos seed`'s batches) leaves gaps of microseconds between them, which such a waiter
// seldom lands in: beside a serving node, the node's reads waited 2–4 s
// while the CLI's retention run went on (BENCHMARKS.md, forty-fourth
// session).
//
// So writers take turns. Before its BEGIN IMMEDIATE, a writer marks
// itself waiting in the file the processes share (readcache.go's
// sharedGen), and clears the mark once BEGIN has returned; a BEGIN that
// took the lock advances the turn counter. A writer that has had the last
// turns (no one began since) for its quantum or longer, and finds
// another's mark, lets that writer begin first: it waits until the turn
// counter moves on, at most yieldMax. A writer that yields records how
// long it held the lock in its last transaction (from its BEGIN to the
// end of its COMMIT or ROLLBACK), and the writer it yields to takes that
// as its quantum for its run (at least turnQuantum, at most maxQuantum):
// a node's run between a seed's batches lasts about as long as one batch,
// and between a retention run's windows about as long as one window. So
// while both want the lock they share its time about evenly. (The other's
// whole run, the waiter's wait, or the time from one BEGIN to the next,
// which counts a process's work between its transactions, grew the
// quanta to the cap: BENCHMARKS.md, forty-sixth session.) And a writer that finds another
// process has begun since its own last turn tries its BEGIN without the
// busy handler, again every yieldPoll, so that it begins within about a
// millisecond of the lock's release rather than at the busy handler's
// next try. The quantum lets a node's short commit groups run on for a
// while between another process's long transactions, rather than one
// group between each two of them: while both want the lock, the
// processes share its time. The writer's WAL restart (checkpoint.go's
// resetWAL), which waits for the write lock too and then holds it through
// a checkpoint, waits for a time when no other process's writer has
// begun since this one's last turn, or waits, unless the WAL is overdue;
// then it takes a turn of its own (restartInTurn). Beside a CLI retention
// run on a store of a million, a node's longest wait fell from 1.7–2.2 s
// to about 0.1 s, its reads went on at about the rate they had averaged
// between the stalls, and the run took 2.3–3× as long (BENCHMARKS.md,
// forty-sixth session).
//
// Turns are taken between transactions, and a commit group is one
// transaction of many callers' writes: so a group whose run of turns has
// lasted its quantum while another process waits ends after the member in
// progress, and the rest lead the next group (cutGroup). Beside `custos
// seed`, whose batches are members of up to four to a group, that and
// the seed's smaller batches beside another writer brought a node's
// longest wait from 1.2–1.7 s to 0.34–0.54 s (forty-seventh session).
//
// A process alone on the file reads the counter and the marks, and never
// waits or polls. A mark is a waiter's until its BEGIN returns, or until
// its process dies: each process holds a lock of its own on the counters'
// file while it has the file open (a process slot, takeProcSlot), which
// the kernel releases when it dies, and a mark names its process's slot
// (owners). A mark whose process has let its slot go is a writer that
// died waiting, and is cleared by the next writer that finds it. Before,
// such a mark counted until it was stale, and the other process yielded
// to it before each of its transactions for that long: killed beside
// `custos seed` of 20,000 customers, a node that died waiting stretched
// the seed from about 4 s to 18 s (forty-eighth session). A mark older
// than waitStale (a BEGIN waits at most the busy timeout, 10 s) is
// ignored, owned or not, taken over by the next writer that needs its
// slot, and cleared when a process opens the file alone. A process of an
// earlier build neither marks nor yields, or marks without owners: it
// waits in the busy handler as before, or is waited for likewise.

const (
	// turnSlots is how many writers can be marked waiting at once; one
	// that finds every slot taken waits unmarked.
	turnSlots = 8
	// waitStale is the age past which a waiting mark is ignored.
	waitStale = 15 * time.Second
	// yieldMax bounds a yield, for a waiter that does not begin soon: one
	// that gave up, or one whose BEGIN waits in the busy handler (when no
	// one else had begun since its last turn), whose tries are up to 100
	// ms apart.
	yieldMax = 150 * time.Millisecond
	// turnQuantum is how long a writer's turns may follow one another
	// while another process's writer waits, at least; maxQuantum at
	// most, however long the other's turns take.
	turnQuantum = 20 * time.Millisecond
	maxQuantum  = time.Second
	// yieldPoll is how often a yielding writer looks at the counter, and
	// a waiting one tries its BEGIN again.
	yieldPoll = time.Millisecond
	// beginMax bounds the tries of a BEGIN without the busy handler: the
	// busy timeout.
	beginMax = 10 * time.Second
)

// turnCounterOffset, lastRunOffset, turnSlotsOffset and ownersOffset place
// the turn counter, how long the last writer that yielded held the lock in
// its last transaction (nanoseconds), the waiting marks (Unix nanoseconds,
// 0 when free) and their owners (ownerWord) in the shared file, after the
// five counters of readcache.go.
const (
	turnCounterOffset = 40
	lastRunOffset     = 48
	turnSlotsOffset   = 56
	ownersOffset      = turnSlotsOffset + 8*turnSlots
)

// ownedBit and procBits make a mark's owner word (ownerWord): the mark's
// time without its lowest bits, with the bit that says it is one, and the
// slot of the process that made the mark in those bits. The mark itself
// stays a plain time, as processes of earlier builds read it.
const (
	ownedBit = 1 << 63
	procBits = turnSlots - 1
)

// ownerWord is the owner word of mark m made by the process in slot p.
func ownerWord(m uint64, p int) uint64 { return ownedBit | m&^procBits | uint64(p) }

// markOwner returns the process slot that made mark m, in marks slot i:
// ok is false when its owner word is not m's (a process without a slot,
// or of an earlier build, made it; or the owner word is still being
// written).
func (g *sharedGen) markOwner(i int, m uint64) (p int, ok bool) {
	if i >= len(g.owners) {
		return 0, false
	}
	o := atomic.LoadUint64(&g.owners[i])
	if o&ownedBit == 0 || o&^(ownedBit|procBits) != m&^procBits {
		return 0, false
	}
	return int(o & procBits), true
}

// goneOwner says whether mark m, in marks slot i, was made by a process
// that has let its slot go: a writer that died waiting.
func (g *sharedGen) goneOwner(i int, m uint64) bool {
	p, ok := g.markOwner(i, m)
	return ok && p != g.proc-1 && !g.procAlive(p)
}

// clearOwnMarks clears the marks owned by this process's slot: made by a
// process that had the slot before and died waiting.
func (g *sharedGen) clearOwnMarks() {
	_, marks := g.turns()
	for i := range marks {
		m := atomic.LoadUint64(&marks[i])
		if p, ok := g.markOwner(i, m); ok && p == g.proc-1 {
			atomic.CompareAndSwapUint64(&marks[i], m, 0)
		}
	}
}

// turns returns the turn counter and the waiting marks, or nil when the
// file has none (tests that make a sharedGen of their own).
func (g *sharedGen) turns() (*uint64, []uint64) {
	if g == nil || len(g.mem) < sharedGenSize {
		return nil, nil
	}
	return g.turn, g.marks
}

// markWaiting marks a writer about to wait for the write lock at now and
// returns its slot, or -1 when it could not be marked.
func (g *sharedGen) markWaiting(now time.Time) int {
	_, marks := g.turns()
	stamp := uint64(now.UnixNano())
	for i := range marks {
		old := atomic.LoadUint64(&marks[i])
		if (old == 0 || stale(old, now)) && atomic.CompareAndSwapUint64(&marks[i], old, stamp) {
			if g.proc > 0 && i < len(g.owners) {
				atomic.StoreUint64(&g.owners[i], ownerWord(stamp, g.proc-1))
			}
			return i
		}
	}
	return -1
}

// clearWaiting clears the mark markWaiting set in slot.
func (g *sharedGen) clearWaiting(slot int) {
	if _, marks := g.turns(); slot >= 0 && slot < len(marks) {
		atomic.StoreUint64(&marks[slot], 0)
	}
}

// othersWaiting says whether a writer other than the one marked in slot
// mine (-1: none) is marked waiting, and not stale, at now. A mark whose
// process is gone does not count, and is cleared.
func (g *sharedGen) othersWaiting(now time.Time, mine int) bool {
	_, marks := g.turns()
	for i := range marks {
		m := atomic.LoadUint64(&marks[i])
		if i == mine || m == 0 || stale(m, now) {
			continue
		}
		if g.goneOwner(i, m) {
			atomic.CompareAndSwapUint64(&marks[i], m, 0)
			continue
		}
		return true
	}
	return false
}

// stale says whether a mark made at Unix nanoseconds m is past waitStale
// at now, or in the future by as much (a clock set back).
func stale(m uint64, now time.Time) bool {
	d := now.Sub(time.Unix(0, int64(m)))
	return d > waitStale || d < -waitStale
}

// tookTurn advances the turn counter for a BEGIN that took the write lock
// and returns its new value.
func (g *sharedGen) tookTurn() uint64 {
	turn, _ := g.turns()
	if turn == nil {
		return 0
	}
	return atomic.AddUint64(turn, 1)
}

// yield lets a marked waiter begin first when the caller had the last
// turn (last, what tookTurn returned it) and its run of turns, begun at
// began, has lasted quantum or longer, waiting at most yieldMax, and says
// whether it waited. It records hold, how long the caller held the lock
// in its last transaction, for the waiter's quantum.
func (g *sharedGen) yield(last uint64, began time.Time, quantum, hold time.Duration) bool {
	turn, _ := g.turns()
	now := time.Now()
	if turn == nil || atomic.LoadUint64(turn) != last || !g.runDue(began, quantum, now) {
		return false
	}
	if g.lastRun != nil {
		atomic.StoreUint64(g.lastRun, uint64(max(hold, 0)))
	}
	deadline := now.Add(yieldMax)
	for {
		time.Sleep(yieldPoll)
		now := time.Now()
		if atomic.LoadUint64(turn) != last || !g.othersWaiting(now, -1) || now.After(deadline) {
			return true
		}
	}
}

// clearMarks clears every waiting mark: called by a process that opened
// the file alone, when any left are a dead waiter's.
func (g *sharedGen) clearMarks() {
	_, marks := g.turns()
	for i := range marks {
		atomic.StoreUint64(&marks[i], 0)
	}
}

// quantum returns how long a run of turns begun now may last while
// another process waits: as long as the writer that last yielded held the
// lock in its last transaction, within turnQuantum and maxQuantum.
func (g *sharedGen) quantum() time.Duration {
	if g == nil || g.lastRun == nil {
		return turnQuantum
	}
	return min(max(time.Duration(atomic.LoadUint64(g.lastRun)), turnQuantum), maxQuantum)
}

// movedSince says whether another writer began since the turn last.
func (g *sharedGen) movedSince(last uint64) bool {
	turn, _ := g.turns()
	return turn != nil && atomic.LoadUint64(turn) != last
}

// beginWrite begins a write transaction (BEGIN IMMEDIATE, the write
// pool's _txlock) on c, taking turns with the other processes' writers
// (see above).
func (db *DB) beginWrite(ctx context.Context, c *sql.Conn) (*sql.Tx, error) {
	last := db.lastTurn.Load()
	if db.gen.yield(last, db.runBegan, db.quantum, db.lastHold) {
		db.yields.Add(1)
	}
	unmark := db.markWaiting()
	var tx *sql.Tx
	var err error
	if db.gen.movedSince(last) {
		tx, err = beginPolling(ctx, c)
	} else {
		tx, err = c.BeginTx(ctx, nil)
	}
	unmark()
	if err == nil {
		turn := db.gen.tookTurn()
		if turn != last+1 {
			// Another process began since this one's last turn: a new
			// run of turns, whose quantum is that process's last hold.
			db.runBegan, db.quantum = time.Now(), db.gen.quantum()
		}
		db.lastTurn.Store(turn)
		db.lastBegin = time.Now()
	} else {
		db.lastBegin = time.Time{} // nothing held: endWrite notes nothing
	}
	return tx, err
}

// markWaiting marks this store's writer waiting for the write lock, and
// returns the call that clears the mark.
func (db *DB) markWaiting() (unmark func()) {
	slot := db.gen.markWaiting(time.Now())
	db.waitSlot.Store(int32(slot))
	return func() {
		db.waitSlot.Store(-1)
		db.gen.clearWaiting(slot)
	}
}

// endWrite notes how long the transaction beginWrite began held the write
// lock: the caller calls it once that transaction has ended.
func (db *DB) endWrite() {
	if !db.lastBegin.IsZero() {
		db.lastHold = time.Since(db.lastBegin)
		db.lastBegin = time.Time{}
	}
}

// beginPolling begins a write transaction on c without the busy handler,
// trying again every yieldPoll while the lock is busy, at most beginMax
// or until ctx is done (pollBusy).
func beginPolling(ctx context.Context, c *sql.Conn) (tx *sql.Tx, err error) {
	err = pollBusy(ctx, c, beginMax, func() (err error) {
		tx, err = c.BeginTx(ctx, nil)
		return err
	})
	if errors.Is(err, errBusyHandler) {
		return c.BeginTx(ctx, nil)
	}
	return tx, err
}

// pollBusy runs try on c with busy_timeout 0, so that a statement that
// finds a lock busy fails at once rather than waiting in SQLite's busy
// handler, and again every yieldPoll while it fails so (SQLITE_BUSY, or
// errRestartBusy), at most for most or until ctx is done; then it sets the
// busy timeout back. It returns try's last error, or ctx's, or
// errBusyHandler, without trying, when it could not set the timeout.
func pollBusy(ctx context.Context, c *sql.Conn, most time.Duration, try func() error) error {
	if _, err := c.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return errBusyHandler
	}
	defer func() {
		// The connection's own setting again (baseDSN); it applies from
		// the next statement, inside the transaction begun or not. A
		// connection that keeps 0 would fail its next waits at once, so
		// one that cannot be set back is closed by the pool once
		// released (driver.ErrBadConn), and the next opened with the DSN.
		if _, err := c.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA busy_timeout = %d", busyTimeoutMS)); err != nil {
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	deadline := time.Now().Add(most)
	for {
		err := try()
		if !isBusy(err) && !errors.Is(err, errRestartBusy) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(yieldPoll):
		}
	}
}

// errBusyHandler: pollBusy could not turn the busy handler off.
var errBusyHandler = errors.New("busy_timeout = 0 failed")

// isBusy says whether err is SQLite's SQLITE_BUSY, or one of its
// extended codes.
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// othersWriting says whether another process's writer has begun since
// this store's last turn, or waits for the write lock.
func (db *DB) othersWriting() bool {
	return db.gen.movedSince(db.lastTurn.Load()) || db.gen.othersWaiting(time.Now(), int(db.waitSlot.Load()))
}

// cutGroup says whether the commit group under way should end, and
// commit, after the members it has run, leaving the rest for the next
// group: when this store's run of turns has lasted its quantum and another
// process's writer waits. The writer then yields before its next BEGIN
// (beginWrite). A group of many long members (`custos seed`'s batches of
// 500 customers, four to a group) would otherwise hold the lock for all
// of them while the other waits.
func (db *DB) cutGroup() bool {
	return db.gen.runDue(db.runBegan, db.quantum, time.Now())
}

// runDue says whether a run of turns begun at began has lasted quantum or
// longer at now while another writer is marked waiting: the writer then
// lets it in at its next transaction (yield, cutGroup).
func (g *sharedGen) runDue(began time.Time, quantum time.Duration, now time.Time) bool {
	return now.Sub(began) >= quantum && g.othersWaiting(now, -1)
}

// OthersWriting says whether another process's writer has begun on the
// file since this store's last write, or waits to: a caller about to
// write much in one transaction (`custos seed`'s batches) writes less at a
// time then, since that writer may wait for the whole transaction.
func (db *DB) OthersWriting() bool { return db.othersWriting() }
