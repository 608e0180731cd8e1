package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testSubject(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	shanghai := time.FixedZone("CST", 8*3600)
	want := &custos.StoredSubject{
		ID:        "sub_a",
		Sealed:    map[string][]byte{"email": {1, 2, 3}, "phone": {4, 5}, "name": make([]byte, 4096)},
		CreatedAt: at(0).In(shanghai), // any zone in, UTC out
		UpdatedAt: at(time.Microsecond),
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.InsertSubject(ctx, want)
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		diff(t, "subject", want, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
		wantUTC(t, "UpdatedAt", got.UpdatedAt)
		n, err := tx.CountSubjects(ctx)
		must(t, "CountSubjects", err)
		if n != 1 {
			t.Errorf("CountSubjects: got %d, want 1", n)
		}
		return nil
	})

	// UpdateSubject replaces the fields and the update time, keeping the
	// creation time.
	upd := &custos.StoredSubject{ID: "sub_a", Sealed: map[string][]byte{"email": {9}},
		CreatedAt: at(time.Hour), UpdatedAt: at(2 * time.Hour)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.UpdateSubject(ctx, upd)
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		diff(t, "updated subject", &custos.StoredSubject{ID: "sub_a", Sealed: upd.Sealed,
			CreatedAt: want.CreatedAt, UpdatedAt: upd.UpdatedAt}, got)
		return nil
	})

	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertSubject sub_b", tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_b",
			Sealed: map[string][]byte{"email": {7}}, CreatedAt: at(0), UpdatedAt: at(0)}))
		return tx.DeleteSubject(ctx, "sub_a")
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_a")
		wantCode(t, "GetSubject after delete", err, custos.ENOTFOUND)
		if _, err := tx.GetSubject(ctx, "sub_b"); err != nil {
			t.Errorf("GetSubject sub_b: %v", err)
		}
		n, err := tx.CountSubjects(ctx)
		must(t, "CountSubjects", err)
		if n != 1 {
			t.Errorf("CountSubjects: got %d, want 1", n)
		}
		return nil
	})
}

func testSubjectErrors(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	sub := &custos.StoredSubject{ID: "sub_a", Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.InsertSubject(ctx, sub) })

	tests := []struct {
		name string
		fn   func(ctx context.Context, tx custos.Tx) error
		code string
	}{
		{name: "insert duplicate", code: custos.ECONFLICT, fn: func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertSubject(ctx, sub)
		}},
		{name: "get missing", code: custos.ENOTFOUND, fn: func(ctx context.Context, tx custos.Tx) error {
			_, err := tx.GetSubject(ctx, "sub_missing")
			return err
		}},
		{name: "update missing", code: custos.ENOTFOUND, fn: func(ctx context.Context, tx custos.Tx) error {
			return tx.UpdateSubject(ctx, &custos.StoredSubject{ID: "sub_missing", CreatedAt: at(0), UpdatedAt: at(0)})
		}},
		{name: "delete missing", code: custos.ENOTFOUND, fn: func(ctx context.Context, tx custos.Tx) error {
			return tx.DeleteSubject(ctx, "sub_missing")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Update(t.Context(), func(tx custos.Tx) error { return tt.fn(t.Context(), tx) })
			wantCode(t, tt.name, err, tt.code)
		})
	}
	// The error message names the object, never the id or a value.
	err := s.View(t.Context(), func(tx custos.Tx) error {
		_, err := tx.GetSubject(t.Context(), "sub_missing")
		return err
	})
	if msg := custos.ErrorMessage(err); msg != "Subject not found." {
		t.Errorf("message: got %q, want %q", msg, "Subject not found.")
	}
}
