package sqlite

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"custos"
)

// releaseProcSlot lets this process's slot go, as the kernel does for a
// process that dies, while the store goes on.
func (g *sharedGen) releaseProcSlot(t *testing.T) {
	t.Helper()
	lk := slotLock(g.proc-1, unix.F_UNLCK)
	if err := unix.FcntlFlock(g.f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
}

// openGen opens the counters' file of the database at path, as a process
// opening the store does; it is closed at cleanup, if the test has not
// closed it, as a process dies, before.
func openGen(t *testing.T, path string) *sharedGen {
	t.Helper()
	g, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.close() })
	return g
}

// die closes g's file without clearing anything: its process slot goes,
// as the kernel lets a dead process's go.
func die(t *testing.T, g *sharedGen) {
	t.Helper()
	if err := g.close(); err != nil {
		t.Fatal(err)
	}
}

// openInSlot opens the file as openGen does, and requires the opener to
// have taken slot proc (a process slot plus one), a dead one's.
func openInSlot(t *testing.T, path string, proc int) *sharedGen {
	t.Helper()
	g := openGen(t, path)
	if g.proc != proc {
		t.Fatalf("the next process took slot %d, want the dead one's, %d (plus one)", g.proc, proc)
	}
	return g
}

// TestReadCacheAfterDeadCommitter: a process killed after committing a
// change of cached rows, before it advanced the shared counter (here a
// second store on the file whose writer answers its group without
// advancing it, then lets its process slot go as a dead process's is let
// go), does not leave the other process's read cache serving the rows it
// changed: the other's next read finds the dead slot's pending word,
// advances the counter for it, and reads the change. Before, the erased
// customer's data key stayed in the other's cache until something else
// moved the counter.
func TestReadCacheAfterDeadCommitter(t *testing.T) {
	ctx := context.Background()
	a := openInternal(t)
	b := openSecond(t, a)
	if a.rc == nil {
		t.Fatal("the store has no read cache")
	}
	if a.gen.proc == 0 || b.gen.proc == 0 {
		t.Fatalf("process slots %d and %d (plus one), want both", a.gen.proc, b.gen.proc)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := a.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: "s1", Sealed: map[string][]byte{"name": []byte("v0")}, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "s1", Version: 1, KEKVersion: 1, Wrapped: []byte("wrapped"), CreatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	read := func() (name string, key bool) {
		t.Helper()
		err := a.View(ctx, func(tx custos.Tx) error {
			st, err := tx.GetSubject(ctx, "s1")
			if err != nil {
				return err
			}
			name = string(st.Sealed["name"])
			_, err = tx.GetDataKey(ctx, "s1")
			if custos.ErrorCode(err) == custos.ENOTFOUND {
				return nil
			}
			key = err == nil
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return name, key
	}
	read()
	if name, key := read(); name != "v0" || !key || a.ReadCacheStats().Hits == 0 {
		t.Fatalf("before: %q, key %v, %+v; want v0 with its key, from the cache", name, key, a.ReadCacheStats())
	}

	testDieAfterCommit.Store(b)
	err := b.Update(ctx, func(tx custos.Tx) error {
		if err := tx.DeleteDataKey(ctx, "s1"); err != nil {
			return err
		}
		return tx.UpdateSubject(ctx, &custos.StoredSubject{ID: "s1", Sealed: map[string][]byte{"name": []byte("erased")}, UpdatedAt: time.Now()})
	})
	testDieAfterCommit.Store(nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := atomic.LoadUint64(&a.gen.pending[b.gen.proc-1]); w == 0 {
		t.Fatal("the dead writer's pending word is clear, want it set from before its COMMIT")
	}
	// Still alive: its change is its own to announce, and a's cache,
	// which the counter did not tell, still holds the old rows.
	if name, key := read(); name != "v0" || !key {
		t.Fatalf("with the writer alive: %q, key %v; want the cached v0 (the counter has not moved)", name, key)
	}
	b.gen.releaseProcSlot(t)
	time.Sleep(askEvery) // the read above asked after b's slot just now
	if name, key := read(); name != "erased" || key {
		t.Errorf("after the writer died: %q, key %v; want the erased row and no key", name, key)
	}
	if w := atomic.LoadUint64(&a.gen.pending[b.gen.proc-1]); w != 0 {
		t.Errorf("the dead writer's pending word is %d, want it cleared", w)
	}
}

// TestGoneWaiterMark: a waiting mark names the process slot of the
// process that made it; once that process has let its slot go (here its
// counters' file is closed, which releases the slot's lock as the kernel
// does when a process dies), the mark no longer counts and is cleared by
// the writer that finds it. A mark that names no owner (made by a process
// of an earlier build) counts until it is stale, and a process that takes
// a dead one's slot clears the marks it left.
func TestGoneWaiterMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	live, dead := openGen(t, path), openGen(t, path)
	if live.proc == 0 || dead.proc == 0 || live.proc == dead.proc {
		t.Fatalf("process slots %d and %d (plus one), want two different ones", live.proc, dead.proc)
	}
	now := time.Now()
	slot := dead.markWaiting(now)
	if slot < 0 || !live.othersWaiting(now, -1) {
		t.Fatalf("a live process's mark (slot %d) does not count", slot)
	}
	deadProc := dead.proc
	die(t, dead)
	if live.othersWaiting(now, -1) {
		t.Error("the mark of a process that let its slot go still counts")
	}
	if m := atomic.LoadUint64(&live.marks[slot]); m != 0 {
		t.Errorf("the gone process's mark is %d, want it cleared", m)
	}
	// A mark without its owner word counts until it is stale: the word
	// left in the slot is the gone process's, of another time.
	atomic.StoreUint64(&live.marks[slot], uint64(now.Add(time.Microsecond).UnixNano()))
	if !live.othersWaiting(now, -1) {
		t.Error("a mark without an owner does not count")
	}
	if live.othersWaiting(now.Add(waitStale+time.Second), -1) {
		t.Error("a mark without an owner counts past waitStale")
	}
	// A mark the dead process left where no writer looked: the next
	// process to take its slot clears it.
	stamp := uint64(now.UnixNano())
	atomic.StoreUint64(&live.marks[slot], stamp)
	atomic.StoreUint64(&live.owners[slot], ownerWord(stamp, deadProc-1))
	openInSlot(t, path, deadProc)
	if m := atomic.LoadUint64(&live.marks[slot]); m != 0 {
		t.Errorf("the dead process's mark is %d after its slot was taken again, want it cleared", m)
	}
}

// TestGoneWaiterNotYieldedTo: a writer that died while marked waiting
// holds no one up. The store's writes go on without yielding to its mark,
// where before each of them yielded for yieldMax until the mark was stale
// (15 s): beside `custos seed`, a node killed so stretched the seed from
// about 4 to 18 s. A live waiter's mark is still yielded to.
func TestGoneWaiterNotYieldedTo(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 1<<30, 1<<30)
	db := openInternal(t)
	dead := openGen(t, db.path)
	if dead.markWaiting(time.Now()) < 0 {
		t.Fatal("no slot for the mark")
	}
	die(t, dead)
	for i := range 5 {
		if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, i) }); err != nil {
			t.Fatal(err)
		}
	}
	if y := db.WriterStats().Yields; y != 0 {
		t.Errorf("the writer yielded %d times to the mark of a process that is gone, want none", y)
	}
	live := openGen(t, db.path)
	if live.markWaiting(time.Now()) < 0 {
		t.Fatal("no slot for the live mark")
	}
	if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 5) }); err != nil {
		t.Fatal(err)
	}
	if y := db.WriterStats().Yields; y != 1 {
		t.Errorf("the writer yielded %d times to a live waiter's mark, want once", y)
	}
	checkChain(t, db, 6)
}

// TestPendingWordOfDeadSlot: a pending word left under a process slot by
// a process that died with it set (here one whose counters' file is
// closed) is repaired by the next process to take the slot: the shared
// counters move, which empties every read cache on the file at its next
// View, and the word is cleared.
func TestPendingWordOfDeadSlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	stay, dead := openGen(t, path), openGen(t, path)
	slot := dead.proc
	if dead.pendCache() == 0 {
		t.Fatal("no token: the process has no slot")
	}
	before, data := stay.load(), stay.loadData()
	die(t, dead)
	next := openInSlot(t, path, slot)
	if stay.load() != before+1 || stay.loadData() != data+1 {
		t.Errorf("counters %d and %d after the slot was taken again, want %d and %d", stay.load(), stay.loadData(), before+1, data+1)
	}
	if w := atomic.LoadUint64(&stay.pending[slot-1]); w != 0 {
		t.Errorf("the dead process's pending word is %d, want it cleared", w)
	}
	// A live process's word is its own to clear: no repair.
	tok := next.pendCache()
	if stay.repairDead() || stay.load() != before+1 {
		t.Error("a live process's pending word was repaired")
	}
	next.unpendCache(tok)
	if w := atomic.LoadUint64(&stay.pending[slot-1]); w != 0 {
		t.Errorf("pending word %d after unpendCache, want 0", w)
	}
}

// TestDataCommitOfDeadSlot: a process killed inside a data commit (after
// commitData counted it begun, before it counted it ended) left the file's
// commits begun and ended apart, which stopped early answers (durable.go)
// for every process on the file until one opened it alone. The others now
// count it ended once its slot is free, after advancing the data counter,
// and a process that takes the slot does the same at once.
func TestDataCommitOfDeadSlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	stay := openGen(t, path)
	// A process inside a commit: what commitData has done before COMMIT.
	inCommit := func() *sharedGen {
		t.Helper()
		g := openGen(t, path)
		atomic.AddUint64(g.b, 1)
		g.slotAdd(g.slotBegun)
		return g
	}
	dead := inCommit()
	if _, settled := stay.settledData(); settled {
		t.Fatal("a commit under way counts as settled")
	}
	data := stay.loadData()
	// Alive: its commit is its own to end.
	if stay.repairDead() {
		t.Error("repaired a live process's commit")
	}
	die(t, dead)
	time.Sleep(askEvery) // the repair above asked after its slot just now
	if !stay.repairDead() {
		t.Error("the dead process's commit was not repaired")
	}
	if got, settled := stay.settledData(); !settled || got != data+1 {
		t.Errorf("after the repair: data %d, settled %v; want %d and settled", got, settled, data+1)
	}
	if stay.repairDead() {
		t.Error("repaired twice")
	}
	// The next process to take a dead one's slot repairs it at once.
	dead = inCommit()
	slot := dead.proc
	die(t, dead)
	openInSlot(t, path, slot)
	if got, settled := stay.settledData(); !settled || got != data+2 {
		t.Errorf("after the slot was taken again: data %d, settled %v; want %d and settled", got, settled, data+2)
	}
}

// BenchmarkRepairDead is what each View pays to look for what a dead
// process left (readCache.begin): the slots' words read, with no slot
// left anything (a process alone on the file), and with another live
// process's commit under way, which asks the kernel about its slot.
func BenchmarkRepairDead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "custos.db")
	g, err := openSharedGen(path)
	if err != nil {
		b.Fatal(err)
	}
	defer g.close()
	b.Run("alone", func(b *testing.B) {
		for b.Loop() {
			g.repairDead()
		}
	})
	other, err := openSharedGen(path)
	if err != nil {
		b.Fatal(err)
	}
	defer other.close()
	atomic.AddUint64(other.b, 1)
	other.slotAdd(other.slotBegun)
	b.Run("beside a commit", func(b *testing.B) {
		for b.Loop() {
			g.repairDead()
		}
	})
}

// TestProcSlotsRunOut: a ninth process on the file gets no slot; it works
// as before slots (its marks name no owner and count until stale, it sets
// no pending word), and takes a slot the next time it opens once one is
// free.
func TestProcSlotsRunOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	gens := make([]*sharedGen, turnSlots)
	for i := range gens {
		gens[i] = openGen(t, path)
		if gens[i].proc == 0 {
			t.Fatalf("process %d got no slot", i)
		}
	}
	ninth := openGen(t, path)
	if ninth.proc != 0 {
		t.Fatalf("a ninth process got slot %d (plus one), want none", ninth.proc)
	}
	if ninth.pendCache() != 0 {
		t.Error("a process without a slot set a pending word")
	}
	now := time.Now()
	slot := ninth.markWaiting(now)
	if slot < 0 {
		t.Fatal("no mark")
	}
	if _, ok := gens[0].markOwner(slot, atomic.LoadUint64(&gens[0].marks[slot])); ok {
		t.Error("a mark of a process without a slot names an owner")
	}
	if !gens[0].othersWaiting(now, -1) {
		t.Error("a mark without an owner does not count")
	}
	ninth.clearWaiting(slot)
	die(t, gens[3])
	if again := openGen(t, path); again.proc != 4 {
		t.Errorf("after slot 3 was let go, an opener took slot %d (plus one), want 4", again.proc)
	}
}
