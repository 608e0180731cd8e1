package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/sqlite"
)

// stored is everything a read of one customer fetches from the store.
type stored struct {
	Subject  *custos.StoredSubject
	Key      *custos.DataKey
	Consents []*custos.StoredConsent
}

// readStored reads id's subject row, data key and whole consent history
// in a View.
func readStored(t *testing.T, db *sqlite.DB, id custos.SubjectID) stored {
	t.Helper()
	ctx := context.Background()
	var s stored
	err := db.View(ctx, func(tx custos.Tx) error {
		var err error
		if s.Subject, err = tx.GetSubject(ctx, id); err != nil {
			return err
		}
		if s.Key, err = tx.GetDataKey(ctx, id); err != nil {
			return err
		}
		s.Consents, err = tx.ListConsentsFor(ctx, id, []string{"marketing", "analytics"})
		return err
	})
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return s
}

// newCustomer is a create's rows for id, with times that are not whole
// microseconds and not in UTC, as a caller might hand them over.
func newCustomer(id custos.SubjectID) (*custos.StoredSubject, *custos.DataKey, []*custos.StoredConsent) {
	at := time.Date(2026, 12, 5, 17, 4, 5, 123456789, time.FixedZone("CST", 8*3600))
	st := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("sealed-name-" + string(id)), "mobile": []byte("sealed-mobile")}, CreatedAt: at, UpdatedAt: at}
	key := &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 2, Wrapped: []byte("wrapped-" + string(id)), CreatedAt: at}
	var cs []*custos.StoredConsent
	for i, p := range []string{"marketing", "analytics"} {
		cs = append(cs, &custos.StoredConsent{ID: fmt.Sprintf("c%d-%s", i, id), SubjectID: id, Purpose: p, Scope: "purpose",
			Action: custos.ConsentGranted, NoticeVersion: 1, At: at.Add(time.Duration(i) * time.Nanosecond), Channel: "app",
			InitiatedBy: "subject", ActorID: "app", Sealed: []byte("receipt")})
	}
	return st, key, cs
}

// createOne inserts a customer as core's create does: key, subject,
// lookup, then its consents one by one.
func createOne(ctx context.Context, tx custos.Tx, id custos.SubjectID) error {
	st, key, cs := newCustomer(id)
	if err := tx.InsertDataKey(ctx, key); err != nil {
		return err
	}
	if err := tx.InsertSubject(ctx, st); err != nil {
		return err
	}
	if err := tx.InsertLookup(ctx, "mobile", []byte("h-"+string(id)), id); err != nil {
		return err
	}
	for _, c := range cs {
		if err := tx.InsertConsent(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// createBatch inserts customers as an import does: each kind of row in
// one multi-row statement.
func createBatch(ctx context.Context, tx custos.Tx, ids ...custos.SubjectID) error {
	var (
		sts  []*custos.StoredSubject
		keys []*custos.DataKey
		cs   []*custos.StoredConsent
	)
	for _, id := range ids {
		st, key, c := newCustomer(id)
		sts, keys, cs = append(sts, st), append(keys, key), append(cs, c...)
	}
	if err := tx.InsertDataKeys(ctx, keys); err != nil {
		return err
	}
	if err := tx.InsertSubjects(ctx, sts); err != nil {
		return err
	}
	return tx.InsertConsents(ctx, cs)
}

// TestFreshCustomersCached: a customer created in this process is in the
// read cache once its create is answered, alone or in a commit group,
// one row at a time or in multi-row statements (an import): its first
// read is a hit, and returns exactly what the database holds (read by a
// second store on the file, its cache off).
func TestFreshCustomersCached(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	plain, err := sqlite.Open(ctx, path, sqlite.Options{ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })

	var ids []custos.SubjectID
	if err := db.Update(ctx, func(tx custos.Tx) error { return createOne(ctx, tx, "alone") }); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, "alone")
	batch := []custos.SubjectID{"b1", "b2", "b3"}
	if err := db.Update(ctx, func(tx custos.Tx) error { return createBatch(ctx, tx, batch...) }); err != nil {
		t.Fatal(err)
	}
	ids = append(ids, batch...)
	// Concurrent creates share commit groups.
	var wg sync.WaitGroup
	errs := make([]error, 12)
	for i := range errs {
		id := custos.SubjectID(fmt.Sprintf("g%02d", i))
		ids = append(ids, id)
		wg.Go(func() { errs[i] = db.Update(ctx, func(tx custos.Tx) error { return createOne(ctx, tx, id) }) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	before := db.ReadCacheStats()
	if before.Fresh != uint64(len(ids)) || before.Entries != len(ids) {
		t.Fatalf("after %d creates: %+v, want each customer put by its create", len(ids), before)
	}
	for _, id := range ids {
		got, want := readStored(t, db, id), readStored(t, plain, id)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s from the cache:\n%+v %+v %+v\nfrom the database:\n%+v %+v %+v", id,
				got.Subject, got.Key, got.Consents, want.Subject, want.Key, want.Consents)
		}
		if len(want.Consents) != 2 {
			t.Errorf("%s: %d consents in the database, want 2", id, len(want.Consents))
		}
	}
	if st := db.ReadCacheStats(); st.Misses != before.Misses || st.Hits != before.Hits+uint64(len(ids)) {
		t.Errorf("first reads of created customers: %+v after %+v, want a hit each and no miss", st, before)
	}
}

// TestFreshCustomersLeftOut: a create's customer is not put when its
// member failed (in a group, with the other members committed), when
// another statement of the transaction changed its cached rows after the
// insert, or when its transaction only added consents to a customer made
// earlier. Whatever is put, a read returns what the database holds.
func TestFreshCustomersLeftOut(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	plain, err := sqlite.Open(ctx, path, sqlite.Options{ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })

	// A group whose members succeed but one, which fails after its
	// inserts: run again with savepoints, its rows are rolled back.
	refused := errors.New("refused after the inserts")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		id := custos.SubjectID(fmt.Sprintf("m%d", i))
		wg.Go(func() {
			errs[i] = db.Update(ctx, func(tx custos.Tx) error {
				if err := createOne(ctx, tx, id); err != nil {
					return err
				}
				if i == 3 {
					return refused
				}
				return nil
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if (i == 3) != errors.Is(err, refused) {
			t.Fatalf("member %d: %v", i, err)
		}
	}
	if st := db.ReadCacheStats(); st.Fresh != 7 || st.Entries != 7 {
		t.Fatalf("after 7 creates and a failed one: %+v, want the 7 cached", st)
	}
	if err := db.View(ctx, func(tx custos.Tx) error { _, err := tx.GetSubject(ctx, "m3"); return err }); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("the failed member's customer: %v, want not found", err)
	}

	// Created, then changed in the same transaction: restricted, and its
	// key replaced.
	if err := db.Update(ctx, func(tx custos.Tx) error {
		if err := createOne(ctx, tx, "changed"); err != nil {
			return err
		}
		if err := tx.RestrictSubject(ctx, "changed", time.Now().Add(time.Hour)); err != nil {
			return err
		}
		return tx.UpdateDataKey(ctx, &custos.DataKey{SubjectID: "changed", Version: 2, KEKVersion: 3, Wrapped: []byte("rewrapped"), CreatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	// Consents added to a customer made earlier, whose entry is gone.
	if err := db.Update(ctx, func(tx custos.Tx) error {
		return tx.InsertConsent(ctx, &custos.StoredConsent{ID: "late", SubjectID: "m0", Purpose: "marketing", Scope: "purpose",
			Action: custos.ConsentWithdrawn, NoticeVersion: 1, At: time.Now(), Channel: "app", InitiatedBy: "subject"})
	}); err != nil {
		t.Fatal(err)
	}
	if st := db.ReadCacheStats(); st.Fresh != 7 || st.Entries != 6 {
		t.Fatalf("after a changed create and a consent to m0: %+v, want neither put, m0's entry dropped", st)
	}
	for _, id := range []custos.SubjectID{"changed", "m0", "m1"} {
		if got, want := readStored(t, db, id), readStored(t, plain, id); !reflect.DeepEqual(got, want) {
			t.Errorf("%s from db:\n%+v %+v %+v\nfrom the database:\n%+v %+v %+v", id,
				got.Subject, got.Key, got.Consents, want.Subject, want.Key, want.Consents)
		}
	}
	if s := readStored(t, db, "changed"); s.Key.Version != 2 || s.Subject.RestrictedUntil.IsZero() {
		t.Errorf("changed: key %+v, restricted %v; want the replaced key and the restriction", s.Key, s.Subject.RestrictedUntil)
	}
}
