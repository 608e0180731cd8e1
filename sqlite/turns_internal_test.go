package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"custos"
)

// TestWritersTakeTurns: a process running write transactions back to
// back on the file (here a second store on it, as `custos retention run`
// beside a serving node) lets the other's waiting writer in after the
// transaction in progress, instead of after all of them (turns.go). The
// assertion counts the busy store's transactions that ended while each
// write of the other waited; without turns, a write waited for most of
// the run (SQLite's busy handler tries again up to 100 ms apart and
// seldom lands in the gaps between them).
func TestWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	busy := openInternal(t)
	node := openSecond(t, busy)

	// The busy store runs windows until the writes are done, at most
	// maxWindows of them. Twenty writes: a write often gets the lock
	// without a yield, in a gap after a window's commit or while the busy
	// store's next BEGIN sleeps in SQLite's busy handler after the
	// previous write (under three busy loops 3 to 8 of 20 writes came by a
	// yield, in 30 runs). With ten writes, that none did, and the yield
	// count below stayed 0, failed a run in a hundred.
	const maxWindows, writes = 200, 20
	var done atomic.Int64 // the busy store's transactions committed
	var stop atomic.Bool  // the writes are done
	var wg sync.WaitGroup
	// Each window queues the next as it begins, so that the busy store's
	// writer begins the next as soon as one commits, as a store with work
	// queued does: the other's write gets in by a yield, not in a gap
	// between one window's end and the next one's request (on a loaded
	// host such gaps let every write in without a yield, and the test
	// then proved nothing about turns).
	var window func(i int)
	window = func(i int) {
		defer wg.Done()
		var next sync.Once
		// A window holds the write lock for 25 ms, longer than a turn's
		// quantum, as a retention window holds it for 11–15 ms on a
		// store of a million alone and about 30 ms beside a busy node.
		err := busy.Update(ctx, func(tx custos.Tx) error {
			if i+1 < maxWindows && !stop.Load() {
				next.Do(func() {
					wg.Add(1)
					go window(i + 1)
				})
			}
			if err := appendEvent(ctx, tx, 1000+i); err != nil {
				return err
			}
			time.Sleep(25 * time.Millisecond)
			return nil
		})
		if err != nil {
			t.Errorf("window %d: %v", i, err)
			return
		}
		done.Add(1)
	}
	wg.Add(1)
	go window(0)
	for done.Load() < 3 {
		time.Sleep(time.Millisecond)
	}
	// What a write waited for is the busy store's commits (its writer's
	// groups, one a window) between the write's request and its
	// transaction's start, when it has the lock. Neither end waits for an
	// fsync: on a loaded host a window's caller, or the write's, may be
	// answered 25 ms or more after its commit, and the count by answers
	// then took in a window that had not held the write up.
	worst := uint64(0)
	for i := range writes {
		before := busy.groups.Load()
		var waited uint64
		if err := node.Update(ctx, func(tx custos.Tx) error {
			waited = busy.groups.Load() - before
			return appendEvent(ctx, tx, i)
		}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		worst = max(worst, waited)
	}
	finished := done.Load()
	stop.Store(true)
	wg.Wait()
	if worst > 3 {
		t.Errorf("a write waited while the busy store committed %d transactions, want at most 3 (the one in progress, and the one it may have begun as the write marked itself)", worst)
	}
	if finished >= maxWindows {
		t.Errorf("the writes ended after the busy store's %d transactions, want them between", maxWindows)
	}
	if y := busy.WriterStats().Yields; y == 0 {
		t.Error("the busy store never yielded to the waiting writer")
	}
	// The other store's BEGINs polled without the busy handler (the busy
	// store had begun since each of its turns); its connection has its
	// busy timeout back.
	var ms int
	if err := node.write.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != busyTimeoutMS {
		t.Errorf("write connection's busy_timeout after polling BEGINs: %d, %v; want %d", ms, err, busyTimeoutMS)
	}
	checkChain(t, busy, done.Load()+writes)
}

// TestGroupCutForWaiter: a commit group of long members (`custos seed`'s
// batches of 500 customers, four to a group) that finds another process's
// writer waiting ends after the member in progress, commits and answers
// what it ran, lets that writer in, and runs the rest as the writer's next
// group (cutGroup). Without the cut the other waited for the whole group.
func TestGroupCutForWaiter(t *testing.T) {
	// No idle audit filing: each store writes only when asked here.
	quietAuditFiling(t, auditFileChunk, auditFileIdleMax)
	ctx := context.Background()
	seed := openInternal(t)
	node := openSecond(t, seed)

	var mu sync.Mutex
	var order []string // whose write ran, in order
	note := func(who string) {
		mu.Lock()
		order = append(order, who)
		mu.Unlock()
	}
	errs := make(chan error, 6)
	// A first write holds the seed's writer while four more queue behind
	// it, so that those run as one group.
	release := make(chan struct{})
	var held sync.Once
	holding := make(chan struct{})
	go func() {
		errs <- seed.Update(ctx, func(tx custos.Tx) error {
			held.Do(func() { close(holding) })
			<-release
			return appendEvent(ctx, tx, 100)
		})
	}()
	<-holding
	var waiting sync.Once
	for i := range 4 {
		go func() {
			errs <- seed.Update(ctx, func(tx custos.Tx) error {
				if err := appendEvent(ctx, tx, 200+i); err != nil {
					return err
				}
				// While the group's first member holds the lock, the
				// node's writer begins waiting for it.
				waiting.Do(func() {
					go func() {
						errs <- node.Update(ctx, func(tx custos.Tx) error {
							note("node")
							return appendEvent(ctx, tx, 300)
						})
					}()
					for !seed.gen.othersWaiting(time.Now(), -1) {
						time.Sleep(time.Millisecond)
					}
				})
				// Longer than the least quantum, as a seed batch is.
				time.Sleep(2 * turnQuantum)
				note(fmt.Sprint("seed", i))
				return nil
			})
		}()
	}
	// The four reach the writer's queue while the first write holds it.
	time.Sleep(100 * time.Millisecond)
	close(release)
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(order) != 5 || order[1] != "node" {
		t.Errorf("writes ran in the order %v, want the node's second, after the member in progress when it began waiting", order)
	}
	if st := seed.WriterStats(); st.Cuts != 1 || st.Members != 5 || st.Groups != 3 {
		t.Errorf("seed's writer: %d cuts, %d members in %d groups; want one cut, and the five writes counted once each, in three groups (the first write's, the cut one's, its rest's)", st.Cuts, st.Members, st.Groups)
	}
	checkChain(t, seed, 6)
}

// TestBeginPolling: a BEGIN without the busy handler fails with
// SQLITE_BUSY while another connection writes, is tried again, and
// begins once that one commits; a BEGIN that cannot begin stops when its
// context ends.
func TestBeginPolling(t *testing.T) {
	ctx := context.Background()
	a := openInternal(t)
	b := openSecond(t, a)
	ca, err := a.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := b.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	ta, err := ca.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Rollback() // ended below; this one is for a test that stops early
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if _, err := beginPolling(short, cb); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BEGIN while another writes, until the context ends: %v, want its deadline", err)
	}
	if _, err := cb.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		t.Fatal(err)
	}
	_, err = cb.BeginTx(ctx, nil)
	if !isBusy(err) {
		t.Fatalf("BEGIN with no busy handler while another writes: %v, want SQLITE_BUSY", err)
	}
	if isBusy(errors.New("database is locked")) || isBusy(nil) {
		t.Error("isBusy took an error that is not SQLite's for SQLITE_BUSY")
	}
	var committed atomic.Bool
	go func() {
		time.Sleep(20 * time.Millisecond)
		committed.Store(true)
		if err := ta.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
			t.Error(err)
		}
	}()
	tb, err := beginPolling(ctx, cb)
	if err != nil {
		t.Fatalf("BEGIN after the other's end: %v", err)
	}
	if !committed.Load() {
		t.Error("a BEGIN began while another connection held the write lock")
	}
	var ms int
	if err := tb.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != busyTimeoutMS {
		t.Errorf("busy_timeout inside the transaction begun: %d, %v; want %d", ms, err, busyTimeoutMS)
	}
	if err := tb.Rollback(); err != nil {
		t.Fatal(err)
	}
}

// TestWaitingMarks: a waiting mark counts until it is cleared or grows
// stale; a stale one is taken over; a process that opens the file alone
// clears every mark, a dead waiter's.
func TestWaitingMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	g, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if g.othersWaiting(now, -1) {
		t.Fatal("a new file has a waiter")
	}
	slot := g.markWaiting(now)
	if slot < 0 || !g.othersWaiting(now, -1) {
		t.Fatalf("marked in slot %d: waiting %v, want a slot and a waiter", slot, g.othersWaiting(now, -1))
	}
	if g.othersWaiting(now, slot) {
		t.Error("a writer's own mark counts as another's")
	}
	if g.othersWaiting(now.Add(waitStale+time.Second), -1) {
		t.Error("a mark past waitStale still counts")
	}
	if g.othersWaiting(now.Add(-waitStale-time.Second), -1) {
		t.Error("a mark that far in the future (a clock set back) still counts")
	}
	// Every slot taken: the next writer waits unmarked, then takes over
	// a stale one.
	for i := 1; i < turnSlots; i++ {
		if s := g.markWaiting(now); s < 0 {
			t.Fatalf("mark %d: no slot", i)
		}
	}
	if s := g.markWaiting(now); s != -1 {
		t.Fatalf("a ninth mark got slot %d, want none", s)
	}
	if s := g.markWaiting(now.Add(waitStale + time.Second)); s < 0 {
		t.Fatal("a stale mark was not taken over")
	}
	g.clearWaiting(slot)
	// The turn counter: a writer that had the last turn yields to a
	// waiter until the counter moves on; one that did not, never.
	last := g.tookTurn()
	other, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	moved := make(chan struct{})
	go func() {
		defer close(moved)
		time.Sleep(20 * time.Millisecond)
		other.tookTurn()
	}()
	if !g.yield(last, time.Time{}, turnQuantum, 0) {
		t.Error("the writer with the last turn did not yield to the marked waiters")
	}
	<-moved
	if g.yield(last, time.Time{}, turnQuantum, 0) {
		t.Error("a writer yielded though another had begun since its turn")
	}
	// Within its quantum a writer does not yield.
	if g.yield(g.tookTurn(), time.Now(), time.Hour, 0) {
		t.Error("a writer yielded within its quantum")
	}
	// The quantum: how long the writer that last yielded held the lock in
	// its last transaction, within bounds.
	if !g.yield(g.tookTurn(), time.Time{}, 0, 300*time.Millisecond) {
		t.Fatal("no yield to the marked waiters")
	}
	if q := other.quantum(); q != 300*time.Millisecond {
		t.Errorf("quantum after another's hold of 300ms: %v, want 300ms", q)
	}
	atomic.StoreUint64(g.lastRun, uint64(time.Hour))
	if q := other.quantum(); q != maxQuantum {
		t.Errorf("quantum after a hold of an hour: %v, want %v", q, maxQuantum)
	}
	atomic.StoreUint64(g.lastRun, uint64(300*time.Millisecond))
	if q := other.quantum(); q != 300*time.Millisecond {
		t.Errorf("quantum after a hold of 300ms: %v, want 300ms", q)
	}
	atomic.StoreUint64(g.lastRun, uint64(time.Millisecond))
	if q := other.quantum(); q != turnQuantum {
		t.Errorf("quantum after a hold of 1ms: %v, want %v", q, turnQuantum)
	}
	// movedSince: whether another writer began since a turn.
	mine := g.tookTurn()
	if g.movedSince(mine) {
		t.Error("no one began since: moved")
	}
	other.tookTurn()
	if !g.movedSince(mine) {
		t.Error("another began since: not moved")
	}
	if err := other.close(); err != nil {
		t.Fatal(err)
	}
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
	// Marks left by processes that are gone are cleared by the next one
	// to open the file alone.
	g, err = openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	if g.othersWaiting(now, -1) {
		t.Error("marks left by closed processes were not cleared by one opening the file alone")
	}
}

// TestWALRestartWaitsForOthers: the writer's WAL restart is left for a
// later group while another process has written since this one's last
// turn, unless the WAL is overdue, and runs once this one has written
// again.
func TestWALRestartWaitsForOthers(t *testing.T) {
	// Neither store's writer files its audit index when idle, which is a
	// turn of its own: each writes only when asked here.
	quietAuditFiling(t, auditFileChunk, auditFileIdleMax)
	ctx := context.Background()
	db := openInternal(t)
	other := openSecond(t, db)
	if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 1) }); err != nil {
		t.Fatal(err)
	}
	if err := other.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 2) }); err != nil {
		t.Fatal(err)
	}
	if !db.OthersWriting() {
		t.Error("OthersWriting after another process wrote since this one: false")
	}
	db.walReset.Store(true)
	db.resetWAL()
	if !db.walReset.Load() {
		t.Fatal("the WAL restart ran while another process had begun since this one's last turn")
	}
	// Overdue, it runs in a turn of its own though the other began since,
	// even while the other holds the write lock when it starts: it waits
	// for the lock without the busy handler, and takes the turn.
	oc, err := other.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	otx, err := oc.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	other.gen.tookTurn()
	ended := make(chan error, 1)
	go func() {
		time.Sleep(50 * time.Millisecond)
		ended <- otx.Commit()
	}()
	db.walOverdue.Store(true)
	db.resetWAL()
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	oc.Close()
	if db.walReset.Load() || db.walOverdue.Load() {
		t.Fatal("an overdue WAL restart did not run while another process took turns")
	}
	if db.OthersWriting() {
		t.Error("after the overdue restart's turn: another process's turn is the last")
	}
	var ms int
	if err := db.write.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&ms); err != nil || ms != busyTimeoutMS {
		t.Errorf("write connection's busy_timeout after the restart's turn: %d, %v; want %d", ms, err, busyTimeoutMS)
	}
	if err := other.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 4) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 5) }); err != nil {
		t.Fatal(err)
	}
	if db.OthersWriting() {
		t.Error("OthersWriting once this store had the last turn: true")
	}
	// The writer itself restarts the WAL after a group when asked; here
	// the test asks after the group, as the writer would before its next.
	db.walReset.Store(true)
	db.resetWAL()
	if db.walReset.Load() {
		t.Error("the WAL restart did not run once this store had the last turn")
	}
}
