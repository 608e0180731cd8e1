package storetest

import (
	"context"
	"testing"

	"custos"
)

// insertSubjects stores minimal subjects with the given ids.
func insertSubjects(t *testing.T, s custos.Store, ids ...custos.SubjectID) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, id := range ids {
			must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: id,
				Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}))
		}
		return nil
	})
}

func testLookup(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertLookup a email", tx.InsertLookup(ctx, "email", []byte("ha"), "sub_a"))
		must(t, "InsertLookup a phone", tx.InsertLookup(ctx, "phone", []byte("pa"), "sub_a"))
		// The same hash under another field is another entry.
		must(t, "InsertLookup a phone=ha", tx.InsertLookup(ctx, "phone", []byte("ha"), "sub_a"))
		must(t, "InsertLookup b email", tx.InsertLookup(ctx, "email", []byte("hb"), "sub_b"))
		return nil
	})

	find := func(t *testing.T, field, hash string, want custos.SubjectID) {
		t.Helper()
		view(t, s, func(ctx context.Context, tx custos.Tx) error {
			got, err := tx.FindLookup(ctx, field, []byte(hash))
			if want == "" {
				wantCode(t, "FindLookup "+field, err, custos.ENOTFOUND)
				return nil
			}
			must(t, "FindLookup "+field, err)
			if got != want {
				t.Errorf("FindLookup %s: got %q, want %q", field, got, want)
			}
			return nil
		})
	}
	find(t, "email", "ha", "sub_a")
	find(t, "phone", "pa", "sub_a")
	find(t, "phone", "ha", "sub_a")
	find(t, "email", "hb", "sub_b")
	find(t, "email", "pa", "")

	// By field: only that field of that subject goes.
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteLookups(ctx, "sub_a", "email") })
	find(t, "email", "ha", "")
	find(t, "phone", "pa", "sub_a")
	find(t, "email", "hb", "sub_b")

	// All of a subject's entries; deleting none is not an error.
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteLookups(ctx, "sub_a", "") })
	find(t, "phone", "pa", "")
	find(t, "phone", "ha", "")
	find(t, "email", "hb", "sub_b")
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteLookups(ctx, "sub_a", "") })
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteLookups(ctx, "sub_missing", "email") })
}

func testLookupConflict(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.InsertLookup(ctx, "email", []byte("h"), "sub_a")
	})

	// The conflict names the owner, and the transaction stays usable: the
	// caller may go on (here: store another entry and commit).
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		err := tx.InsertLookup(ctx, "email", []byte("h"), "sub_b")
		wantCode(t, "InsertLookup duplicate", err, custos.ECONFLICT)
		if e := custos.AsError(err); e == nil || e.ConflictID != "sub_a" {
			t.Errorf("InsertLookup duplicate: got %#v, want ConflictID sub_a", e)
		}
		return tx.InsertLookup(ctx, "email", []byte("h2"), "sub_b")
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.FindLookup(ctx, "email", []byte("h"))
		must(t, "FindLookup h", err)
		if got != "sub_a" {
			t.Errorf("FindLookup h: got %q, want sub_a", got)
		}
		got, err = tx.FindLookup(ctx, "email", []byte("h2"))
		must(t, "FindLookup h2", err)
		if got != "sub_b" {
			t.Errorf("FindLookup h2: got %q, want sub_b", got)
		}
		return nil
	})

	// The same subject inserting its own entry again is a conflict too.
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.InsertLookup(t.Context(), "email", []byte("h"), "sub_a")
	})
	if e := custos.AsError(err); e == nil || e.Code != custos.ECONFLICT || e.ConflictID != "sub_a" {
		t.Errorf("InsertLookup own duplicate: got %v, want ECONFLICT naming sub_a", err)
	}
}

// testNewSubject: a store's one-statement insert of a new customer
// (custos.NewSubjectInserter) stores the data key, the row and every
// lookup key; a taken lookup key, data key or id gives ECONFLICT naming
// it, and the caller's error undoes what the statement stored.
func testNewSubject(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	newSubject := func(id custos.SubjectID, hashes ...string) (*custos.DataKey, *custos.StoredSubject, []custos.Lookup) {
		k := &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte("wrapped " + id), CreatedAt: at(0)}
		sub := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"email": []byte("sealed " + id)}, CreatedAt: at(0), UpdatedAt: at(0)}
		var ls []custos.Lookup
		for i, h := range hashes {
			ls = append(ls, custos.Lookup{Field: []string{"email", "mobile"}[i], Hash: []byte(h), SubjectID: id})
		}
		return k, sub, ls
	}
	// Asked in a transaction, skipped outside it: the Update function may
	// run on the store's writer goroutine, which t.Skip must not stop.
	var has bool
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, has = tx.(custos.NewSubjectInserter)
		return nil
	})
	if !has {
		t.Skip("this store's Tx has no one-statement insert (custos.NewSubjectInserter)")
	}
	insert := func(ctx context.Context, tx custos.Tx, id custos.SubjectID, hashes ...string) error {
		k, sub, ls := newSubject(id, hashes...)
		return tx.(custos.NewSubjectInserter).InsertNewSubject(ctx, k, sub, ls)
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return insert(ctx, tx, "sub_a", "ea", "ma") })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		sub, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		if string(sub.Sealed["email"]) != "sealed sub_a" {
			t.Errorf("sealed = %q", sub.Sealed["email"])
		}
		k, err := tx.GetDataKey(ctx, "sub_a")
		must(t, "GetDataKey", err)
		if string(k.Wrapped) != "wrapped sub_a" {
			t.Errorf("wrapped = %q", k.Wrapped)
		}
		for field, h := range map[string]string{"email": "ea", "mobile": "ma"} {
			owner, err := tx.FindLookup(ctx, field, []byte(h))
			must(t, "FindLookup "+field, err)
			if owner != "sub_a" {
				t.Errorf("FindLookup %s = %q, want sub_a", field, owner)
			}
		}
		return nil
	})

	// A taken lookup key, data key or id: ECONFLICT naming it, and nothing
	// of the failed customer is left once the caller gives up.
	for _, c := range []struct {
		id     custos.SubjectID
		hashes []string
		entity string
	}{
		{"sub_b", []string{"eb", "ma"}, "Lookup"},
		{"sub_a", []string{"ec", "mc"}, "Data key"},
	} {
		// The store may check the insert only at the transaction's end
		// and then run the function again (PostgreSQL's commit groups
		// defer it): the run whose answer Update returns is the one
		// that got the conflict from InsertNewSubject.
		var last error
		err := s.Update(t.Context(), func(tx custos.Tx) error {
			last = insert(t.Context(), tx, c.id, c.hashes...)
			return last
		})
		wantCode(t, "Update", err, custos.ECONFLICT)
		if e := custos.AsError(last); e == nil || e != custos.AsError(err) || e.Message != c.entity+" already exists." {
			t.Errorf("InsertNewSubject %s: last run got %v, Update %v; want the insert's %q already exists", c.id, last, err, c.entity)
		}
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_b")
		wantCode(t, "GetSubject sub_b", err, custos.ENOTFOUND)
		_, err = tx.GetDataKey(ctx, "sub_b")
		wantCode(t, "GetDataKey sub_b", err, custos.ENOTFOUND)
		for field, h := range map[string]string{"email": "eb", "mobile": "ec"} {
			_, err := tx.FindLookup(ctx, field, []byte(h))
			wantCode(t, "FindLookup "+field, err, custos.ENOTFOUND)
		}
		return nil
	})
}
