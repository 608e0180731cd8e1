package postgres_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"custos/postgres"
)

// TestTryLeader plays two nodes on one database electing a leader.
func TestTryLeader(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b, err := postgres.Open(t.Context(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bClosed := false
	t.Cleanup(func() {
		if !bClosed {
			if err := b.Close(); err != nil {
				t.Error(err)
			}
		}
	})
	// The job name is per test run: advisory locks are per database, which
	// other test runs may share.
	rnd := make([]byte, 8)
	if _, err := rand.Read(rnd); err != nil {
		t.Fatal(err)
	}
	job := "retention-" + hex.EncodeToString(rnd)

	try := func(name string, db *postgres.DB, want bool) func() {
		t.Helper()
		release, ok, err := db.TryLeader(t.Context(), job)
		if err != nil {
			t.Fatalf("%s TryLeader: %v", name, err)
		}
		if ok != want {
			t.Fatalf("%s TryLeader: got %v, want %v", name, ok, want)
		}
		if ok != (release != nil) {
			t.Fatalf("%s TryLeader: release is %v with ok %v", name, release != nil, ok)
		}
		return release
	}

	releaseA := try("a", a, true)
	try("b while a leads", b, false)
	// Another caller on the leading node gets its own session: not leader.
	try("a again while a leads", a, false)
	// Another job is free.
	other, ok, err := b.TryLeader(t.Context(), job+"-other")
	if err != nil || !ok {
		t.Fatalf("b TryLeader other job: got %v, %v, want leader", ok, err)
	}
	other()

	releaseA()
	releaseA() // idempotent
	releaseB := try("b after a released", b, true)
	try("a while b leads", a, false)
	releaseB()

	// Closing the leading node hands leadership over.
	try("b again", b, true)
	if err := b.Close(); err != nil {
		t.Fatalf("Close b: %v", err)
	}
	bClosed = true
	try("a after b closed", a, true)
	if _, _, err := b.TryLeader(t.Context(), job); err == nil {
		t.Errorf("TryLeader on a closed store: got nil error")
	}
}
