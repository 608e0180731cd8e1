package custos

import (
	"strings"
	"testing"
	"time"
)

// TestNewID: ids are valid, distinct, carry 80 random bits after the time,
// ids of the same instant share their 48-bit time prefix, and ids made
// one after another — 20 µs apart, across seconds — sort as strings in
// the order they were made (so that a create appends at each index's
// right edge; BENCHMARKS.md, sixth session).
func TestNewID(t *testing.T) {
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	for range 1000 {
		id := newIDAt("sub", at)
		if !ValidID("sub", id) {
			t.Fatalf("%q is not a valid sub id", id)
		}
		if seen[id] {
			t.Fatalf("%q generated twice", id)
		}
		seen[id] = true
	}
	a, b := newIDAt("sub", at), newIDAt("sub", at)
	// 48 time bits fill the first 9 characters (45 bits) and 3 bits of
	// the 10th; the last 16 characters are random.
	if a[:4+9] != b[:4+9] {
		t.Fatalf("ids of the same instant differ in their time prefix: %s %s", a, b)
	}
	if a[4+10:] == b[4+10:] {
		t.Fatalf("ids of the same instant share their random part: %s %s", a, b)
	}
	prev := newIDAt("sub", at.Add(-time.Second+20*time.Microsecond))
	for i := range 100000 {
		next := newIDAt("sub", at.Add(time.Duration(i)*20*time.Microsecond))
		if next <= prev {
			t.Fatalf("id %s made 20 µs after %s sorts before it", next, prev)
		}
		prev = next
	}
	later := newIDAt("sub", at.Add(time.Hour))
	if later[:4+6] == a[:4+6] {
		t.Fatalf("ids an hour apart share the time prefix: %s %s", a, later)
	}
	if !strings.HasPrefix(NewID("rec"), "rec_") {
		t.Fatal("NewID ignores the prefix")
	}
}
