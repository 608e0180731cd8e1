package core_test

import (
	"fmt"
	"testing"
	"time"

	"custos"
	"custos/postgres"
)

// waitKeysFilled waits until node n's key fill has put at least want keys
// in its read cache (postgres/keyfill.go), and fails the test if it does
// not within 10 s.
func waitKeysFilled(t *testing.T, n pgNode, want int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		got := n.db.GroupStats().CacheKeysFilled
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("keys filled: %d after 10 s, want at least %d", got, want)
		}
	}
}

// TestPostgresKeyFill: a customer a read by id put in a node's read cache
// is then looked up, by any of their blind-indexed fields, from the cache,
// without a statement; a change made on another node after the keys were
// loaded is seen by the next lookup, by the old value and the new
// (postgres/keyfill.go).
func TestPostgresKeyFill(t *testing.T) {
	a, b, admin := newPGNodes(t) // b reads; a makes the change
	account := []string{"account"}
	email := func(i int) string { return fmt.Sprintf("fill%d@example.com", i) }
	ids := make([]custos.SubjectID, 3)
	for i := range ids {
		ids[i] = pgCreate(t, a, admin, map[string]string{"name": "王小明", "mobile": pgMobile(8, i), "email": email(i)})
	}
	for _, id := range ids {
		if _, err := b.svc.FindSubjectByID(admin, account, id); err != nil {
			t.Fatalf("read on b: %v", err)
		}
	}
	waitKeysFilled(t, b, int64(2*len(ids))) // a mobile and an e-mail each

	before, stmts := b.db.ReadCacheStats(), b.db.GroupStats().ReadStatements
	for i, id := range ids {
		for field, value := range map[string]string{"mobile": pgMobile(8, i), "email": email(i)} {
			if s, err := b.svc.FindSubjectByLookup(admin, account, field, value); err != nil || s.ID != id {
				t.Fatalf("lookup by %s on b: %v, want customer %d", field, err, i)
			}
		}
	}
	after := b.db.ReadCacheStats()
	if hits := after.Hits - before.Hits; hits != int64(2*len(ids)) || after.Misses != before.Misses {
		t.Fatalf("b's lookups of customers it had read by id: %d hits, %d misses; want %d hits and no miss",
			hits, after.Misses-before.Misses, 2*len(ids))
	}
	if got := b.db.GroupStats().ReadStatements; got != stmts {
		t.Fatalf("read statements %d → %d, want none", stmts, got)
	}

	// a changes customer 1's mobile: b's loaded key for the old mobile
	// must not answer, and the new one is found.
	const newMobile = "13988888888"
	if err := pgCorrect(a, admin, ids[1], "mobile", newMobile); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.FindSubjectByLookup(admin, account, "mobile", pgMobile(8, 1)); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("lookup on b by the mobile a corrected away: %v, want ENOTFOUND", err)
	}
	if s, err := b.svc.FindSubjectByLookup(admin, account, "mobile", newMobile); err != nil || s.ID != ids[1] {
		t.Fatalf("lookup on b by the new mobile: %v", err)
	}
}

// TestPostgresKeyFillOff: with the read cache off nothing is filled and
// lookups still answer.
func TestPostgresKeyFillOff(t *testing.T) {
	a, b, admin := newPGNodesWith(t, postgres.Options{Migrate: true, ReadCache: -1})
	id := pgCreate(t, a, admin, map[string]string{"name": "王小明", "mobile": pgMobile(9, 0)})
	if _, err := b.svc.FindSubjectByID(admin, []string{"account"}, id); err != nil {
		t.Fatal(err)
	}
	if s, err := b.svc.FindSubjectByLookup(admin, []string{"account"}, "mobile", pgMobile(9, 0)); err != nil || s.ID != id {
		t.Fatalf("lookup with the cache off: %v", err)
	}
	if got := b.db.GroupStats().CacheKeysFilled; got != 0 {
		t.Fatalf("keys filled with the cache off: %d, want 0", got)
	}
}
