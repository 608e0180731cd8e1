package sqlite

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"custos"
)

// syncHook replaces the syncer's fsync of the WAL for the test: while
// block is set, each call reports on entered and waits for release; while
// fail is set, it fails with EIO instead of syncing.
type syncHook struct {
	block, fail atomic.Bool
	calls       atomic.Int64
	entered     chan struct{}
	release     chan struct{}
	once        sync.Once
}

// unblock lets every held and later sync through.
func (h *syncHook) unblock() {
	h.block.Store(false)
	h.once.Do(func() { close(h.release) })
}

// held waits until the syncer is inside a held sync.
func (h *syncHook) held(t *testing.T) {
	t.Helper()
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the syncer made no sync in 10 s")
	}
}

func hookWALSync(t *testing.T) *syncHook {
	t.Helper()
	h := &syncHook{entered: make(chan struct{}, 64), release: make(chan struct{})}
	old := walDataSync
	walDataSync = func(f *os.File) error {
		h.calls.Add(1)
		if h.fail.Load() {
			return syscall.EIO
		}
		if h.block.Load() {
			h.entered <- struct{}{}
			<-h.release
		}
		return f.Sync()
	}
	t.Cleanup(func() { walDataSync = old })
	return h
}

// durableSubject is the subject the tests below change.
const durableSubject custos.SubjectID = "sub_durable"

// openDurable opens a store whose syncer's fsync h controls, with
// durableSubject stored as "v1".
func openDurable(t *testing.T) (*syncHook, *DB) {
	t.Helper()
	h := hookWALSync(t)
	db := openKept(t, filepath.Join(t.TempDir(), "d.db"), 0)
	putSubject(t, db, durableSubject, "v1", false)
	return h, db
}

// viewName reads subject id's "name" in View.
func viewName(ctx context.Context, db *DB, id custos.SubjectID) (string, error) {
	name, _, err := readName(ctx, db.View, id)
	return name, err
}

// notYet fails the test if any of chs delivers within a while: what they
// wait for must not happen while the sync is held.
func notYet(t *testing.T, what string, chs ...<-chan error) {
	t.Helper()
	deadline := time.After(200 * time.Millisecond)
	for {
		for _, ch := range chs {
			select {
			case err := <-ch:
				t.Fatalf("%s returned (%v) while the WAL's sync was held", what, err)
			default:
			}
		}
		select {
		case <-deadline:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// A commit group's callers are answered only after the syncer's fsync of
// the WAL, and a View that may have seen the group returns only then too;
// the writer goes on meanwhile, and one fsync answers every group
// committed before it began. A Glance shows the group at once: core
// answers such a read only after its audit event's commit (durable.go).
func TestDurableAnswersAfterSync(t *testing.T) {
	h, db := openDurable(t)
	ctx := context.Background()
	if !db.dur.bound.Load() {
		t.Fatal("the write connection did not name its durability: every commit syncs at once")
	}
	deferred0 := db.dur.deferred.Load()

	h.block.Store(true)
	defer h.unblock() // before the store's Close at cleanup
	updated := make(chan error, 1)
	go func() { updated <- storeName(ctx, db, durableSubject, "v2", true) }()
	h.held(t) // the syncer holds the sync that would answer it
	if db.dur.deferred.Load() == deferred0 {
		t.Fatal("the update's commit synced at once instead of leaving it to the syncer")
	}
	if got, _ := glanceName(t, db, durableSubject); got != "v2" {
		t.Fatalf("Glance while the sync is held: got %q, want the committed v2", got)
	}
	viewed := make(chan error, 1)
	var viewedName string
	go func() {
		var err error
		viewedName, err = viewName(ctx, db, durableSubject)
		viewed <- err
	}()
	// Three more groups, each committed while the first sync is held.
	more := make(chan error, 3)
	groups := db.WriterStats().Groups
	for i := range 3 {
		go func() { more <- storeName(ctx, db, durableSubject, "v"+string(rune('3'+i)), true) }()
		for db.dur.queued() < i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	if got := db.WriterStats().Groups - groups; got != 3 {
		t.Fatalf("%d groups committed during the held sync, want 3", got)
	}
	notYet(t, "a write or a View", updated, viewed, more)

	calls := h.calls.Load()
	h.unblock()
	for _, ch := range []chan error{updated, viewed, more, more, more} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	if viewedName == "v1" {
		t.Error("View returned the value from before the held group")
	}
	if got := h.calls.Load() - calls; got != 1 {
		t.Errorf("the three groups committed during the held sync took %d more syncs, want 1", got)
	}
	if st := db.WriterStats(); st.Syncs != uint64(h.calls.Load()) {
		t.Errorf("WriterStats: %d syncs, want the %d made", st.Syncs, h.calls.Load())
	}
}

// After a failed fsync the store answers the writes it covered with an
// internal error, refuses every later write without committing it, and
// fails a View that might show what the sync lost.
func TestDurableSyncFailure(t *testing.T) {
	h, db := openDurable(t)
	ctx := context.Background()

	h.fail.Store(true)
	err := storeName(ctx, db, durableSubject, "v2", true)
	if custos.ErrorCode(err) != custos.EINTERNAL || !errors.Is(err, syscall.EIO) {
		t.Fatalf("update whose sync failed: got %v, want EINTERNAL wrapping EIO", err)
	}
	h.fail.Store(false)
	calls := h.calls.Load()
	err = storeName(ctx, db, durableSubject, "v3", true)
	if custos.ErrorCode(err) != custos.EINTERNAL || !errors.Is(err, syscall.EIO) {
		t.Fatalf("update after the failed sync: got %v, want the same refusal", err)
	}
	if got, _ := glanceName(t, db, durableSubject); got == "v3" {
		t.Error("a write refused after the failed sync was committed")
	}
	if _, err := viewName(ctx, db, durableSubject); !errors.Is(err, syscall.EIO) {
		t.Errorf("View after the failed sync: got %v, want the refusal", err)
	}
	if got := h.calls.Load(); got != calls {
		t.Errorf("%d syncs after the failure, want none: a second fsync could succeed without writing what was lost", got-calls)
	}
}

// The sync after a new WAL header is made at once, inside the commit,
// never left to the syncer (durable.go: SQLite's ticket ff5be73dee); the
// commit's own sync is left to the syncer.
func TestDurableHeaderSyncAtOnce(t *testing.T) {
	db := openKept(t, filepath.Join(t.TempDir(), "d.db"), 0)
	ctx := context.Background()
	putSubject(t, db, "sub_a", "v1", false)
	var headers, others atomic.Int64
	walSynced = func(header bool) {
		if header {
			headers.Add(1)
		} else {
			others.Add(1)
		}
	}
	t.Cleanup(func() { walSynced = nil })

	putSubject(t, db, "sub_b", "v1", false)
	if headers.Load() != 0 || others.Load() != 0 {
		t.Fatalf("a commit into a WAL already begun synced at once (%d after a header, %d others), want none", headers.Load(), others.Load())
	}
	// An empty WAL: the next commit writes a new header.
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	deferred := db.dur.deferred.Load()
	putSubject(t, db, "sub_c", "v1", false)
	if headers.Load() != 1 {
		t.Errorf("the commit that began a new WAL made %d syncs after its header at once, want 1", headers.Load())
	}
	if others.Load() != 0 {
		t.Errorf("%d other syncs made at once, want none", others.Load())
	}
	if db.dur.deferred.Load() != deferred+1 {
		t.Errorf("the commit's own sync: %d left to the syncer, want 1", db.dur.deferred.Load()-deferred)
	}
	if got, err := viewName(ctx, db, "sub_c"); err != nil || got != "v1" {
		t.Fatalf("read back: %q, %v", got, err)
	}
}

// queued counts the callers waiting for the syncer.
func (d *durability) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, a := range d.queue {
		n += len(a.group)
	}
	return n
}

// Close waits for the syncer to answer what it holds: a write in flight
// when the store is closed is answered as on disk, and Close returns
// after it.
func TestDurableCloseAnswersHeldWrites(t *testing.T) {
	h, db := openDurable(t)
	ctx := context.Background()

	h.block.Store(true)
	defer h.unblock()
	updated := make(chan error, 1)
	go func() { updated <- storeName(ctx, db, durableSubject, "v2", true) }()
	h.held(t)
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	notYet(t, "the write or Close", updated, closed)
	h.unblock()
	if err := <-updated; err != nil {
		t.Fatalf("the write held at Close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	reopened := openKept(t, db.Path(), 0)
	if got, err := viewName(ctx, reopened, durableSubject); err != nil || got != "v2" {
		t.Fatalf("after reopening: %q, %v; want v2", got, err)
	}
}

// auditOnly appends audit event n in a group of its own, as a read's
// request does, and reports its outcome on the returned channel.
func auditOnly(db *DB, n int) <-chan error {
	ch := make(chan error, 1)
	ctx := context.Background()
	go func() { ch <- db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, n) }) }()
	return ch
}

// answered waits for ch's outcome, failing the test on an error or when
// none comes within 10 s (a liveness bound, not a speed one).
func answered(t *testing.T, what string, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not answered in 10 s", what)
	}
}

// waitsForSync requires ch, a write in flight while h blocks syncs, to
// wait for the sync the syncer then holds, and to be answered once it is
// let through (with every later sync).
func waitsForSync(t *testing.T, h *syncHook, what string, ch <-chan error) {
	t.Helper()
	h.held(t)
	notYet(t, what, ch)
	h.block.Store(false)
	h.release <- struct{}{}
	answered(t, what+", after its sync", ch)
}

// waitQueued waits until n callers wait for the syncer, failing the test
// if any of chs is answered meanwhile, or after 10 s.
func waitQueued(t *testing.T, db *DB, n int, chs ...<-chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for db.dur.queued() < n {
		for _, ch := range chs {
			select {
			case err := <-ch:
				t.Fatalf("answered (%v) before its sync, while the sync of an earlier data write was held", err)
			default:
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers wait for the syncer after 10 s, want %d", db.dur.queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// With Options.ReadAuditCommitted (read_audit_durability "committed"),
// a group that wrote nothing but audit events is answered once committed,
// while its sync is still to come, and the syncer makes that sync with no
// caller waiting for it (S5: the event reaches the disk). A group that
// changed data still waits for its sync, and so does an audit-only group
// committed after a data commit, of this process or (by the shared
// counter) another, that is not yet on disk: its request may have read
// that data. Without the option every group waits for its sync.
func TestReadAuditCommitted(t *testing.T) {
	ctx := context.Background()
	h := hookWALSync(t)
	defer h.unblock() // before the stores' Close at cleanup

	t.Run("default", func(t *testing.T) {
		db := openKept(t, filepath.Join(t.TempDir(), "d.db"), 0)
		putSubject(t, db, durableSubject, "v1", false)
		h.block.Store(true)
		waitsForSync(t, h, "an audit-only group without the option", auditOnly(db, 1))
		if st := db.WriterStats(); st.Early != 0 {
			t.Errorf("WriterStats.Early = %d without the option, want 0", st.Early)
		}
	})

	db, err := Open(ctx, filepath.Join(t.TempDir(), "c.db"), Options{Migrate: true, ReadCache: -1, ReadAuditCommitted: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	putSubject(t, db, durableSubject, "v1", false)

	// The first audit-only group after the write's sync is answered
	// before its own: hold every sync, and it still returns, and the
	// syncer then syncs it with nobody waiting.
	h.block.Store(true)
	early := db.WriterStats().Early
	answered(t, "an audit-only group while its sync is held", auditOnly(db, 1))
	if got := db.WriterStats().Early - early; got != 1 {
		t.Fatalf("WriterStats.Early moved by %d, want 1", got)
	}
	h.held(t) // the syncer syncs the answered group on its own

	// While that sync is held: a data write waits for a sync, and an
	// audit-only group after it waits too.
	wrote := make(chan error, 1)
	go func() { wrote <- storeName(ctx, db, durableSubject, "v2", true) }()
	waitQueued(t, db, 1, wrote)
	after := auditOnly(db, 2)
	waitQueued(t, db, 2, wrote, after)
	notYet(t, "a data write, or an audit-only group after it", wrote, after)
	h.block.Store(false)
	h.release <- struct{}{}
	answered(t, "the data write after its sync", wrote)
	answered(t, "the audit-only group after the data write's sync", after)

	// Once that is on disk, audit-only groups are answered early again.
	waitEarly := func(n int) {
		t.Helper()
		for range 100 {
			before := db.WriterStats().Early
			answered(t, "an audit-only group", auditOnly(db, n))
			if db.WriterStats().Early > before {
				return
			}
		}
		t.Fatal("no audit-only group answered early in 100 tries after the data write's sync")
	}
	waitEarly(3)

	// Another process's data commit (what its writer counts in the
	// shared counter) makes the next audit-only group wait for a sync.
	h.block.Store(true)
	db.gen.addData()
	waitsForSync(t, h, "an audit-only group after another process's data commit", auditOnly(db, 4))
	waitEarly(5)

	// Another process's data commit under way (begun in the shared
	// counters, not yet ended or counted; its frames may be visible
	// already): every audit-only group waits for a sync, also one whose
	// data counter matches the last sync's, until the commit has ended.
	atomic.AddUint64(db.gen.b, 1)
	if st := db.WriterStats(); st.DataCommitsBegun != st.DataCommitsEnded+1 {
		t.Errorf("WriterStats: %d data commits begun, %d ended; want one under way", st.DataCommitsBegun, st.DataCommitsEnded)
	}
	for n := range 2 {
		h.block.Store(true)
		waitsForSync(t, h, "an audit-only group while another process commits data", auditOnly(db, 6+n))
	}
	db.gen.addData()
	atomic.AddUint64(db.gen.e, 1)
	if st := db.WriterStats(); st.DataCommitsBegun != st.DataCommitsEnded || st.DataCommitsBegun == 0 {
		t.Errorf("WriterStats: %d data commits begun, %d ended; want as many, and some", st.DataCommitsBegun, st.DataCommitsEnded)
	}
	h.block.Store(true)
	waitsForSync(t, h, "an audit-only group after that commit ended", auditOnly(db, 8))
	waitEarly(9)
}

// TestSharedGenSettles: a commit bracketed by commitData leaves the
// shared counters settled; one begun and never ended (its process was
// killed inside it) leaves them unsettled for every store on the file,
// also one opened beside another (which may be inside a commit), until
// a store opens the file alone and evens them.
func TestSharedGenSettles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	a, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	d0, _ := a.settledData()
	err = a.commitData(true, func() error {
		if _, settled := a.settledData(); settled {
			t.Error("settled while a commit that changes data is under way")
		}
		return errors.New("commit failed")
	})
	if err == nil {
		t.Fatal("commitData hid the commit's error")
	}
	if d, settled := a.settledData(); !settled || d != d0+1 {
		t.Fatalf("after a bracketed commit: data %d, settled %v; want %d, true", d, settled, d0+1)
	}
	if err := a.commitData(false, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if d, settled := a.settledData(); !settled || d != d0+1 {
		t.Fatalf("after an audit-only commit: data %d, settled %v; want %d (unmoved), true", d, settled, d0+1)
	}
	// A commit begun and never ended.
	atomic.AddUint64(a.b, 1)
	b, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]*sharedGen{"the first": a, "one opened beside it": b} {
		if _, settled := g.settledData(); settled {
			t.Errorf("%s: settled with a commit begun and not ended", name)
		}
	}
	for _, g := range []*sharedGen{a, b} {
		if err := g.close(); err != nil {
			t.Fatal(err)
		}
	}
	c, err := openSharedGen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	if _, settled := c.settledData(); !settled {
		t.Error("a store that opened the file alone did not even the counters")
	}
}
