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
	"custos/postgres"
	"custos/storetest"
)

// TestReadBatch checks that concurrent reads by id, and concurrent
// lookups, share one statement and that each gets its own subject's rows:
// sealed fields, data key and consent history, where the subjects have
// none, one or several consents, recorded in turns; a read of an ask
// already in the statement gets rows of its own from the next; two keys of
// one subject in one statement get a read each; an unknown id or key gets
// ENOTFOUND; a read whose caller gives up returns at once, is not sent,
// and the others are still answered (readbatch.go).
func TestReadBatch(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	const n = 12
	ids := createBatchCustomers(t, db, n)

	// An ask: a subject by id, or by one of its keys.
	type ask struct {
		id    custos.SubjectID // the subject asked for, or expected
		field string           // "" asks by id
	}
	get := func(ctx context.Context, tx custos.Tx, a ask) (*custos.StoredSubject, error) {
		id := a.id
		if a.field != "" {
			var err error
			if id, err = tx.FindLookup(ctx, a.field, []byte(a.field[:1]+"\x00"+string(a.id))); err != nil {
				return nil, err
			}
		}
		return tx.GetSubject(ctx, id)
	}
	for _, lookups := range []bool{false, true} {
		t.Run(map[bool]string{false: "by id", true: "by key"}[lookups], func(t *testing.T) {
			field := ""
			if lookups {
				field = "email"
			}
			// Every subject once, the first a second time (and by its
			// other key when by key), and one that does not exist.
			var asks []ask
			for _, id := range ids {
				asks = append(asks, ask{id, field})
			}
			asks = append(asks, ask{ids[0], field})
			if lookups {
				asks = append(asks, ask{ids[0], "mobile"})
			}
			unknown := len(asks)
			asks = append(asks, ask{"sub_batch_none", field})

			before, dropped := db.GroupStats(), db.DroppedReads(lookups)
			release := db.HoldReadStatements(lookups)
			type answer struct {
				subject  *custos.StoredSubject
				key      *custos.DataKey
				consents []*custos.StoredConsent
				err      error
			}
			answers := make([]answer, len(asks))
			var wg sync.WaitGroup
			for i, a := range asks {
				wg.Go(func() {
					var ans answer
					ans.err = db.Glance(ctx, func(tx custos.Tx) error {
						st, err := get(ctx, tx, a)
						if err != nil {
							return err
						}
						if ans.key, err = tx.GetDataKey(ctx, st.ID); err != nil {
							return err
						}
						if ans.consents, err = tx.ListConsentsFor(ctx, st.ID, []string{"p0", "p1"}); err != nil {
							return err
						}
						ans.subject = st
						return nil
					})
					answers[i] = ans
				})
			}
			// And one read whose caller gives up while it waits.
			gaveUp := make(chan error, 1)
			cctx, cancel := context.WithCancel(ctx)
			go func() {
				gaveUp <- db.Glance(cctx, func(tx custos.Tx) error { _, err := get(cctx, tx, ask{ids[1], field}); return err })
			}()
			waitFor(t, func() bool { return db.QueuedReads(lookups) == len(asks)+1 })
			cancel()
			if err := <-gaveUp; !errors.Is(err, context.Canceled) {
				t.Errorf("a read whose caller gave up: got %v, want context.Canceled at once", err)
			}
			release()
			wg.Wait()

			for i, ans := range answers[:unknown] {
				a := asks[i]
				if ans.err != nil {
					t.Errorf("read %d (%v): %v", i, a, ans.err)
					continue
				}
				if ans.subject.ID != a.id || string(ans.subject.Sealed["name"]) != string(a.id) {
					t.Errorf("read %d: asked for %v, got %s with %q", i, a, ans.subject.ID, ans.subject.Sealed["name"])
				}
				if ans.key == nil || ans.key.SubjectID != a.id || ans.key.Version != 1 {
					t.Errorf("read %d (%v): data key %+v", i, a, ans.key)
				}
				k := 0
				for k < n && ids[k] != a.id {
					k++
				}
				if len(ans.consents) != k%3 {
					t.Errorf("read %d (%v): %d consents, want %d", i, a, len(ans.consents), k%3)
				}
				for j, c := range ans.consents {
					if c.SubjectID != a.id || c.ID != fmt.Sprintf("con_%d_%d", k, j) {
						t.Errorf("read %d (%v): consent %d is %s of %s", i, a, j, c.ID, c.SubjectID)
					}
				}
			}
			for i := n; i < unknown; i++ {
				if answers[0].subject == answers[i].subject {
					t.Errorf("reads 0 and %d of %s share one subject value", i, ids[0])
				}
			}
			if code := custos.ErrorCode(answers[unknown].err); code != custos.ENOTFOUND {
				t.Errorf("read of an unknown ask: got %v, want ENOTFOUND", answers[unknown].err)
			}

			// All asks in two statements (the second read of the first
			// ask waits for the second), and the given-up one in none.
			after := db.GroupStats()
			if st, reads := after.ReadStatements-before.ReadStatements, after.BatchedReads-before.BatchedReads; st != 2 || reads != int64(len(asks)) {
				t.Errorf("%d reads in %d statements, want %d in 2", reads, st, len(asks))
			}
			if d := db.DroppedReads(lookups) - dropped; d != 1 {
				t.Errorf("%d reads dropped, want the one whose caller gave up", d)
			}

			// With nothing held, a lone read goes at once, in a statement
			// of its own.
			if err := db.Glance(ctx, func(tx custos.Tx) error { _, err := get(ctx, tx, ask{ids[2], field}); return err }); err != nil {
				t.Fatalf("lone read: %v", err)
			}
			if st := db.GroupStats().ReadStatements - after.ReadStatements; st != 1 {
				t.Errorf("a lone read took %d statements, want 1", st)
			}
			// Alone in its statement, a read goes under its caller's
			// context, as a statement of its own did.
			done, cancelDone := context.WithCancel(ctx)
			cancelDone()
			if err := db.Glance(done, func(tx custos.Tx) error { _, err := get(done, tx, ask{ids[2], field}); return err }); !errors.Is(err, context.Canceled) {
				t.Errorf("a lone read whose caller gave up: %v, want context.Canceled", err)
			}
		})
	}
}

// createBatchCustomers stores n customers sub_batch_00 … with the name
// field their id, keys email "e\x00"+id and mobile "m\x00"+id, and 0, 1
// or 2 consents (customer i has i%3, purposes p0 and p1), given in turns
// so that one customer's consents are not next to each other in recorded
// order.
func createBatchCustomers(t *testing.T, db *postgres.DB, n int) []custos.SubjectID {
	t.Helper()
	ctx := t.Context()
	ids := make([]custos.SubjectID, n)
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("sub_batch_%02d", i))
		lks := []custos.Lookup{{Field: "email", Hash: []byte("e\x00" + string(ids[i])), SubjectID: ids[i]},
			{Field: "mobile", Hash: []byte("m\x00" + string(ids[i])), SubjectID: ids[i]}}
		err := db.Update(ctx, func(tx custos.Tx) error {
			return storetest.CreateCustomer(ctx, tx, ids[i], map[string][]byte{"name": []byte(string(ids[i]))}, lks, false)
		})
		if err != nil {
			t.Fatalf("create %s: %v", ids[i], err)
		}
	}
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
	return ids
}

// TestPrefetchSubjects: in a read-only transaction, PrefetchSubjects reads
// the customers of a batch read (more than one statement's 64 here) so
// that GetSubject, GetDataKey and ListConsentsFor answer each from memory
// (they are asked with a context already cancelled, which fails any
// statement), with that customer's own rows, and GetSubject of an id not
// found with ENOTFOUND.
func TestPrefetchSubjects(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	const n = 70
	ids := createBatchCustomers(t, db, n)
	done, cancel := context.WithCancel(ctx)
	cancel()
	err := db.View(ctx, func(tx custos.Tx) error {
		p, ok := tx.(custos.SubjectPrefetcher)
		if !ok {
			t.Fatal("a PostgreSQL read-only Tx is not a SubjectPrefetcher")
		}
		if err := p.PrefetchSubjects(ctx, append(slices.Clone(ids), "sub_batch_none")); err != nil {
			return err
		}
		for i := n - 1; i >= 0; i-- {
			id := ids[i]
			st, err := tx.GetSubject(done, id)
			if err != nil {
				t.Errorf("GetSubject(%s) after the prefetch: %v", id, err)
				continue
			}
			if st.ID != id || string(st.Sealed["name"]) != string(id) {
				t.Errorf("GetSubject(%s): got %s with %q", id, st.ID, st.Sealed["name"])
			}
			if k, err := tx.GetDataKey(done, id); err != nil || k == nil || k.SubjectID != id {
				t.Errorf("GetDataKey(%s): %+v, %v", id, k, err)
			}
			cs, err := tx.ListConsentsFor(done, id, []string{"p0", "p1"})
			if err != nil || len(cs) != i%3 {
				t.Errorf("ListConsentsFor(%s): %d consents, %v; want %d", id, len(cs), err, i%3)
			}
			for j, c := range cs {
				if c.SubjectID != id || c.ID != fmt.Sprintf("con_%d_%d", i, j) {
					t.Errorf("%s: consent %d is %s of %s", id, j, c.ID, c.SubjectID)
				}
			}
		}
		if _, err := tx.GetSubject(done, "sub_batch_none"); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Errorf("GetSubject of an id not found: %v, want ENOTFOUND", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
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

// TestReadBatchFailure: when a batched statement fails, every read it
// carried gets the failure, as EINTERNAL without the statement's text,
// and the batcher's places are free again for the reads after it.
func TestReadBatchFailure(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	ids := []custos.SubjectID{"sub_fail_0", "sub_fail_1", "sub_fail_2"}
	for _, id := range ids {
		if err := db.Update(ctx, func(tx custos.Tx) error {
			return storetest.CreateCustomer(ctx, tx, id, map[string][]byte{"name": []byte(id)}, nil, false)
		}); err != nil {
			t.Fatal(err)
		}
	}
	read := func(id custos.SubjectID) error {
		return db.Glance(ctx, func(tx custos.Tx) error { _, err := tx.GetSubject(ctx, id); return err })
	}
	exec := func(q string) {
		t.Helper()
		if _, err := db.Pool().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	release := db.HoldReadStatements(false)
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = read(id) })
	}
	waitFor(t, func() bool { return db.QueuedReads(false) == len(ids) })
	exec(`ALTER TABLE consents RENAME TO consents_away`)
	release()
	wg.Wait()
	for i, err := range errs {
		if custos.ErrorCode(err) != custos.EINTERNAL || custos.ErrorMessage(err) != "Internal error." {
			t.Errorf("read %d with its statement failing: got %v, want EINTERNAL", i, err)
		}
	}
	waitFor(t, func() bool { return db.BusyReads(false) == 0 })

	exec(`ALTER TABLE consents_away RENAME TO consents`)
	for _, id := range ids {
		if err := read(id); err != nil {
			t.Errorf("read of %s after the failure: %v", id, err)
		}
	}
	if n := db.BusyReads(false); n != 0 {
		t.Errorf("%d statements still counted on their way", n)
	}
}
