package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"custos"
)

func testDataKey(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	want := &custos.DataKey{SubjectID: "sub_a", Version: 1, KEKVersion: 2, Wrapped: []byte("wrapped-a"), CreatedAt: at(0)}
	// A subject's key is stored before the subject, and stays usable
	// without it: there is no foreign key between them.
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.InsertDataKey(ctx, want) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetDataKey(ctx, "sub_a")
		must(t, "GetDataKey", err)
		diff(t, "data key", want, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
		return nil
	})

	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertDataKey(t.Context(), want) })
	wantCode(t, "InsertDataKey duplicate", err, custos.ECONFLICT)

	rewrapped := &custos.DataKey{SubjectID: "sub_a", Version: 2, KEKVersion: 3, Wrapped: []byte("rewrapped"), CreatedAt: at(time.Hour)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.UpdateDataKey(ctx, rewrapped) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetDataKey(ctx, "sub_a")
		must(t, "GetDataKey", err)
		diff(t, "updated data key", rewrapped, got)
		return nil
	})

	// A subject deleted on its own leaves its key; the key deletes alone.
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_a",
			Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}))
		return tx.DeleteSubject(ctx, "sub_a")
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetDataKey(ctx, "sub_a")
		must(t, "GetDataKey after subject delete", err)
		return tx.DeleteDataKey(ctx, "sub_a")
	})

	// A read asks for the subject, then its key, in one snapshot (a store
	// may fetch both at once): the answers match what was written, with
	// and without a key, and a key shredded after the snapshot ended is
	// gone from the next one.
	subB := &custos.StoredSubject{ID: "sub_b", Sealed: map[string][]byte{"email": {2}}, CreatedAt: at(0), UpdatedAt: at(0)}
	keyB := &custos.DataKey{SubjectID: "sub_b", Version: 1, KEKVersion: 2, Wrapped: []byte("wrapped-b"), CreatedAt: at(0)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertSubject", tx.InsertSubject(ctx, subB))
		must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_nokey",
			Sealed: map[string][]byte{"email": {3}}, CreatedAt: at(0), UpdatedAt: at(0)}))
		return tx.InsertDataKey(ctx, keyB)
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, "sub_b")
		must(t, "GetSubject", err)
		diff(t, "subject", subB, st)
		got, err := tx.GetDataKey(ctx, "sub_b")
		must(t, "GetDataKey after GetSubject", err)
		diff(t, "data key read after its subject", keyB, got)
		got.Wrapped[0] = 'X' // the caller's copy
		again, err := tx.GetDataKey(ctx, "sub_b")
		must(t, "GetDataKey again", err)
		diff(t, "data key read twice", keyB, again)
		_, err = tx.GetSubject(ctx, "sub_nokey")
		must(t, "GetSubject without key", err)
		_, err = tx.GetDataKey(ctx, "sub_nokey")
		wantCode(t, "GetDataKey of a subject without one", err, custos.ENOTFOUND)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteDataKey(ctx, "sub_b") })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_b")
		must(t, "GetSubject after shredding", err)
		_, err = tx.GetDataKey(ctx, "sub_b")
		wantCode(t, "GetDataKey after shredding", err, custos.ENOTFOUND)
		return nil
	})

	tests := []struct {
		name string
		fn   func(ctx context.Context, tx custos.Tx) error
	}{
		{name: "get", fn: func(ctx context.Context, tx custos.Tx) error {
			_, err := tx.GetDataKey(ctx, "sub_a")
			return err
		}},
		{name: "update", fn: func(ctx context.Context, tx custos.Tx) error { return tx.UpdateDataKey(ctx, want) }},
		{name: "delete", fn: func(ctx context.Context, tx custos.Tx) error { return tx.DeleteDataKey(ctx, "sub_a") }},
	}
	for _, tt := range tests {
		err := s.Update(t.Context(), func(tx custos.Tx) error { return tt.fn(t.Context(), tx) })
		wantCode(t, tt.name+" missing data key", err, custos.ENOTFOUND)
	}
}

func testDataKeyList(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	var all []*custos.DataKey
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		// Inserted out of id order; listed in id order.
		for _, i := range []int{3, 0, 4, 1, 2} {
			k := &custos.DataKey{SubjectID: custos.SubjectID(fmt.Sprintf("sub_%d", i)), Version: 1,
				KEKVersion: 1 + i%2, Wrapped: []byte{byte(i)}, CreatedAt: at(time.Duration(i) * time.Second)}
			must(t, "InsertDataKey", tx.InsertDataKey(ctx, k))
		}
		return nil
	})
	for i := range 5 {
		all = append(all, &custos.DataKey{SubjectID: custos.SubjectID(fmt.Sprintf("sub_%d", i)), Version: 1,
			KEKVersion: 1 + i%2, Wrapped: []byte{byte(i)}, CreatedAt: at(time.Duration(i) * time.Second)})
	}

	tests := []struct {
		name  string
		after custos.SubjectID
		limit int
		want  []*custos.DataKey
	}{
		{name: "first page", after: "", limit: 2, want: all[:2]},
		{name: "second page", after: "sub_1", limit: 2, want: all[2:4]},
		{name: "last page", after: "sub_3", limit: 2, want: all[4:]},
		{name: "past the end", after: "sub_4", limit: 2, want: nil},
		{name: "between ids", after: "sub_1a", limit: 10, want: all[2:]},
		{name: "no limit", after: "", limit: 0, want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.ListDataKeys(ctx, tt.after, tt.limit)
				must(t, "ListDataKeys", err)
				diff(t, "keys", tt.want, got)
				return nil
			})
		})
	}

	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.CountDataKeysByKEK(ctx)
		must(t, "CountDataKeysByKEK", err)
		diff(t, "counts", map[int]int{1: 3, 2: 2}, got)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, k := range all {
			must(t, "DeleteDataKey", tx.DeleteDataKey(ctx, k.SubjectID))
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.CountDataKeysByKEK(ctx)
		must(t, "CountDataKeysByKEK", err)
		diff(t, "counts when empty", map[int]int{}, got)
		return nil
	})
}
