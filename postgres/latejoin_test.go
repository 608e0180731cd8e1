package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/postgres"
)

// TestGroupLateJoin: while one writer's group end waits inside PostgreSQL
// for the append lock (held here by another session), the read audits
// that arrive wait in the node, all in the other writer's group, instead
// of one group ending after another behind the lock (latejoin.go). Once
// the lock is free the node has run two groups for them, and the chain is
// whole with every read in it once.
func TestGroupLateJoin(t *testing.T) {
	url := MustCreateSchema(t)
	db := MustOpen(t, url, postgres.Options{Migrate: true, Writers: 2})
	db.SetJoinWait(time.Minute) // the lock is released by the test, not by the wait's bound
	readAudit := func(req string) error {
		ctx, _ := custos.WithReadProof(t.Context()) // as core's provenRead
		return db.Update(ctx, func(tx custos.Tx) error {
			appendAtEnd(t, tx, req)
			return nil
		})
	}
	if err := readAudit("before"); err != nil { // the chain's first event
		t.Fatalf("first read audit: %v", err)
	}

	// Another session holds the append lock, as another node's group
	// end would.
	holder, err := db.Pool().Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.ExecContext(t.Context(), `SELECT pg_advisory_lock(hashtext(current_setting('search_path')), $1)`, postgres.AppendLockKey); err != nil {
		t.Fatalf("take the append lock: %v", err)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			unlocked = true
			if _, err := holder.ExecContext(context.Background(), `SELECT pg_advisory_unlock(hashtext(current_setting('search_path')), $1)`, postgres.AppendLockKey); err != nil {
				t.Errorf("release the append lock: %v", err)
			}
		}
	}
	defer unlock()

	const reads = 8
	start := db.GroupStats()
	errs := make(chan error, reads+1)
	var wg sync.WaitGroup
	wg.Go(func() { errs <- readAudit("blocked") })
	waitFor(t, func() bool { return db.EndsOnTheirWay() == 1 }) // a group end waiting for the lock
	// The first read starts the other writer's group, which waits; the
	// rest arrive while it waits and join it.
	wg.Go(func() { errs <- readAudit("late_0") })
	waitFor(t, func() bool { return db.GroupStats().LateJoins-start.LateJoins == 1 })
	for i := 1; i < reads; i++ {
		wg.Go(func() { errs <- readAudit(fmt.Sprintf("late_%d", i)) })
	}
	waitFor(t, func() bool { return db.GroupStats().LateJoined-start.LateJoined == reads-1 })
	if got := db.EndsOnTheirWay(); got != 1 {
		t.Fatalf("%d group ends on their way, want 1: the second group waits in the node", got)
	}
	unlock()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("read audit: %v", err)
		}
	}
	end := db.GroupStats()
	if got := end.Groups - start.Groups; got != 2 {
		t.Errorf("%d groups for %d reads, want 2: the one behind the lock and the one that waited", got, reads+1)
	}
	if got := end.LateJoins - start.LateJoins; got != 1 {
		t.Errorf("%d groups waited, want 1", got)
	}
	if got := end.LateJoined - start.LateJoined; got != reads-1 {
		t.Errorf("%d reads joined the waiting group, want %d", got, reads-1)
	}
	seen := map[string]int{}
	for _, r := range checkChain(t, db) {
		seen[r]++
	}
	want := []string{"before", "blocked"}
	for i := range reads {
		want = append(want, fmt.Sprintf("late_%d", i))
	}
	for _, r := range want {
		if seen[r] != 1 {
			t.Errorf("read %s: %d events, want 1", r, seen[r])
		}
	}
	if len(seen) != len(want) {
		t.Errorf("events of %d requests, want %d", len(seen), len(want))
	}
}
