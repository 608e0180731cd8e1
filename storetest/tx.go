package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"custos"
)

func testRollback(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	errBoom := errors.New("boom")
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		ctx := t.Context()
		must(t, "InsertDataKey", tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "sub_a", Version: 1, KEKVersion: 1,
			Wrapped: []byte("w"), CreatedAt: at(0)}))
		must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_a",
			Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}))
		must(t, "InsertLookup", tx.InsertLookup(ctx, "email", []byte("h"), "sub_a"))
		must(t, "SetMeta", tx.SetMeta(ctx, "k", "v"))
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update: got %v, want the function's error", err)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_a")
		wantCode(t, "GetSubject after rollback", err, custos.ENOTFOUND)
		_, err = tx.GetDataKey(ctx, "sub_a")
		wantCode(t, "GetDataKey after rollback", err, custos.ENOTFOUND)
		_, err = tx.FindLookup(ctx, "email", []byte("h"))
		wantCode(t, "FindLookup after rollback", err, custos.ENOTFOUND)
		_, err = tx.GetMeta(ctx, "k")
		wantCode(t, "GetMeta after rollback", err, custos.ENOTFOUND)
		return nil
	})

	// The rolled-back id is free again.
	insertSubjects(t, s, "sub_a")
}

func testViewReadOnly(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	err := s.View(t.Context(), func(tx custos.Tx) error {
		return tx.InsertSubject(t.Context(), &custos.StoredSubject{ID: "sub_a",
			Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)})
	})
	if err == nil {
		t.Errorf("InsertSubject in View: got nil error, want a refusal")
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		n, err := tx.CountSubjects(ctx)
		must(t, "CountSubjects", err)
		if n != 0 {
			t.Errorf("CountSubjects after write in View: got %d, want 0", n)
		}
		return nil
	})
}

func testNow(t *testing.T, open OpenFunc) {
	t1 := time.Date(2026, 5, 4, 3, 2, 1, 123456789, time.FixedZone("CST", 8*3600))
	t2 := t1.Add(90 * time.Minute)
	clk := newClock(t1)
	s := open(t, clk.Now)

	// Tx.Now is the injected clock at the start of the transaction, in UTC
	// and truncated to the microsecond, and does not move within it.
	check := func(t *testing.T, tx custos.Tx, want time.Time) {
		t.Helper()
		want = want.UTC().Truncate(time.Microsecond)
		got := tx.Now()
		if !got.Equal(want) {
			t.Errorf("Now: got %v, want %v", got, want)
		}
		wantUTC(t, "Now", got)
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		check(t, tx, t1)
		clk.Set(t2)
		check(t, tx, t1)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		check(t, tx, t2)
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		check(t, tx, t2)
		clk.Set(t1)
		check(t, tx, t2)
		return nil
	})

	// A time from Now round-trips exactly.
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_a",
			Sealed: map[string][]byte{"email": {1}}, CreatedAt: tx.Now(), UpdatedAt: tx.Now()})
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		want := t1.UTC().Truncate(time.Microsecond)
		if got.CreatedAt != want {
			t.Errorf("CreatedAt: got %v, want %v", got.CreatedAt, want)
		}
		return nil
	})
}

// testConcurrentAudit appends from several goroutines the way core does —
// read the head, insert head + 1 — and wants a gapless, unforked chain.
func testConcurrentAudit(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				errs <- s.Update(t.Context(), func(tx custos.Tx) error {
					ctx := t.Context()
					seq, head, err := tx.AuditHead(ctx)
					if err != nil {
						return err
					}
					next := seq + 1
					return tx.InsertAuditEvent(ctx, &custos.AuditEvent{
						Seq: next, Time: tx.Now(), ActorID: "prn_a", Action: custos.AuditSubjectRead,
						Decision: custos.DecisionAllow, RequestID: fmt.Sprintf("req_%d_%d", w, i),
						PrevHash: head, Hash: bytes.Repeat([]byte{byte(next)}, 32),
					})
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.FindAuditEvents(ctx, custos.AuditFilter{})
		must(t, "FindAuditEvents", err)
		if len(got) != workers*perWorker {
			t.Fatalf("events: got %d, want %d", len(got), workers*perWorker)
		}
		var prev []byte
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d: got seq %d, want %d", i, e.Seq, i+1)
			}
			if !bytes.Equal(e.PrevHash, prev) {
				t.Fatalf("event %d: prev hash %x, want %x", e.Seq, e.PrevHash, prev)
			}
			prev = e.Hash
		}
		return nil
	})
}
