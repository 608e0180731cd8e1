// Package queue hands work to a bounded set of workers (a store's writer,
// a node's import slots), waiting as long as the caller's deadline allows.
package queue

import (
	"context"
	"errors"
	"runtime"
	"time"

	"custos"
)

// ErrBusyMessage is what a caller is told when its work waited for its
// turn until it had to give up.
const ErrBusyMessage = "Custos is busy: the request waited for its turn until its time was up; nothing of it was written. Retry later."

// Hand passes r over reqs (to a store's writer, or into a buffered channel
// of slots), waiting for it to be taken.
//
// How long it waits: until ctx's deadline when ctx has one. That is the
// caller's own bound (an HTTP request's ends before its answer could no
// longer be delivered), so contention is queued as long as the work can
// still be answered and refused only after. Without a deadline it waits
// at most fallback (the store's query timeout), or without bound when
// fallback is not positive. Either way the refusal is
// EUNAVAILABLE, a retry-later answer: nothing was written. A caller that
// went away (ctx cancelled) gets EINTERNAL with the cause, and closed
// makes it return closedErr.
func Hand[T any](ctx context.Context, reqs chan<- T, r T, fallback time.Duration, closed <-chan struct{}, closedErr error) error {
	select { // a writer is ready: no timer needed
	case reqs <- r:
		return nil
	default:
	}
	var expired <-chan time.Time
	if _, ok := ctx.Deadline(); !ok && fallback > 0 {
		t := time.NewTimer(fallback)
		defer t.Stop()
		expired = t.C
	}
	select {
	case reqs <- r:
		return nil
	case <-expired:
		return busy(errors.New("queue wait exceeded the query timeout"))
	case <-closed:
		return closedErr
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return busy(ctx.Err())
		}
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: ctx.Err()}
	}
}

func busy(cause error) error {
	return &custos.Error{Code: custos.EUNAVAILABLE, Message: ErrBusyMessage, Err: cause}
}

// ClosedError is the answer to a write handed to a store that is closing.
func ClosedError(store string) error {
	return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: errors.New(store + ": store closed")}
}

// Gather is a group-commit writer's gathering of a group: it appends to
// group what waits in reqs, without blocking, until group holds limit
// requests. Then, up to yields times, it lets the goroutines ready to run
// go first (runtime.Gosched) and takes what they queued meanwhile. Those
// are requests a moment away from their write (a read about to append its
// audit event), which would otherwise wait out this commit and pay for
// the next one; on an idle node nothing is ready and the yield returns at
// once. BENCHMARKS.md (tenth session) has the figures.
func Gather[T any](reqs <-chan T, group []T, limit, yields int) []T {
	for ; ; yields-- {
	take:
		for len(group) < limit {
			select {
			case r := <-reqs:
				group = append(group, r)
			default:
				break take
			}
		}
		if yields <= 0 || len(group) >= limit {
			return group
		}
		runtime.Gosched()
	}
}
