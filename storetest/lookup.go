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
