package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

// readOf is what a read of one subject gathers: the reads of
// core.Service.load, in its order.
type readOf struct {
	Subject  *custos.StoredSubject
	Key      *custos.DataKey
	KeyCode  string
	Consents []*custos.StoredConsent
}

// readSubject reads id the way a read by id does: the subject, its
// consents for purposes, its data key.
func readSubject(ctx context.Context, tx custos.Tx, id custos.SubjectID, purposes []string) (*readOf, error) {
	st, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	cs, err := tx.ListConsentsFor(ctx, id, purposes)
	if err != nil {
		return nil, err
	}
	k, err := tx.GetDataKey(ctx, id)
	return &readOf{Subject: st, Key: k, KeyCode: custos.ErrorCode(err), Consents: cs}, nil
}

// OutsideGlancer is implemented by a custos.Glancer whose Glance runs fn
// outside a transaction first (PostgreSQL), so that a second statement
// makes fn run again.
type OutsideGlancer interface {
	custos.Glancer
	GlancesOutsideTransaction()
}

// testReadSubject checks that a read of one subject, by id or by lookup
// key, gives the same subject, data key and consents in a read-only
// transaction as in a write transaction, whatever the store folds into
// one statement (PostgreSQL reads them together in View), and that a
// custos.Glancer's Glance gives the same, runs a one-subject read once,
// and refuses writes. A store that glances outside a transaction
// (PostgreSQL; OutsideGlancer) runs anything more than one statement
// again in a transaction.
func testReadSubject(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	subjects := []*custos.StoredSubject{
		{ID: "sub_a", Sealed: map[string][]byte{"mobile": {1, 2}, "name": make([]byte, 3000)}, CreatedAt: at(0), UpdatedAt: at(time.Second)},
		{ID: "sub_b", Sealed: map[string][]byte{"email": {3}}, CreatedAt: at(time.Minute), UpdatedAt: at(time.Minute)},
	}
	consents := []*custos.StoredConsent{
		{ID: "con_1", SubjectID: "sub_a", Purpose: "marketing", Action: custos.ConsentGranted, NoticeVersion: 1, At: at(0),
			Channel: "app", InitiatedBy: "customer", ActorID: "prn_app", Sealed: []byte{1, 2, 3}},
		{ID: "con_2", SubjectID: "sub_a", Purpose: "analytics", Scope: "sensitive:biometric", Action: custos.ConsentRefused,
			NoticeVersion: 2, At: at(time.Second), Channel: "web", InitiatedBy: "company", ByGuardian: true, ActorID: "prn_web"},
		{ID: "con_3", SubjectID: "sub_a", Purpose: "marketing", Action: custos.ConsentWithdrawn, NoticeVersion: 1, At: at(time.Hour),
			Channel: "portal", InitiatedBy: "customer", ActorID: "prn_portal"},
		{ID: "con_4", SubjectID: "sub_c", Purpose: "marketing", Action: custos.ConsentGranted, NoticeVersion: 1, At: at(0),
			Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"},
	}
	key := &custos.DataKey{SubjectID: "sub_a", Version: 2, KEKVersion: 3, Wrapped: []byte{9, 8, 7}, CreatedAt: at(0)}
	hashA, hashB := []byte("hash-of-a-mobile"), []byte("hash-of-b-mobile")
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertDataKey", tx.InsertDataKey(ctx, key))
		for _, st := range subjects {
			must(t, "InsertSubject", tx.InsertSubject(ctx, st))
		}
		must(t, "InsertLookup a", tx.InsertLookup(ctx, "mobile", hashA, "sub_a"))
		must(t, "InsertLookup b", tx.InsertLookup(ctx, "mobile", hashB, "sub_b"))
		for _, c := range consents {
			must(t, "InsertConsent", tx.InsertConsent(ctx, c))
		}
		return nil
	})

	purposeSets := [][]string{{"marketing"}, {"analytics", "marketing"}, {"account"}}
	// want holds what a write transaction reads, statement by statement.
	want := map[custos.SubjectID]map[int]*readOf{}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, id := range []custos.SubjectID{"sub_a", "sub_b"} {
			want[id] = map[int]*readOf{}
			for i, ps := range purposeSets {
				r, err := readSubject(ctx, tx, id, ps)
				must(t, "read in a write transaction", err)
				want[id][i] = r
			}
		}
		return nil
	})
	if n := len(want["sub_a"][1].Consents); n != 3 {
		t.Fatalf("sub_a has %d consents for analytics or marketing in a write transaction, want 3", n)
	}
	if want["sub_b"][0].KeyCode != custos.ENOTFOUND {
		t.Fatalf("sub_b's data key: got code %q, want ENOTFOUND", want["sub_b"][0].KeyCode)
	}

	byID := func(id custos.SubjectID, ps []string) func(ctx context.Context, tx custos.Tx) (*readOf, error) {
		return func(ctx context.Context, tx custos.Tx) (*readOf, error) { return readSubject(ctx, tx, id, ps) }
	}
	byLookup := func(hash []byte, ps []string) func(ctx context.Context, tx custos.Tx) (*readOf, error) {
		return func(ctx context.Context, tx custos.Tx) (*readOf, error) {
			id, err := tx.FindLookup(ctx, "mobile", hash)
			if err != nil {
				return nil, err
			}
			return readSubject(ctx, tx, id, ps)
		}
	}
	type read struct {
		name string
		id   custos.SubjectID
		fn   func(ps []string) func(ctx context.Context, tx custos.Tx) (*readOf, error)
	}
	reads := []read{
		{"a by id", "sub_a", func(ps []string) func(context.Context, custos.Tx) (*readOf, error) { return byID("sub_a", ps) }},
		{"b by id", "sub_b", func(ps []string) func(context.Context, custos.Tx) (*readOf, error) { return byID("sub_b", ps) }},
		{"a by lookup", "sub_a", func(ps []string) func(context.Context, custos.Tx) (*readOf, error) { return byLookup(hashA, ps) }},
		{"b by lookup", "sub_b", func(ps []string) func(context.Context, custos.Tx) (*readOf, error) { return byLookup(hashB, ps) }},
	}
	g, glances := s.(custos.Glancer)
	for _, r := range reads {
		for i, ps := range purposeSets {
			var got *readOf
			view(t, s, func(ctx context.Context, tx custos.Tx) (err error) {
				got, err = r.fn(ps)(ctx, tx)
				return err
			})
			diff(t, r.name+" in View", want[r.id][i], got)
			if !glances {
				continue
			}
			runs := 0
			err := g.Glance(t.Context(), func(tx custos.Tx) (err error) {
				runs++
				got, err = r.fn(ps)(t.Context(), tx)
				return err
			})
			must(t, r.name+" in Glance", err)
			diff(t, r.name+" in Glance", want[r.id][i], got)
			if runs != 1 {
				t.Errorf("%s in Glance: fn ran %d times, want once (one statement)", r.name, runs)
			}
		}
	}

	// A consent list asked for without the subject is read on its own.
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListConsentsFor(ctx, "sub_c", []string{"marketing"})
		must(t, "ListConsentsFor sub_c", err)
		diff(t, "sub_c consents", []*custos.StoredConsent{consents[3]}, got)
		return nil
	})
	// What the read returned belongs to the caller: changing it changes
	// nothing that a later read in the same transaction returns.
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		first, err := readSubject(ctx, tx, "sub_a", []string{"marketing"})
		must(t, "first read", err)
		first.Consents[0].Sealed[0] = 0xff
		first.Key.Wrapped[0] = 0xff
		again, err := readSubject(ctx, tx, "sub_a", []string{"marketing"})
		must(t, "second read", err)
		diff(t, "second read after changing the first", want["sub_a"][0], again)
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.FindLookup(ctx, "mobile", []byte("no such hash"))
		wantCode(t, "FindLookup of an unknown hash", err, custos.ENOTFOUND)
		_, err = tx.GetSubject(ctx, "sub_missing")
		wantCode(t, "GetSubject of an unknown id", err, custos.ENOTFOUND)
		return nil
	})
	if !glances {
		return
	}
	// Without a transaction a second statement is refused, and fn runs
	// again; on a snapshot (SQLite's kept one) it is answered.
	wantRuns := 1
	if _, outside := s.(OutsideGlancer); outside {
		wantRuns = 2
	}

	// Two subjects are two statements: the second is refused in the
	// glance and fn runs again, in a transaction, with the same results.
	runs := 0
	var two [2]*custos.StoredSubject
	err := g.Glance(t.Context(), func(tx custos.Tx) (err error) {
		runs++
		if two[0], err = tx.GetSubject(t.Context(), "sub_a"); err != nil {
			return err
		}
		two[1], err = tx.GetSubject(t.Context(), "sub_b")
		return err
	})
	must(t, "Glance of two subjects", err)
	if runs != wantRuns {
		t.Errorf("Glance of two subjects: fn ran %d times, want %d", runs, wantRuns)
	}
	diff(t, "two subjects in Glance", [2]*custos.StoredSubject{want["sub_a"][0].Subject, want["sub_b"][0].Subject}, two)

	// A function that swallows the refused statement's error still runs
	// again in a transaction.
	runs = 0
	var b *custos.StoredSubject
	err = g.Glance(t.Context(), func(tx custos.Tx) (err error) {
		runs++
		_, _ = tx.GetSubject(t.Context(), "sub_a")
		b, _ = tx.GetSubject(t.Context(), "sub_b")
		return nil
	})
	must(t, "Glance that ignores errors", err)
	if runs != wantRuns || b == nil {
		t.Errorf("Glance that ignores errors: fn ran %d times and read sub_b: %v; want %d and read", runs, b != nil, wantRuns)
	}

	// A write is never sent outside a transaction: it is refused in the
	// glance, and the read-only transaction fn runs in then refuses it.
	runs = 0
	err = g.Glance(t.Context(), func(tx custos.Tx) error {
		runs++
		return tx.InsertSubject(t.Context(), &custos.StoredSubject{ID: "sub_w", Sealed: map[string][]byte{"x": {1}},
			CreatedAt: at(0), UpdatedAt: at(0)})
	})
	if err == nil || runs != wantRuns {
		t.Errorf("Glance that writes: got error %v after %d runs, want an error after %d", err, runs, wantRuns)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_w")
		wantCode(t, "subject a Glance tried to write", err, custos.ENOTFOUND)
		return nil
	})

	// A subject that is not there is a one-statement answer too.
	runs = 0
	err = g.Glance(t.Context(), func(tx custos.Tx) error {
		runs++
		_, err := tx.GetSubject(t.Context(), "sub_missing")
		return err
	})
	if custos.ErrorCode(err) != custos.ENOTFOUND || runs != 1 {
		t.Errorf("Glance of a missing subject: got %v after %d runs, want ENOTFOUND after one", err, runs)
	}
}
