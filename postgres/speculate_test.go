package postgres_test

import (
	"slices"
	"testing"

	"custos"
	"custos/postgres"
)

// appendAs runs one Update on db whose member writes meta req and appends
// an audit event for req at the end (writeAndAudit).
func appendAs(t *testing.T, db *postgres.DB, req string) {
	t.Helper()
	if err := db.Update(t.Context(), func(tx custos.Tx) error { return writeAndAudit(t, tx, req) }); err != nil {
		t.Fatalf("Update %s: %v", req, err)
	}
}

// TestSpeculativeEnds: after a node's first group end, its next ends go
// in one round trip on the head it kept (GroupStats.SpecEnds), none of
// them misses on a node alone, and the chain is one.
func TestSpeculativeEnds(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	var want []string
	for _, req := range []string{"r1", "r2", "r3", "r4", "r5", "r6"} {
		appendAs(t, db, req)
		want = append(want, req)
	}
	if st := db.GroupStats(); st.SpecEnds != 5 || st.SpecMissed != 0 {
		t.Errorf("speculative ends %d, missed %d; want 5 (every end after the first) and 0", st.SpecEnds, st.SpecMissed)
	}
	if got := checkChain(t, db); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
}

// TestSpeculativeEndMisses: two nodes append in turn, so each finds the
// head it kept moved by the other. The check fails, the end goes the
// usual way in the same transaction, keeping the member's write, and every
// append lands in one chain; after a miss the node ends the usual way for
// a while (specSkipAfterMiss).
func TestSpeculativeEndMisses(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{Migrate: true})
	order := []struct {
		db   *postgres.DB
		req  string
		spec int64 // a's speculative ends after it
	}{
		{a, "a1", 0}, // nothing kept yet
		{b, "b1", 0},
		{a, "a2", 1}, // built on a1, but b1 came after: missed
		{b, "b2", 1},
		{a, "a3", 1}, // skipping after the miss
	}
	var want []string
	for _, o := range order {
		appendAs(t, o.db, o.req)
		want = append(want, o.req)
		if st := a.GroupStats(); st.SpecEnds != o.spec || st.SpecMissed != o.spec {
			t.Errorf("after %s: node a's speculative ends %d, missed %d; want %d and %d", o.req, st.SpecEnds, st.SpecMissed, o.spec, o.spec)
		}
	}
	if st := b.GroupStats(); st.SpecEnds != 1 || st.SpecMissed != 1 {
		t.Errorf("node b's speculative ends %d, missed %d; want 1 and 1 (b2 built on b1)", st.SpecEnds, st.SpecMissed)
	}
	if got := checkChain(t, a); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	err := a.View(t.Context(), func(tx custos.Tx) error {
		for _, req := range want {
			if v, err := tx.GetMeta(t.Context(), req); err != nil || v != "done" {
				t.Errorf("member %s's write: %q, %v", req, v, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
