package postgres_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"custos"
	"custos/postgres"
)

// TestTryLeaderPerSchema: two custos installations in two schemas of one
// database each elect their own leader for a job of the same name; the
// leader lock is scoped by the search path (it used to be one lock per
// database and job name).
func TestTryLeaderPerSchema(t *testing.T) {
	a := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	b := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	const job = "retention"
	releaseA, ok, err := a.TryLeader(t.Context(), job)
	if err != nil || !ok {
		t.Fatalf("TryLeader in schema a: got %v, %v, want leader", ok, err)
	}
	defer releaseA()
	releaseB, ok, err := b.TryLeader(t.Context(), job)
	if err != nil || !ok {
		t.Fatalf("TryLeader in schema b while schema a leads %q: got %v, %v, want leader", job, ok, err)
	}
	defer releaseB()
	if !a.Leading(t.Context(), job) || !b.Leading(t.Context(), job) {
		t.Fatalf("Leading: want both schemas leading")
	}
}

// TestAppendLockPerSchema: the audit append lock of one schema does not
// hold up appends in another schema of the same database.
func TestAppendLockPerSchema(t *testing.T) {
	a := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	b := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, QueryTimeout: 2 * time.Second})

	hold, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Update(t.Context(), func(tx custos.Tx) error {
			if _, _, err := tx.AuditHead(t.Context()); err != nil {
				return err
			}
			close(hold)
			<-release
			return nil
		})
	}()
	select {
	case <-hold:
	case err := <-done:
		t.Fatalf("holding Update: %v", err)
	}
	err := b.Update(t.Context(), func(tx custos.Tx) error {
		_, _, err := tx.AuditHead(t.Context())
		return err
	})
	close(release)
	if err != nil {
		t.Errorf("AuditHead in schema b while schema a holds its append lock: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("holding Update: %v", err)
	}
}

// TestLeadingAfterTerminate: when the leader's session is terminated (a
// killed backend, a failover), PostgreSQL frees the lock; Leading must then
// report false and release, and another node takes over.
func TestLeadingAfterTerminate(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{})
	const job = "retention"
	ctx := t.Context()

	releaseA, ok, err := a.TryLeader(ctx, job)
	if err != nil || !ok {
		t.Fatalf("a TryLeader: got %v, %v, want leader", ok, err)
	}
	defer releaseA()
	if !a.Leading(ctx, job) {
		t.Fatal("a Leading right after TryLeader: got false")
	}

	// Terminate the backend holding exactly this lock (other tests of
	// other packages may hold advisory locks in the same database). A
	// single-key advisory lock shows in pg_locks as classid = high and
	// objid = low 32 bits of the key, objsubid 1.
	var key int64
	if err := a.Pool().QueryRowContext(ctx, `SELECT hashtext(current_setting('search_path') || '|' || $1)::bigint`, job).Scan(&key); err != nil {
		t.Fatal(err)
	}
	rows, err := b.Pool().QueryContext(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid::bigint = ($1::bigint >> 32) & 4294967295 AND objid::bigint = $1::bigint & 4294967295
		  AND pid <> pg_backend_pid()`, key)
	if err != nil {
		t.Fatalf("terminate: %v", err)
	}
	var killed int
	for rows.Next() {
		var terminated bool
		if err := rows.Scan(&terminated); err != nil {
			t.Fatal(err)
		}
		if terminated {
			killed++
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		t.Fatalf("terminate: %v", err)
	}
	if killed != 1 {
		t.Fatalf("terminated %d backends holding the leader lock, want 1", killed)
	}

	if a.Leading(ctx, job) {
		t.Fatal("a Leading after its session was terminated: got true, want false")
	}
	if a.Leading(ctx, job) {
		t.Fatal("a Leading a second time: got true, want false (released)")
	}
	releaseB, ok, err := b.TryLeader(ctx, job)
	if err != nil || !ok {
		t.Fatalf("b TryLeader after a's session ended: got %v, %v, want leader", ok, err)
	}
	defer releaseB()
	if !b.Leading(ctx, job) {
		t.Fatal("b Leading: got false")
	}
	// a may try again, and loses to b.
	if _, ok, err := a.TryLeader(ctx, job); err != nil || ok {
		t.Fatalf("a TryLeader while b leads: got %v, %v, want not leader", ok, err)
	}
}

// TestUpdateRetriesDeadlock: two transactions locking two subjects in
// opposite orders deadlock; PostgreSQL aborts one, and Update runs it again
// instead of failing.
func TestUpdateRetriesDeadlock(t *testing.T) {
	url := MustCreateSchema(t)
	nodes := []*postgres.DB{
		MustOpen(t, url, postgres.Options{Migrate: true}),
		MustOpen(t, url, postgres.Options{}),
	}
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ids := []custos.SubjectID{"sub_a", "sub_b"}
	if err := nodes[0].Update(ctx, func(tx custos.Tx) error {
		for _, id := range ids {
			if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": {1}}, CreatedAt: t0, UpdatedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	var attempts atomic.Int32
	locked := []chan struct{}{make(chan struct{}), make(chan struct{})}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			first, second := ids[i], ids[1-i]
			try := 0
			errs[i] = nodes[i].Update(ctx, func(tx custos.Tx) error {
				attempts.Add(1)
				try++
				if _, err := tx.GetSubject(ctx, first); err != nil {
					return err
				}
				if try == 1 {
					// Both hold their first row before either asks for
					// its second: a deadlock.
					close(locked[i])
					select {
					case <-locked[1-i]:
					case <-time.After(10 * time.Second):
						return errors.New("the other transaction never locked its row")
					}
				}
				_, err := tx.GetSubject(ctx, second)
				return err
			})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("transaction %d: %v (want the deadlock victim run again)", i, err)
		}
	}
	// At least one of the two was a victim and ran again. A victim's
	// next run may lose the race for its first row to the survivor,
	// which PostgreSQL's row locks do not queue fairly, and deadlock
	// again; Update runs it again each time, up to maxAttempts, so more
	// than 3 attempts is correct as long as both succeed (a CI run saw 4).
	if n := attempts.Load(); n < 3 {
		t.Errorf("%d attempts, want at least 3 (a deadlock victim run again)", n)
	}
}
