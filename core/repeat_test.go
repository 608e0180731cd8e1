package core_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"

	"custos"
	"custos/core"
)

// repeatStore runs every Update function twice: first in a transaction
// that is then rolled back, then for real — what the stores do when a
// commit group runs again (SQLite, a member failed after writing) or a
// deadlock victim is retried (PostgreSQL). custos.Store allows it, so
// core's Update functions must give the same answer either way.
type repeatStore struct {
	custos.Store
	repeats atomic.Int64
}

var errRepeat = errors.New("run again")

func (s *repeatStore) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	err := s.Store.Update(ctx, func(tx custos.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return errRepeat
	})
	if !errors.Is(err, errRepeat) {
		return err // fn failed: a store does not run a failed fn again
	}
	s.repeats.Add(1)
	return s.Store.Update(ctx, fn)
}

// TestUpdateFnsRepeatable runs operations whose Update functions collect
// results in variables outside the function, on a store that runs each
// function twice, and checks each result is counted once.
func TestUpdateFnsRepeatable(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil)
	store := &repeatStore{Store: db}
	svc, admin, ring, _ := newService(t, store)
	e := &env{svc: svc, db: db, ring: ring, admin: admin}

	publishPersonalisation(t, svc, admin)
	id := e.create(t, map[string]string{"name": "甲", "gender": "female"})
	e.create(t, map[string]string{"name": "乙"})
	consentPersonalisation(t, svc, admin, id)

	st, err := svc.ConsentState(admin, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.History) != 1 || len(st.Current) != 1 {
		t.Errorf("consent state: %d in history, %d current, want 1 and 1", len(st.History), len(st.Current))
	}

	next, err := ring.Rotate(nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := core.New(store, custos.DefaultCatalog(), next, nil, nil).Rewrap(context.Background(), next, nil)
	if err != nil || n != 2 {
		t.Errorf("rewrap: %d data keys, %v; want 2", n, err)
	}
	if store.repeats.Load() == 0 {
		t.Fatal("the store ran no function twice")
	}
}
