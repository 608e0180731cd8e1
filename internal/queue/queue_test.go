package queue_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"custos"
	"custos/internal/queue"
)

// TestHand checks how long a write waits for a store's writer: until its
// context's deadline when it has one, even past the store's query timeout
// (contention is queued, not refused, while the answer can still be
// delivered: issue #7, zero errors under load), and at most that timeout
// otherwise; a refusal is a retry-later EUNAVAILABLE.
func TestHand(t *testing.T) {
	const fallback = 20 * time.Millisecond
	closedErr := queue.ClosedError("test")
	t.Run("taken after the fallback while the deadline lasts", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		reqs := make(chan int)
		got := make(chan int, 1)
		go func() {
			time.Sleep(10 * fallback)
			got <- <-reqs
		}()
		if err := queue.Hand(ctx, reqs, 7, fallback, nil, closedErr); err != nil {
			t.Fatalf("Hand: %v, want the writer to take it", err)
		}
		if v := <-got; v != 7 {
			t.Errorf("writer got %d, want 7", v)
		}
	})
	t.Run("no deadline: refused after the fallback", func(t *testing.T) {
		err := queue.Hand(t.Context(), make(chan int), 7, fallback, nil, closedErr)
		if custos.ErrorCode(err) != custos.EUNAVAILABLE || custos.ErrorMessage(err) != queue.ErrBusyMessage {
			t.Errorf("Hand: %v (%s), want EUNAVAILABLE with the busy message", err, custos.ErrorCode(err))
		}
	})
	t.Run("deadline passes: refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 3*fallback)
		defer cancel()
		err := queue.Hand(ctx, make(chan int), 7, fallback, nil, closedErr)
		if custos.ErrorCode(err) != custos.EUNAVAILABLE || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Hand: %v (%s), want EUNAVAILABLE caused by the deadline", err, custos.ErrorCode(err))
		}
	})
	t.Run("caller gone", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(fallback/2, cancel)
		err := queue.Hand(ctx, make(chan int), 7, time.Minute, nil, closedErr)
		if custos.ErrorCode(err) != custos.EINTERNAL || !errors.Is(err, context.Canceled) {
			t.Errorf("Hand: %v, want EINTERNAL caused by the cancellation", err)
		}
	})
	t.Run("store closed", func(t *testing.T) {
		closed := make(chan struct{})
		close(closed)
		if err := queue.Hand(t.Context(), make(chan int), 7, time.Minute, closed, closedErr); err != closedErr {
			t.Errorf("Hand: %v, want %v", err, closedErr)
		}
	})
}

// TestGather checks that a group takes what waits, in order, never more
// than its bound and never blocking when nothing (more) waits, with or
// without yields.
func TestGather(t *testing.T) {
	for _, yields := range []int{0, 1, 3} {
		reqs := make(chan int, 10)
		for i := range 5 {
			reqs <- i
		}
		g := queue.Gather(reqs, []int{-1}, 4, yields)
		if want := []int{-1, 0, 1, 2}; !slices.Equal(g, want) {
			t.Errorf("yields %d: group %v, want %v (bounded at 4)", yields, g, want)
		}
		g = queue.Gather(reqs, g[:0], 4, yields)
		if want := []int{3, 4}; !slices.Equal(g, want) {
			t.Errorf("yields %d: second group %v, want %v", yields, g, want)
		}
		if g = queue.Gather(reqs, nil, 4, yields); len(g) != 0 {
			t.Errorf("yields %d: empty queue gave %v", yields, g)
		}
	}
}
