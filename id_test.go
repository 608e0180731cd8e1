package custos

import (
	"strings"
	"testing"
	"time"
)

// TestNewID: ids are valid, distinct, carry 96 random bits after the time,
// and ids of the same second share their leading characters while a later
// second gives a different prefix.
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
	// 32 time bits fill the first 6 characters (30 bits) and 2 bits of
	// the 7th.
	if a[:4+6] != b[:4+6] {
		t.Fatalf("ids of the same second differ in their time prefix: %s %s", a, b)
	}
	if a[4+7:] == b[4+7:] {
		t.Fatalf("ids of the same second share their random part: %s %s", a, b)
	}
	later := newIDAt("sub", at.Add(time.Hour))
	if later[:4+6] == a[:4+6] {
		t.Fatalf("ids an hour apart share the time prefix: %s %s", a, later)
	}
	if !strings.HasPrefix(NewID("rec"), "rec_") {
		t.Fatal("NewID ignores the prefix")
	}
}
