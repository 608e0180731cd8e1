package core_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"custos"
)

// checkpointSpy counts the checkpoint reads made through it, on the real
// store beneath.
type checkpointSpy struct {
	custos.Store
	lists, lasts atomic.Int64
}

func (s *checkpointSpy) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	return s.Store.Update(ctx, func(tx custos.Tx) error { return fn(spyTx{tx, s}) })
}

func (s *checkpointSpy) View(ctx context.Context, fn func(tx custos.Tx) error) error {
	return s.Store.View(ctx, func(tx custos.Tx) error { return fn(spyTx{tx, s}) })
}

type spyTx struct {
	custos.Tx
	s *checkpointSpy
}

func (t spyTx) ListCheckpoints(ctx context.Context) ([]*custos.AuditCheckpoint, error) {
	t.s.lists.Add(1)
	return t.Tx.ListCheckpoints(ctx)
}

func (t spyTx) LastCheckpoint(ctx context.Context) (*custos.AuditCheckpoint, error) {
	t.s.lasts.Add(1)
	return t.Tx.LastCheckpoint(ctx)
}

// TestCheckpointSignsHeadOnce: the job leader's periodic Checkpoint signs
// the head of the audit chain when it is not signed yet, and does nothing
// when it is. It looks at the last checkpoint only: reading every one
// (one a thousand events) each minute grew with the audit log, in the
// store's writer on SQLite (BENCHMARKS.md, forty-fourth session).
func TestCheckpointSignsHeadOnce(t *testing.T) {
	db := openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), nil)
	spy := &checkpointSpy{Store: db}
	svc, admin, _, _ := newService(t, spy)
	e := &env{svc: svc, db: db, admin: admin}
	state := func() (head int64, cps []*custos.AuditCheckpoint) {
		t.Helper()
		err := db.View(context.Background(), func(tx custos.Tx) (err error) {
			if head, _, err = tx.AuditHead(context.Background()); err != nil {
				return err
			}
			cps, err = tx.ListCheckpoints(context.Background())
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return head, cps
	}

	e.create(t, map[string]string{"name": "甲"})
	for round := 1; round <= 2; round++ {
		if err := svc.Checkpoint(admin); err != nil {
			t.Fatal(err)
		}
		if err := svc.Checkpoint(admin); err != nil { // signed already: nothing
			t.Fatal(err)
		}
		head, cps := state()
		if len(cps) != round || cps[round-1].Seq != head {
			t.Fatalf("round %d: checkpoints %v; want %d, the last at the head %d", round, cps, round, head)
		}
		e.create(t, map[string]string{"name": "乙"}) // the head moves on
	}
	if n := spy.lists.Load(); n != 0 {
		t.Errorf("Checkpoint read every checkpoint %d times; want the last only", n)
	}
	if n := spy.lasts.Load(); n != 4 {
		t.Errorf("Checkpoint read the last checkpoint %d times; want 4, once a call", n)
	}
}
