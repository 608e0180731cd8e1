package sqlutil

import (
	"errors"
	"testing"
)

// TestChunks: the ranges cover every item once, in order, and have at
// most eight sizes (BatchRows and the powers of two below it).
func TestChunks(t *testing.T) {
	sizes := map[int]bool{}
	for n := range 1000 {
		next := 0
		err := Chunks(n, func(lo, hi int) error {
			if lo != next || hi <= lo || hi > n {
				t.Fatalf("n=%d: range [%d, %d) after %d", n, lo, hi, next)
			}
			sizes[hi-lo] = true
			next = hi
			return nil
		})
		if err != nil || next != n {
			t.Fatalf("n=%d: covered %d, err %v", n, next, err)
		}
	}
	if len(sizes) != 8 {
		t.Errorf("got %d sizes (%v), want 8", len(sizes), sizes)
	}
	for s := range sizes {
		if s&(s-1) != 0 || s > BatchRows {
			t.Errorf("size %d is not a power of two up to %d", s, BatchRows)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := Chunks(500, func(lo, hi int) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("an error did not stop Chunks: %v after %d calls", err, calls)
	}
}

func TestValues(t *testing.T) {
	if got, want := Values(2, 3), "(?, ?, ?), (?, ?, ?)"; got != want {
		t.Errorf("Values(2, 3) = %q, want %q", got, want)
	}
	if got, want := Values(1, 1), "(?)"; got != want {
		t.Errorf("Values(1, 1) = %q, want %q", got, want)
	}
}
