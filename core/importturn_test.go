package core

import (
	"context"
	"testing"
	"time"

	"custos"
)

// TestImportTurn checks the node's gate on import batches in work
// (ImportConcurrency): past it a batch waits, as long as its request's
// time allows, and is then refused as busy (EUNAVAILABLE, retry later);
// a finished batch lets the next one in.
func TestImportTurn(t *testing.T) {
	s := &Service{imports: make(chan struct{}, ImportConcurrency)}
	var releases []func()
	for range ImportConcurrency {
		release, err := s.importTurn(t.Context())
		if err != nil {
			t.Fatalf("turn within the limit: %v", err)
		}
		releases = append(releases, release)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if _, err := s.importTurn(ctx); custos.ErrorCode(err) != custos.EUNAVAILABLE {
		t.Errorf("turn past the limit until the deadline: %v, want EUNAVAILABLE", err)
	}
	gone, stop := context.WithCancel(t.Context())
	stop()
	if _, err := s.importTurn(gone); custos.ErrorCode(err) != custos.EINTERNAL {
		t.Errorf("turn of a caller gone: %v, want EINTERNAL", err)
	}
	got := make(chan error, 1)
	go func() {
		release, err := s.importTurn(t.Context())
		if err == nil {
			release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("a batch past the limit got its turn (%v) before one finished", err)
	case <-time.After(20 * time.Millisecond):
	}
	releases[0]()
	if err := <-got; err != nil {
		t.Errorf("turn after a batch finished: %v", err)
	}
	for _, r := range releases[1:] {
		r()
	}
	if n := len(s.imports); n != 0 {
		t.Errorf("%d turns still held after every release", n)
	}
}
