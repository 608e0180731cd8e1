package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/postgres"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestReadCacheCheck: a read that node a answered from its read cache is
// audited only if no change committed since its rows were read (the
// check at its group's end, postgres/readcache.go), both where the group
// ends in one round trip and where it ends the usual way (a checkpoint in
// it). After node b restricts the customer (which moves the generation of
// the customer's slot, migration 0014), or another tool does in SQL (a
// trigger then moves the whole database's, migration 0013), a's audit of
// the cached read fails with custos.ErrStaleRead and commits nothing; a's
// next read reads the tables. A restriction of a customer in another slot
// leaves the cached read good.
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
			const id = custos.SubjectID("sub_1")
			// gens reads the whole database's generation and id's slot's.
			gens := func() (all, slot int64) {
				t.Helper()
				if err := sqlDB.QueryRowContext(t.Context(), `SELECT (SELECT gen FROM cache_gen),
					COALESCE((SELECT gen FROM cache_slots WHERE slot = cache_slot($1)), 0)`, string(id)).Scan(&all, &slot); err != nil {
					t.Fatalf("read the generations: %v", err)
				}
				return all, slot
			}
			other := otherSlot(t, sqlDB, id)
			insertSubjects(t, a, id, other)
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

			until := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
			if !c.other {
				// Another customer, of another slot: a's entry stays good.
				p, ctx, _ = glance("read before the other's restriction")
				if err := b.Update(t.Context(), func(tx custos.Tx) error { return tx.RestrictSubject(t.Context(), other, until) }); err != nil {
					t.Fatalf("restriction of another customer on b: %v", err)
				}
				if err := audit(ctx, "r2b"); p.Gen == 0 || err != nil {
					t.Fatalf("read answered from the cache (gen %d) before another customer's restriction: audit %v, want it committed", p.Gen, err)
				}
			}

			p, ctx, _ = glance("third read")
			if p.Gen == 0 {
				t.Fatalf("third read: not answered from the cache")
			}
			all0, slot0 := gens()
			if c.other {
				// Not custos: a trigger moves the generation.
				if _, err := sqlDB.ExecContext(t.Context(), `UPDATE subjects SET restricted_until = $1 WHERE id = $2`, until.UnixMicro(), string(id)); err != nil {
					t.Fatalf("restriction in SQL: %v", err)
				}
			} else if err := b.Update(t.Context(), func(tx custos.Tx) error { return tx.RestrictSubject(t.Context(), id, until) }); err != nil {
				t.Fatalf("restriction on b: %v", err)
			}
			// Once, by custos at its end (the customer's slot) or by the
			// trigger (the whole database's): custos's own transactions
			// are marked, so its triggers leave them alone.
			all1, slot1 := gens()
			want, moved := [2]int64{all0, slot0 + 1}, "the slot's"
			if c.other {
				want, moved = [2]int64{all0 + 1, slot0}, "the whole database's"
			}
			if got := [2]int64{all1, slot1}; got != want {
				t.Fatalf("the restriction moved the generations (whole, slot) from %d, %d to %v; want one step of %s", all0, slot0, got, moved)
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
			chain := []string{"r1", "r2", "r2b", "r4"}
			if c.other {
				chain = slices.Delete(chain, 2, 3)
			}
			if reqs := checkChain(t, a); !slices.Equal(reqs, chain) {
				t.Errorf("chain %v, want %v: nothing of the stale read", reqs, chain)
			}
			if st := a.GroupStats(); c.every > 0 && st.OneTrip != 0 {
				t.Errorf("%d ends in one round trip, want every end the usual way", st.OneTrip)
			}
		})
	}
}

// otherSlot returns an id whose read cache slot is not id's (cache_slot,
// migration 0014).
func otherSlot(t *testing.T, db *sql.DB, id custos.SubjectID) custos.SubjectID {
	t.Helper()
	for i := 2; ; i++ {
		other := custos.SubjectID(fmt.Sprintf("sub_%d", i))
		var same bool
		if err := db.QueryRowContext(t.Context(), `SELECT cache_slot($1) = cache_slot($2)`, string(id), string(other)).Scan(&same); err != nil {
			t.Fatalf("cache_slot: %v", err)
		}
		if !same {
			return other
		}
	}
}

// TestCacheSlot: the node computes a customer's read cache slot as the
// database does (cache_slot, migration 0014): a node that computed
// another would move one slot on a change and check another on a read.
func TestCacheSlot(t *testing.T) {
	url := MustCreateSchema(t)
	MustOpen(t, url, postgres.Options{Migrate: true})
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ids := []string{"", "sub_1", "sub_0123456789abcdefghijklmnopqrstuvwxyz", "客户-甲", "a'b\"c\\d", strings.Repeat("x", 300)}
	for i := range 500 {
		ids = append(ids, fmt.Sprintf("sub_%x", i*7919))
	}
	seen := map[int]bool{}
	for _, id := range ids {
		var want int
		if err := db.QueryRowContext(t.Context(), `SELECT cache_slot($1)`, id).Scan(&want); err != nil {
			t.Fatal(err)
		}
		if got := postgres.CacheSlot(custos.SubjectID(id)); got != want {
			t.Errorf("slot of %q: %d in Go, %d in the database", id, got, want)
		}
		seen[want] = true
	}
	if len(seen) < len(ids)*9/10 {
		t.Errorf("%d ids in %d slots: not spread", len(ids), len(seen))
	}
}

// TestOlderNodeCheck: once migration 0014 has run, the check of a node of
// the version before (cache_gen_check over cache_gen alone, which a newer
// node's change to a customer no longer moves) always fails, naming a
// generation past cache_gen's, so that such a node, during a rolling
// upgrade, answers nothing from its cache.
func TestOlderNodeCheck(t *testing.T) {
	url := MustCreateSchema(t)
	MustOpen(t, url, postgres.Options{Migrate: true})
	db, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var g int64
	if err := db.QueryRowContext(t.Context(), `SELECT gen FROM cache_gen`).Scan(&g); err != nil {
		t.Fatal(err)
	}
	_, err = db.ExecContext(t.Context(), fmt.Sprintf(`SELECT cache_gen_check('{%d}'::bigint[])`, g))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "CU001" || pe.Detail != fmt.Sprint(g+1) {
		t.Fatalf("an older node's check at the current generation %d: %v, want SQLSTATE CU001 naming %d", g, err, g+1)
	}
}
