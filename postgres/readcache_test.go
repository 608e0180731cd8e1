package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"custos"
	"custos/postgres"
)

// TestReadCacheCheck: a read that node a answered from its read cache is
// audited only if no change committed since its rows were read (the
// check at its group's end, postgres/readcache.go), both where the group
// ends in one round trip and where it ends the usual way (a checkpoint in
// it). After node b restricts the customer, or another tool does in SQL
// (a trigger then moves the generation, migration 0013), a's audit of the
// cached read fails with custos.ErrStaleRead and commits nothing; a's
// next read reads the tables.
func TestReadCacheCheck(t *testing.T) {
	for _, c := range []struct {
		name  string
		every int64 // checkpoint interval: 1 sends every end the usual way
		other bool  // the restriction made by another tool, in SQL
	}{{"one trip", 0, false}, {"usual end", 1, false}, {"another tool", 0, true}} {
		t.Run(c.name, func(t *testing.T) {
			url := MustCreateSchema(t)
			a := MustOpen(t, url, postgres.Options{Migrate: true})
			b := MustOpen(t, url, postgres.Options{Migrate: true})
			sqlDB, err := sql.Open("pgx", url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sqlDB.Close() })
			gen := func() (g int64) {
				t.Helper()
				if err := sqlDB.QueryRowContext(t.Context(), `SELECT gen FROM cache_gen`).Scan(&g); err != nil {
					t.Fatalf("read cache_gen: %v", err)
				}
				return g
			}
			const id = custos.SubjectID("sub_1")
			insertSubjects(t, a, id)
			// glance reads id on a under a new proof and returns it, and
			// the restriction the read saw.
			glance := func(what string) (*custos.ReadProof, context.Context, time.Time) {
				t.Helper()
				ctx, p := custos.WithReadProof(t.Context())
				var until time.Time
				err := a.Glance(ctx, func(tx custos.Tx) error {
					st, err := tx.GetSubject(ctx, id)
					if err == nil {
						until = st.RestrictedUntil
					}
					return err
				})
				if err != nil {
					t.Fatalf("%s: Glance: %v", what, err)
				}
				return p, ctx, until
			}
			audit := func(ctx context.Context, req string) error {
				return a.Update(ctx, func(tx custos.Tx) error {
					if c.every > 0 {
						tx.(interface{ NoteCheckpointEvery(int64) }).NoteCheckpointEvery(c.every)
					}
					appendSignedAtEnd(t, tx, req, c.every)
					return nil
				})
			}
			if p, ctx, _ := glance("first read"); p.Gen != 0 {
				t.Fatalf("first read: answered from the cache (gen %d)", p.Gen)
			} else if err := audit(ctx, "r1"); err != nil {
				t.Fatalf("first read's audit: %v", err)
			}
			p, ctx, _ := glance("second read")
			if p.Gen == 0 {
				t.Fatalf("second read: not answered from the cache")
			}
			if err := audit(ctx, "r2"); err != nil {
				t.Fatalf("second read's audit: %v", err)
			}

			p, ctx, _ = glance("third read")
			if p.Gen == 0 {
				t.Fatalf("third read: not answered from the cache")
			}
			until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			g0 := gen()
			if c.other {
				// Not custos: a trigger moves the generation.
				if _, err := sqlDB.ExecContext(t.Context(), `UPDATE subjects SET restricted_until = $1 WHERE id = $2`, until.UnixMicro(), string(id)); err != nil {
					t.Fatalf("restriction in SQL: %v", err)
				}
			} else if err := b.Update(t.Context(), func(tx custos.Tx) error { return tx.RestrictSubject(t.Context(), id, until) }); err != nil {
				t.Fatalf("restriction on b: %v", err)
			}
			// Once, by custos at its end or by the trigger: custos's own
			// transactions are marked, so its triggers leave them alone.
			if g := gen(); g != g0+1 {
				t.Fatalf("the restriction moved the generation from %d to %d, want one step", g0, g)
			}
			if err := audit(ctx, "r3"); !errors.Is(err, custos.ErrStaleRead) {
				t.Fatalf("audit of a cached read after b's restriction: got %v, want ErrStaleRead", err)
			}
			if st := a.ReadCacheStats(); st.Stale != 1 {
				t.Errorf("stale answers counted: %d, want 1", st.Stale)
			}
			p, ctx, got := glance("read after the restriction")
			if p.Gen != 0 || !got.Equal(until) {
				t.Fatalf("read after b's restriction: gen %d, restricted until %v; want the tables' row, restricted until %v", p.Gen, got, until)
			}
			if err := audit(ctx, "r4"); err != nil {
				t.Fatalf("audit of the read from the tables: %v", err)
			}
			if reqs := checkChain(t, a); !slices.Equal(reqs, []string{"r1", "r2", "r4"}) {
				t.Errorf("chain %v, want [r1 r2 r4]: nothing of the stale read", reqs)
			}
			if st := a.GroupStats(); c.every > 0 && st.OneTrip != 0 {
				t.Errorf("%d ends in one round trip, want every end the usual way", st.OneTrip)
			}
		})
	}
}
