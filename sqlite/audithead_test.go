package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"custos"
	"custos/audit"
)

// appendEvent chains one event onto the head tx reports and stores it, as
// core's appendAudit does.
func appendEvent(ctx context.Context, tx custos.Tx, n int) error {
	seq, head, err := tx.AuditHead(ctx)
	if err != nil {
		return err
	}
	e := &custos.AuditEvent{Time: tx.Now(), ActorID: "prn_test", Action: custos.AuditSubjectRead,
		SubjectID: custos.SubjectID(fmt.Sprintf("sub_%d", n)), Purposes: []string{"marketing"},
		Decision: custos.DecisionAllow}
	audit.Chain(seq, head, e)
	return tx.InsertAuditEvent(ctx, e)
}

// appendAtEnd is an Update function that leaves appending event n to the
// group's end, as core's audited requests do.
func appendAtEnd(ctx context.Context, n int) func(tx custos.Tx) error {
	return func(tx custos.Tx) error {
		tx.(*Tx).AtEnd(func(tx custos.Tx) error { return appendEvent(ctx, tx, n) })
		return nil
	}
}

// openSecond opens a second store on db's file, as another custos process
// would, closed at cleanup.
func openSecond(t *testing.T, db *DB) *DB {
	t.Helper()
	other, err := Open(context.Background(), db.path, Options{ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return other
}

// openInternal opens a migrated store in a temporary directory for the
// package's internal tests, closed at cleanup.
func openInternal(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "custos.db"), Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// runGroup commits fns as one commit group, the way the writer goroutine
// does (the writer is idle, so the single write connection is free), and
// returns each member's error. A group cut short for another process's
// writer (cutGroup) goes on with its rest, as the writer's next group.
func runGroup(t *testing.T, db *DB, fns ...func(tx custos.Tx) error) []error {
	t.Helper()
	group := make([]*writeReq, len(fns))
	for i, fn := range fns {
		group[i] = &writeReq{ctx: context.Background(), fn: fn, done: make(chan error, 1)}
	}
	for rest := db.commitGroup(group); len(rest) > 0; {
		rest = db.commitGroup(rest)
	}
	errs := make([]error, len(fns))
	for i, r := range group {
		errs[i] = <-r.done
	}
	return errs
}

// checkChain reads the whole log and checks that seqs run 1…want without a
// gap and that every event links to the one before it (S5).
func checkChain(t *testing.T, db *DB, want int64) {
	t.Helper()
	ctx := context.Background()
	var events []*custos.AuditEvent
	if err := db.View(ctx, func(tx custos.Tx) (err error) {
		events, err = tx.FindAuditEvents(ctx, custos.AuditFilter{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if int64(len(events)) != want {
		t.Fatalf("got %d events, want %d", len(events), want)
	}
	prev := audit.Genesis
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d: got seq %d, want %d", i, e.Seq, i+1)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Fatalf("seq %d: prev_hash does not match the hash of seq %d", e.Seq, e.Seq-1)
		}
		if !bytes.Equal(e.Hash, audit.Hash(e.PrevHash, e)) {
			t.Fatalf("seq %d: hash does not match its content", e.Seq)
		}
		prev = e.Hash
	}
}

// TestAuditHeadInCommitGroup: inside one commit group the audit head is
// followed in memory (S5). Members whose savepoint is rolled back, by an
// error or a panic, must not leave their events in that head, and an event
// written behind the store's back, by a writer that does not advance the
// shared audit counter (the sqlite3 shell, an older custos), is chained
// onto, not overwritten: the group that finds the head it kept stale runs
// once more (keptHeadFor).
func TestAuditHeadInCommitGroup(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	refused := errors.New("refused")

	errs := runGroup(t, db, func(tx custos.Tx) error { return appendEvent(ctx, tx, 1) })
	if errs[0] != nil {
		t.Fatal(errs[0])
	}

	errs = runGroup(t, db,
		func(tx custos.Tx) error { return appendEvent(ctx, tx, 2) }, // seq 2
		func(tx custos.Tx) error { // rolled back by its error
			if err := appendEvent(ctx, tx, 100); err != nil {
				return err
			}
			return refused
		},
		func(tx custos.Tx) error { // rolled back by its panic
			if err := appendEvent(ctx, tx, 101); err != nil {
				return err
			}
			panic("bad request")
		},
		func(tx custos.Tx) error { // seq 3 and 4
			if err := appendEvent(ctx, tx, 3); err != nil {
				return err
			}
			return appendEvent(ctx, tx, 4)
		},
		func(tx custos.Tx) error { // two appends, then rolled back
			if err := appendEvent(ctx, tx, 102); err != nil {
				return err
			}
			if err := appendEvent(ctx, tx, 103); err != nil {
				return err
			}
			return refused
		},
		func(tx custos.Tx) error { return appendEvent(ctx, tx, 5) }, // seq 5
	)
	for i, want := range []bool{true, false, false, true, false, true} {
		if (errs[i] == nil) != want {
			t.Errorf("member %d: got error %v, want success %v", i, errs[i], want)
		}
	}
	checkChain(t, db, 5)

	// Another writer appends seq 6 directly. The next group's members
	// leave their appends to the group's end, as core's do: the end's
	// insert finds seq 6 taken, and the group runs once more (retryStale).
	appendBehind(t, db, 6)
	mustGroup := func(want int64, fns ...func(tx custos.Tx) error) {
		t.Helper()
		reruns := db.WriterStats().Reruns
		for i, err := range runGroup(t, db, fns...) {
			if err != nil {
				t.Errorf("member %d: %v", i, err)
			}
		}
		checkChain(t, db, want)
		if got := db.WriterStats().Reruns - reruns; got != 1 {
			t.Errorf("group after an unannounced append ran again %d times, want 1", got)
		}
	}
	mustGroup(8, appendAtEnd(ctx, 7), appendAtEnd(ctx, 8))
	// Again, with members that append at once: the first one's insert
	// fails, and the group runs again with savepoints, as for any member
	// that fails after a statement.
	appendBehind(t, db, 9)
	mustGroup(11, func(tx custos.Tx) error { return appendEvent(ctx, tx, 10) }, appendAtEnd(ctx, 11))
	// A group of one member runs without savepoints, on a path of its own.
	appendBehind(t, db, 12)
	mustGroup(13, appendAtEnd(ctx, 13))
}

// appendBehind appends event seq the way a writer that does not advance
// the shared audit counter would (the sqlite3 shell, an older custos):
// by a statement of its own, in a transaction whose head it does not
// follow.
func appendBehind(t *testing.T, db *DB, seq int64) {
	t.Helper()
	ctx := context.Background()
	var hash []byte
	if err := db.View(ctx, func(tx custos.Tx) (err error) {
		_, hash, err = tx.AuditHead(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e := &custos.AuditEvent{Time: db.now().UTC(), ActorID: "prn_other", Action: custos.AuditSubjectRead, Decision: custos.DecisionAllow}
	audit.Chain(seq-1, hash, e)
	if err := db.Update(ctx, func(tx custos.Tx) error {
		_, err := tx.(*Tx).tx.ExecContext(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.Time.UnixMicro(), string(e.ActorID), e.Action, "", "[]", "[]", e.Decision, "", "", e.PrevHash, e.Hash)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAuditHeadKeptAcrossGroups: the writer starts a group from the head
// its last committed group left (no statement to read it) only while no
// other transaction has appended to the log: not after another process on
// the file appended, nor after a group of its own rolled back an append.
func TestAuditHeadKeptAcrossGroups(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	// kept runs one member that reports whether its group started from
	// the kept head, then appends event n (or fails after it).
	kept := func(n int, fail bool) (bool, error) {
		var fromKept bool
		errs := runGroup(t, db, func(tx custos.Tx) error {
			fromKept = tx.(*Tx).headKept
			if err := appendEvent(ctx, tx, n); err != nil {
				return err
			}
			if fail {
				return errors.New("refused")
			}
			return nil
		})
		return fromKept, errs[0]
	}
	mustKept := func(n int, want bool) {
		t.Helper()
		got, err := kept(n, false)
		if err != nil {
			t.Fatalf("event %d: %v", n, err)
		}
		if got != want {
			t.Fatalf("event %d: group started from the kept head %v, want %v", n, got, want)
		}
	}
	mustKept(1, false) // nothing kept yet
	mustKept(2, true)
	mustKept(3, true)

	// Another process on the same file (a second store, with its own
	// writer) appends: the next group reads the head again.
	other := openSecond(t, db)
	if err := other.Update(ctx, func(tx custos.Tx) error { return appendEvent(ctx, tx, 4) }); err != nil {
		t.Fatal(err)
	}
	reruns := db.WriterStats().Reruns
	mustKept(5, false)
	mustKept(6, true)

	// A group of its own that appended and then rolled back.
	if _, err := kept(100, true); err == nil {
		t.Fatal("failing member: no error")
	}
	mustKept(7, false)
	mustKept(8, true)
	checkChain(t, db, 8)
	if got := db.WriterStats().Reruns - reruns; got != 0 {
		t.Errorf("groups ran again %d times, want 0: every other append was announced", got)
	}
}

// TestAuditHeadTwoWriters: two stores on one file (two custos processes)
// append at once, each from several goroutines, as core does (the event
// chained at the group's end). Each writer keeps its head between groups
// while the other's appends move the shared counter, so the chain must run
// without a gap or a fork, and no group may have run again: every append
// was announced.
func TestAuditHeadTwoWriters(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	other := openSecond(t, db)
	const workers, each = 4, 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers*each)
	for _, s := range []*DB{db, other} {
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					errs <- s.Update(ctx, appendAtEnd(ctx, w*1000+i))
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkChain(t, db, 2*workers*each)
	if r1, r2 := db.WriterStats().Reruns, other.WriterStats().Reruns; r1+r2 != 0 {
		t.Errorf("groups ran again: %d and %d, want none", r1, r2)
	}
}
