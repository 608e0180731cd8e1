package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"custos"
)

// openKept opens a store at path without the read cache, so that every
// read runs SQL, with snapshots kept for d (restored at cleanup).
func openKept(t *testing.T, path string, d time.Duration) *DB {
	t.Helper()
	old := keepFor
	keepFor = d
	t.Cleanup(func() { keepFor = old })
	db, err := Open(context.Background(), path, Options{Migrate: true, ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// putSubject stores (or, with update, replaces) subject id with sealed
// field "name" = v.
func putSubject(t *testing.T, db *DB, id custos.SubjectID, v string, update bool) {
	t.Helper()
	if err := storeName(context.Background(), db, id, v, update); err != nil {
		t.Fatal(err)
	}
}

// storeName is putSubject returning its error, for goroutines.
func storeName(ctx context.Context, db *DB, id custos.SubjectID, v string, update bool) error {
	return db.Update(ctx, func(tx custos.Tx) error {
		s := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte(v)}, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		if update {
			return tx.UpdateSubject(ctx, s)
		}
		return tx.InsertSubject(ctx, s)
	})
}

// glanceName reads subject id's "name" in Glance and counts fn's runs.
// Its context ends when it returns, as a request's does.
func glanceName(t *testing.T, db *DB, id custos.SubjectID) (string, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	name, runs, err := readName(ctx, db.Glance, id)
	if err != nil {
		t.Fatal(err)
	}
	return name, runs
}

// readName reads subject id's "name" with read (View or Glance) and
// counts fn's runs.
func readName(ctx context.Context, read func(context.Context, func(custos.Tx) error) error, id custos.SubjectID) (string, int, error) {
	var name string
	runs := 0
	err := read(ctx, func(tx custos.Tx) error {
		runs++
		s, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		name = string(s.Sealed["name"])
		return nil
	})
	return name, runs, err
}

func appendAuditOnly(t *testing.T, db *DB, n int) {
	t.Helper()
	ctx := context.Background()
	if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, n) }); err != nil {
		t.Fatal(err)
	}
}

// A read's snapshot is kept for the next read while only audit events
// are committed, and a change to anything else, by this process or by
// another on the same file, ends it: the next read sees the change.
func TestKeptSnapshots(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	db := openKept(t, path, time.Minute)
	putSubject(t, db, "sub_a", "v1", false)

	if name, _ := glanceName(t, db, "sub_a"); name != "v1" {
		t.Fatalf("first read: %q, want v1", name)
	}
	before := db.KeptStats()
	// Audit events alone (every read commits one) keep the snapshot.
	appendAuditOnly(t, db, 1)
	if name, runs := glanceName(t, db, "sub_a"); name != "v1" || runs != 1 {
		t.Fatalf("read after an audit commit: %q in %d runs, want v1 in 1", name, runs)
	}
	if st := db.KeptStats(); st.Reused != before.Reused+1 {
		t.Fatalf("read after an audit commit: stats %+v after %+v, want the kept snapshot reused", st, before)
	}

	// A change to the subject, answered before the read, is seen: the
	// read begins a snapshot of its own rather than take the old one.
	putSubject(t, db, "sub_a", "v2", true)
	before = db.KeptStats()
	if name, runs := glanceName(t, db, "sub_a"); name != "v2" || runs != 1 {
		t.Fatalf("read after an update: %q in %d runs, want v2 in 1", name, runs)
	}
	if st := db.KeptStats(); st.Begun != before.Begun+1 || st.Stale != before.Stale {
		t.Fatalf("read after an update: stats %+v after %+v, want a snapshot begun", st, before)
	}
	// So is a subject created since: the snapshot would not hold it.
	putSubject(t, db, "sub_b", "b1", false)
	if name, _ := glanceName(t, db, "sub_b"); name != "b1" {
		t.Fatalf("read of a subject created since: %q, want b1", name)
	}

	// Another process on the same file (a second store here, with its
	// own connections and writer) changes the subject: seen too.
	other, err := Open(context.Background(), path, Options{ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if name, _ := glanceName(t, db, "sub_a"); name != "v2" {
		t.Fatalf("read before the other store's write: %q, want v2", name)
	}
	putSubject(t, other, "sub_a", "v3", true)
	if name, _ := glanceName(t, db, "sub_a"); name != "v3" {
		t.Fatalf("read after the other store's write: %q, want v3", name)
	}
}

// A statement that a kept snapshot can no longer answer — one after a
// change committed while fn ran, or one about the audit log, which
// every read changes — makes fn run again in a transaction of its own.
func TestKeptSnapshotStale(t *testing.T) {
	db := openKept(t, filepath.Join(t.TempDir(), "custos.db"), time.Minute)
	ctx := context.Background()
	putSubject(t, db, "sub_a", "a1", false)
	putSubject(t, db, "sub_b", "b1", false)
	glanceName(t, db, "sub_a") // keeps a snapshot

	runs := 0
	var a, b string
	err := db.Glance(ctx, func(tx custos.Tx) error {
		runs++
		s, err := tx.GetSubject(ctx, "sub_a")
		if err != nil {
			return err
		}
		a = string(s.Sealed["name"])
		if runs == 1 {
			putSubject(t, db, "sub_b", "b2", true)
		}
		if s, err = tx.GetSubject(ctx, "sub_b"); err != nil {
			return err
		}
		b = string(s.Sealed["name"])
		return nil
	})
	if err != nil || runs != 2 || a != "a1" || b != "b2" {
		t.Fatalf("Glance with a write between its statements: %v after %d runs, read %q and %q; want nil after 2, a1 and b2", err, runs, a, b)
	}

	// The audit log: an event committed after the kept snapshot began
	// is found.
	glanceName(t, db, "sub_a")
	appendAuditOnly(t, db, 7)
	stale := db.KeptStats().Stale
	runs = 0
	var found int
	err = db.Glance(ctx, func(tx custos.Tx) error {
		runs++
		if _, err := tx.GetSubject(ctx, "sub_a"); err != nil {
			return err
		}
		id := custos.SubjectID("sub_7")
		es, err := tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &id})
		found = len(es)
		return err
	})
	if err != nil || runs != 2 || found != 1 {
		t.Fatalf("Glance reading the audit log: %v after %d runs, %d events; want nil after 2, 1 event", err, runs, found)
	}
	if st := db.KeptStats(); st.Stale != stale+1 {
		t.Fatalf("stale count %d, want %d", st.Stale, stale+1)
	}
}

// Kept snapshots never keep the WAL from being checkpointed: Checkpoint
// (TRUNCATE, which needs every reader out of the WAL) ends them, and the
// checkpointer ends those past keepFor.
func TestKeptSnapshotsLetCheckpointsPass(t *testing.T) {
	db := openKept(t, filepath.Join(t.TempDir(), "custos.db"), time.Minute)
	putSubject(t, db, "sub_a", "a1", false)
	glanceName(t, db, "sub_a")
	appendAuditOnly(t, db, 1)
	glanceName(t, db, "sub_a") // reused: the snapshot is older than the event
	if n := db.keptWaiting(); n != 1 {
		t.Fatalf("%d snapshots kept, want 1", n)
	}
	if err := db.Checkpoint(context.Background()); err != nil {
		t.Fatalf("Checkpoint with a kept snapshot: %v", err)
	}
	if n := db.keptWaiting(); n != 0 {
		t.Fatalf("%d snapshots kept after Checkpoint, want 0", n)
	}
	if name, _ := glanceName(t, db, "sub_a"); name != "a1" {
		t.Fatalf("read after Checkpoint: %q", name)
	}
	if n := db.keptWaiting(); n != 1 {
		t.Fatalf("%d snapshots kept after a read following Checkpoint, want 1", n)
	}

	// Past keepFor, the checkpointer's next round ends it.
	keepFor = 10 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for db.keptWaiting() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("a snapshot past keepFor is still kept after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A View never runs on a kept snapshot: it sees a write committed after
// the snapshot began, with no statement check needed.
func TestViewDoesNotUseKeptSnapshots(t *testing.T) {
	db := openKept(t, filepath.Join(t.TempDir(), "custos.db"), time.Minute)
	putSubject(t, db, "sub_a", "a1", false)
	glanceName(t, db, "sub_a")
	reused := db.KeptStats().Reused
	appendAuditOnly(t, db, 1)
	ctx := context.Background()
	err := db.View(ctx, func(tx custos.Tx) error {
		id := custos.SubjectID("sub_1")
		es, err := tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &id})
		if err == nil && len(es) != 1 {
			t.Errorf("View found %d events, want 1", len(es))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := db.KeptStats(); st.Reused != reused {
		t.Fatalf("View reused a kept snapshot: %+v", st)
	}
}

func TestChangesData(t *testing.T) {
	for q, want := range map[string]bool{
		"SELECT 1":                 false,
		"  select * FROM subjects": false,
		"INSERT INTO audit_events (seq) VALUES (1)":   false,
		"INSERT OR FAIL INTO audit_events (seq) ...":  false,
		"INSERT INTO subjects (id) VALUES (?)":        true,
		"INSERT INTO audit_events_x (seq) VALUES (1)": true,
		"UPDATE audit_events SET hash = ?":            true,
		"DELETE FROM audit_blocks":                    true,
		"WITH x AS (SELECT 1) DELETE FROM subjects":   true,
		"UPDATE subjects SET sealed = ?":              true,
	} {
		if got := changesData(q); got != want {
			t.Errorf("changesData(%q) = %v, want %v", q, got, want)
		}
	}
}

// keptWaiting is how many snapshots wait for a read.
func (db *DB) keptWaiting() int {
	db.kept.mu.Lock()
	defer db.kept.mu.Unlock()
	return len(db.kept.free)
}

// Under concurrent reads, audit commits and updates, a read never
// returns a value older than the last update answered before it began:
// kept snapshots are reused while only audit events are committed, and
// never once an update has been answered.
func TestKeptSnapshotsConcurrent(t *testing.T) {
	db := openKept(t, filepath.Join(t.TempDir(), "custos.db"), time.Minute)
	ctx := context.Background()
	putSubject(t, db, "sub_a", "0", false)
	var answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // updates, answered in order
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := storeName(ctx, db, "sub_a", strconv.Itoa(i), true); err != nil {
				t.Error(err)
				return
			}
			answered.Store(int64(i))
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() { // audit events, as reads commit them
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := db.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, i) }); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var reads atomic.Int64
	errs := make(chan error, 8)
	var rwg sync.WaitGroup
	for range 6 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for end := time.Now().Add(time.Second); time.Now().Before(end); {
				floor := answered.Load()
				var name string
				err := db.Glance(ctx, func(tx custos.Tx) error {
					s, err := tx.GetSubject(ctx, "sub_a")
					if err == nil {
						name = string(s.Sealed["name"])
					}
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				if v, _ := strconv.Atoi(name); int64(v) < floor {
					errs <- fmt.Errorf("read %d after update %d was answered", v, floor)
					return
				}
				reads.Add(1)
			}
		}()
	}
	rwg.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := db.KeptStats()
	if st.Reused == 0 {
		t.Errorf("no read of %d reused a kept snapshot: %+v", reads.Load(), st)
	}
	t.Logf("%d reads, %d updates; %+v", reads.Load(), answered.Load(), st)
}
