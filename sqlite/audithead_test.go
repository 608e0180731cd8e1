package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
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

// openInternal opens a migrated store in a temporary directory for the
// package's internal tests, closed at cleanup.
func openInternal(t *testing.T) *DB {
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
// returns each member's error.
func runGroup(t *testing.T, db *DB, fns ...func(tx custos.Tx) error) []error {
	t.Helper()
	group := make([]*writeReq, len(fns))
	for i, fn := range fns {
		group[i] = &writeReq{ctx: context.Background(), fn: fn, done: make(chan error, 1)}
	}
	db.commitGroup(group)
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

// TestAuditHeadInCommitGroup: inside one commit group the audit head is read
// from the table once and then followed in memory (S5). Members whose
// savepoint is rolled back, by an error or a panic, must not leave their
// events in that head, and nothing is remembered from one transaction to
// the next, so an event written behind the store's back (another process)
// is chained onto, not overwritten.
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

	// Another writer appends seq 6 directly; the next group must chain
	// after it.
	var hash []byte
	if err := db.View(ctx, func(tx custos.Tx) (err error) {
		_, hash, err = tx.AuditHead(ctx)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e := &custos.AuditEvent{Time: db.now().UTC(), ActorID: "prn_other", Action: custos.AuditSubjectRead, Decision: custos.DecisionAllow}
	audit.Chain(5, hash, e)
	if err := db.Update(ctx, func(tx custos.Tx) error {
		_, err := tx.(*Tx).tx.ExecContext(ctx, `INSERT INTO audit_events (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Seq, e.Time.UnixMicro(), string(e.ActorID), e.Action, "", "[]", "[]", e.Decision, "", "", e.PrevHash, e.Hash)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	errs = runGroup(t, db,
		func(tx custos.Tx) error { return appendEvent(ctx, tx, 7) },
		func(tx custos.Tx) error { return appendEvent(ctx, tx, 8) },
	)
	for i, err := range errs {
		if err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	checkChain(t, db, 8)
}
