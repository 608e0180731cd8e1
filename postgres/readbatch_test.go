package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/storetest"
)

// TestReadBatch checks that concurrent reads by id share one statement
// and that each gets its own subject's rows: sealed fields, data key and
// consent history, where the subjects have none, one or several consents;
// a read of a subject asked for twice in one batch gets rows of its own;
// an unknown id gets ENOTFOUND; a read whose caller gives up returns at
// once and the others are still answered (readbatch.go).
func TestReadBatch(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	const n = 12
	ids := make([]custos.SubjectID, n)
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("sub_batch_%02d", i))
		err := db.Update(ctx, func(tx custos.Tx) error {
			return storetest.CreateCustomer(ctx, tx, ids[i], map[string][]byte{"name": []byte(string(ids[i]))}, nil, false)
		})
		if err != nil {
			t.Fatalf("create %s: %v", ids[i], err)
		}
	}
	// 0, 1 or 2 consents a subject, given in turns, so that one
	// subject's consents are not next to each other in recorded order.
	for j := range 2 {
		err := db.Update(ctx, func(tx custos.Tx) error {
			for i, id := range ids {
				if j >= i%3 {
					continue
				}
				if err := tx.InsertConsent(ctx, &custos.StoredConsent{ID: fmt.Sprintf("con_%d_%d", i, j), SubjectID: id, Purpose: fmt.Sprintf("p%d", j),
					Action: custos.ConsentGranted, NoticeVersion: 1, At: tx.Now(), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("consents: %v", err)
		}
	}
	before := db.GroupStats()

	type answer struct {
		id       custos.SubjectID
		subject  *custos.StoredSubject
		key      *custos.DataKey
		consents []*custos.StoredConsent
		err      error
	}
	// Every subject once, the first twice, and one that does not exist,
	// all queued behind held statements.
	asks := append(slices.Clone(ids), ids[0], "sub_batch_none")
	release := db.HoldReadStatements()
	answers := make([]answer, len(asks))
	var wg sync.WaitGroup
	for i, id := range asks {
		wg.Go(func() {
			a := answer{id: id}
			a.err = db.Glance(ctx, func(tx custos.Tx) error {
				st, err := tx.GetSubject(ctx, id)
				if err != nil {
					return err
				}
				if a.key, err = tx.GetDataKey(ctx, id); err != nil {
					return err
				}
				if a.consents, err = tx.ListConsentsFor(ctx, id, []string{"p0", "p1"}); err != nil {
					return err
				}
				a.subject = st
				return nil
			})
			answers[i] = a
		})
	}
	// And one read whose caller gives up while it waits.
	gaveUp := make(chan error, 1)
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		gaveUp <- db.Glance(cctx, func(tx custos.Tx) error { _, err := tx.GetSubject(cctx, ids[1]); return err })
	}()
	waitFor(t, func() bool { return db.QueuedReads() == len(asks)+1 })
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Errorf("a read whose caller gave up: got %v, want context.Canceled at once", err)
	}
	release()
	wg.Wait()

	for i, a := range answers[:n+1] {
		if a.err != nil {
			t.Errorf("read %d (%s): %v", i, a.id, a.err)
			continue
		}
		if a.subject.ID != a.id || string(a.subject.Sealed["name"]) != string(a.id) {
			t.Errorf("read %d: asked for %s, got %s with %q", i, a.id, a.subject.ID, a.subject.Sealed["name"])
		}
		if a.key == nil || a.key.SubjectID != a.id || a.key.Version != 1 {
			t.Errorf("read %d (%s): data key %+v", i, a.id, a.key)
		}
		k := 0
		for k < n && ids[k] != a.id {
			k++
		}
		if len(a.consents) != k%3 {
			t.Errorf("read %d (%s): %d consents, want %d", i, a.id, len(a.consents), k%3)
		}
		for j, c := range a.consents {
			if c.SubjectID != a.id || c.ID != fmt.Sprintf("con_%d_%d", k, j) {
				t.Errorf("read %d (%s): consent %d is %s of %s", i, a.id, j, c.ID, c.SubjectID)
			}
		}
	}
	if answers[0].subject == answers[n].subject {
		t.Errorf("two reads of %s in one batch share one subject value", ids[0])
	}
	if code := custos.ErrorCode(answers[n+1].err); code != custos.ENOTFOUND {
		t.Errorf("read of an unknown id: got %v, want ENOTFOUND", answers[n+1].err)
	}

	// n+2 reads asked, the given-up one's too; the second read of ids[0]
	// waits for a second statement.
	after := db.GroupStats()
	if st, reads := after.ReadStatements-before.ReadStatements, after.BatchedReads-before.BatchedReads; st != 2 || reads != int64(len(asks)+1) {
		t.Errorf("%d reads in %d statements, want %d in 2", reads, st, len(asks)+1)
	}

	// With nothing held, a lone read goes at once, in a statement of its
	// own, and the places are all free again.
	if err := db.Glance(ctx, func(tx custos.Tx) error { _, err := tx.GetSubject(ctx, ids[2]); return err }); err != nil {
		t.Fatalf("lone read: %v", err)
	}
	if st := db.GroupStats().ReadStatements - after.ReadStatements; st != 1 {
		t.Errorf("a lone read took %d statements, want 1", st)
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
