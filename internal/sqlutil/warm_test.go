package sqlutil

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"custos"
)

// TestWarmBatches: the warm-up's batches cover the list once, in runs of
// the batch size, their counts add up on top of what the store set, and
// progress sees each batch; the first error, or the context's end, stops
// the batches not yet begun.
func TestWarmBatches(t *testing.T) {
	ids := make([]custos.SubjectID, 100)
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("sub_%03d", i))
	}
	var seen [100]atomic.Int32
	batch := func(b []custos.SubjectID) (WarmStats, error) {
		if len(b) > 32 {
			t.Errorf("a batch of %d, want at most 32", len(b))
		}
		for _, id := range b {
			var i int
			fmt.Sscanf(string(id), "sub_%d", &i)
			seen[i].Add(1)
		}
		return WarmStats{Loaded: len(b) - 1, Gone: 1, Keys: 2}, nil
	}
	var progress []WarmStats
	st, err := WarmBatches(t.Context(), ids, 32, 2, WarmStats{Listed: 120, Skipped: 20}, time.Now(), batch,
		func(s WarmStats) { progress = append(progress, s) }) // called one at a time
	if err != nil {
		t.Fatal(err)
	}
	for i := range seen {
		if n := seen[i].Load(); n != 1 {
			t.Fatalf("customer %d read %d times, want once", i, n)
		}
	}
	if st.Listed != 120 || st.Skipped != 20 || st.Loaded != 96 || st.Gone != 4 || st.Keys != 8 || st.Elapsed <= 0 {
		t.Fatalf("stats %+v; want 120 listed, 20 skipped, 96 loaded, 4 gone, 8 keys", st)
	}
	if len(progress) != 4 || progress[3].Loaded != 96 {
		t.Fatalf("progress: %d calls, %+v; want 4, the last with the totals", len(progress), progress)
	}

	// The first error stops the rest.
	boom := errors.New("boom")
	var ran atomic.Int32
	_, err = WarmBatches(t.Context(), ids, 10, 1, WarmStats{}, time.Now(), func(b []custos.SubjectID) (WarmStats, error) {
		if ran.Add(1) == 2 {
			return WarmStats{}, boom
		}
		return WarmStats{Loaded: len(b)}, nil
	}, nil)
	if !errors.Is(err, boom) || ran.Load() != 2 {
		t.Fatalf("after an error: %v, %d batches run; want the error and 2", err, ran.Load())
	}

	// A context ended before the start: no batch, its error.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	st, err = WarmBatches(ctx, ids, 10, 2, WarmStats{Listed: 100}, time.Now(), func(b []custos.SubjectID) (WarmStats, error) {
		t.Error("a batch ran after the context ended")
		return WarmStats{}, nil
	}, nil)
	if !errors.Is(err, context.Canceled) || st.Listed != 100 || st.Loaded != 0 {
		t.Fatalf("ended context: %+v, %v; want context.Canceled and nothing loaded", st, err)
	}
}
