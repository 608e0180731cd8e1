package core_test

// The PostgreSQL read cache across nodes (postgres/readcache.go): a node
// answers reads by id and lookups from its cache, and the group that
// commits a read's audit event checks that no change committed since the
// cached rows were read. Node b changes what node a has cached; a's next
// read must show the change, never the cached rows, and leave one audit
// event, not two.

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"custos"
)

// pgCorrect corrects one field of the customer id on node n.
func pgCorrect(n pgNode, admin context.Context, id custos.SubjectID, field, value string) error {
	_, err := n.svc.UpdateSubject(admin, []string{"account"}, id, custos.SubjectUpdate{Fields: map[string]*string{field: &value}, Provenance: prov})
	return err
}

func TestPostgresReadCacheAcrossNodes(t *testing.T) {
	a, b, admin := newPGNodes(t)
	publishPersonalisation(t, a.svc, admin)
	const mobile, newMobile = "13900000001", "13900000002"
	id := pgCreate(t, a, admin, map[string]string{"name": "王小明", "mobile": mobile, "gender": "female"})
	consentPersonalisation(t, a.svc, admin, id)
	account := []string{"account"}
	reads, lookups := 0, 0 // granted reads and lookups of id, each audited once
	read := func(what string) *custos.Subject {
		t.Helper()
		s, err := a.svc.FindSubjectByID(admin, account, id)
		if err != nil {
			t.Fatalf("%s: read on a: %v", what, err)
		}
		reads++
		return s
	}
	lookup := func(what, m string) (*custos.Subject, error) {
		t.Helper()
		s, err := a.svc.FindSubjectByLookup(admin, account, "mobile", m)
		if err == nil {
			lookups++
		}
		return s, err
	}
	stats := a.db.ReadCacheStats

	// A first read fills the cache; the second is answered from it, with
	// no read statement.
	read("first read")
	before, statements := stats(), a.db.GroupStats().ReadStatements
	if s := read("second read"); s.Fields["name"] != "王小明" {
		t.Fatalf("second read: name %q", s.Fields["name"])
	}
	if got := stats(); got.Hits != before.Hits+1 {
		t.Fatalf("second read: cache hits %d → %d, want one more", before.Hits, got.Hits)
	}
	if got := a.db.GroupStats().ReadStatements; got != statements {
		t.Fatalf("second read: read statements %d → %d, want none sent", statements, got)
	}
	if _, err := lookup("lookup", mobile); err != nil {
		t.Fatalf("lookup: %v", err)
	}
	before = stats()
	if s, err := lookup("lookup again", mobile); err != nil || s.ID != id {
		t.Fatalf("lookup again: %v", err)
	}
	if got := stats(); got.Hits != before.Hits+1 {
		t.Fatalf("lookup again: cache hits %d → %d, want one more", before.Hits, got.Hits)
	}

	// b corrects the name: a's cached rows are stale, and its read shows
	// the correction.
	const name = "王大明"
	if err := pgCorrect(b, admin, id, "name", name); err != nil {
		t.Fatalf("correction on b: %v", err)
	}
	before = stats()
	if s := read("read after b's correction"); s.Fields["name"] != name {
		t.Fatalf("read on a after b's correction: name %q, want %q (a stale cached row)", s.Fields["name"], name)
	}
	if got := stats(); got.Stale != before.Stale+1 {
		t.Fatalf("read after b's correction: stale %d → %d, want the cached answer refused once", before.Stale, got.Stale)
	}
	// Filled again at the new generation: a hit.
	before = stats()
	read("read again")
	if got := stats(); got.Hits != before.Hits+1 || got.Stale != before.Stale {
		t.Fatalf("read again: hits %d → %d, stale %d → %d; want a hit", before.Hits, got.Hits, before.Stale, got.Stale)
	}

	// b creates another customer: nothing a caches changed, and a's next
	// read is still a hit (creates must not move the generation, or
	// reads beside creates would find the cache useless).
	pgCreate(t, b, admin, map[string]string{"name": "李四", "mobile": "13900000009"})
	before = stats()
	read("read after b's create")
	if got := stats(); got.Hits != before.Hits+1 || got.Stale != before.Stale {
		t.Fatalf("read after b's create: hits %d → %d, stale %d → %d; want a hit", before.Hits, got.Hits, before.Stale, got.Stale)
	}

	// a's own correction: a knows its cached rows are stale, and its next
	// read goes to the tables at once, with no cached answer refused.
	const own = "王中明"
	if err := pgCorrect(a, admin, id, "name", own); err != nil {
		t.Fatalf("correction on a: %v", err)
	}
	before = stats()
	if s := read("read after a's own correction"); s.Fields["name"] != own {
		t.Fatalf("read on a after its own correction: name %q, want %q", s.Fields["name"], own)
	}
	if got := stats(); got.Hits != before.Hits || got.Stale != before.Stale {
		t.Fatalf("read after a's own correction: hits %d → %d, stale %d → %d; want a miss", before.Hits, got.Hits, before.Stale, got.Stale)
	}

	// b changes the mobile: the old number leads nowhere on a.
	if err := pgCorrect(b, admin, id, "mobile", newMobile); err != nil {
		t.Fatalf("mobile correction on b: %v", err)
	}
	if _, err := lookup("lookup by the old mobile", mobile); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("lookup on a by the old mobile after b changed it: got %v, want ENOTFOUND", err)
	}
	if s, err := lookup("lookup by the new mobile", newMobile); err != nil || s.ID != id {
		t.Fatalf("lookup on a by the new mobile: %v", err)
	}

	// b records the withdrawal of consent: a's read for personalisation,
	// allowed from the cache before, is refused.
	perso := []string{"personalisation"}
	if _, err := a.svc.FindSubjectByID(admin, perso, id); err != nil {
		t.Fatalf("read for personalisation: %v", err)
	}
	if _, err := a.svc.FindSubjectByID(admin, perso, id); err != nil {
		t.Fatalf("read for personalisation again: %v", err)
	}
	reads += 2
	if _, err := b.svc.WithdrawConsent(admin, id, "personalisation", "", "app"); err != nil {
		t.Fatalf("withdraw on b: %v", err)
	}
	if s, err := a.svc.FindSubjectByID(admin, perso, id); err == nil {
		if s.Fields["gender"] != "" {
			t.Fatalf("read on a for personalisation after b recorded the withdrawal: gender shown from the cache")
		}
		reads++
	}

	// b erases the customer: a finds nothing, by id or by lookup.
	read("read before erasure")
	if _, err := b.svc.EraseSubject(admin, []string{"customer-service"}, id, "customer request"); err != nil {
		t.Fatalf("erase on b: %v", err)
	}
	if _, err := a.svc.FindSubjectByID(admin, account, id); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("read on a after b's erasure: got %v, want ENOTFOUND", err)
	}
	if _, err := lookup("lookup after erasure", newMobile); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("lookup on a after b's erasure: got %v, want ENOTFOUND", err)
	}

	// Every granted read and lookup left one audit event; the refused
	// cached answers none.
	events, err := a.svc.FindAuditEvents(admin, custos.AuditFilter{SubjectID: &id})
	if err != nil {
		t.Fatal(err)
	}
	granted := map[string]int{}
	for _, e := range events {
		if e.Decision == custos.DecisionAllow {
			granted[e.Action]++
		}
	}
	if granted[custos.AuditSubjectRead] != reads || granted[custos.AuditSubjectLookup] != lookups {
		t.Fatalf("granted read and lookup events of the customer: %d and %d, want %d and %d (one per request)",
			granted[custos.AuditSubjectRead], granted[custos.AuditSubjectLookup], reads, lookups)
	}
}

// TestPostgresReadCacheRace: node b corrects a customer's e-mail again
// and again while readers on node a read it, and, in the second run,
// while a warms its cache from the audit log again and again, and, in the
// third, while lookups by e-mail on a find keys that a's reads by id
// loaded. A read that starts after a correction has been answered must
// show that correction or a later one, never the cached rows from before
// it; a lookup begun then by the e-mail that correction replaced must find
// nobody.
func TestPostgresReadCacheRace(t *testing.T) {
	t.Run("reads", func(t *testing.T) { readCacheRace(t, false, false) })
	// The warm-up (postgres/warm.go) puts entries beside the reads: it
	// must never put rows older than a correction answered.
	t.Run("reads and warm-ups", func(t *testing.T) { readCacheRace(t, true, false) })
	// The key fill (postgres/keyfill.go) loads the keys of customers the
	// reads put in the cache: a key loaded before a correction must not
	// answer a lookup begun after it.
	t.Run("reads and lookups", func(t *testing.T) { readCacheRace(t, false, true) })
}

func readCacheRace(t *testing.T, warm, lookups bool) {
	a, b, admin := newPGNodes(t)
	id := pgCreate(t, a, admin, map[string]string{"name": "王小明", "email": "c0@example.com"})
	account := []string{"account"}
	const corrections, readers = 40, 4
	var done atomic.Int64 // the last correction answered
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, readers+2)
	// loop runs step in a goroutine of its own until stop is closed or
	// step fails, its error going to errs.
	loop := func(step func() error) {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := step(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range readers {
		loop(func() error {
			least := done.Load()
			s, err := a.svc.FindSubjectByID(admin, account, id)
			if err != nil {
				return fmt.Errorf("read: %v", err)
			}
			var n int64
			if _, err := fmt.Sscanf(s.Fields["email"], "c%d@example.com", &n); err != nil {
				return fmt.Errorf("read: e-mail %q", s.Fields["email"])
			}
			if n < least {
				return fmt.Errorf("read begun after correction %d answered showed correction %d", least, n)
			}
			return nil
		})
	}
	if warm {
		loop(func() error {
			if _, err := a.db.WarmReadCache(t.Context(), nil); err != nil {
				return fmt.Errorf("warm-up: %v", err)
			}
			return nil
		})
	}
	if lookups {
		loop(func() error {
			least := done.Load()
			if least == 0 {
				return nil
			}
			_, err := a.svc.FindSubjectByLookup(admin, account, "email", fmt.Sprintf("c%d@example.com", least-1))
			if custos.ErrorCode(err) != custos.ENOTFOUND {
				return fmt.Errorf("lookup begun after correction %d answered, by the e-mail it replaced: %v, want ENOTFOUND", least, err)
			}
			return nil
		})
	}
	// With the warm-ups, the corrections go on until one of them has put
	// an entry (a window after a read learned of a correction and before
	// it filled the cache again): on a slow host, or under the race
	// detector, 40 may pass without. With the lookups, until the key fill
	// has put a key.
	more := func(i int64) bool {
		if i <= corrections {
			return true
		}
		st := a.db.GroupStats()
		return i <= 50*corrections && (warm && st.CacheWarmed == 0 || lookups && st.CacheKeysFilled == 0)
	}
	for i := int64(1); more(i); i++ {
		if err := pgCorrect(b, admin, id, "email", fmt.Sprintf("c%d@example.com", i)); err != nil {
			errs <- fmt.Errorf("correction %d: %v", i, err)
			break
		}
		done.Store(i)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := a.db.ReadCacheStats()
	t.Logf("read cache on a: %d hits, %d misses, %d stale, %d warmed, %d keys filled", st.Hits, st.Misses, st.Stale, a.db.GroupStats().CacheWarmed, a.db.GroupStats().CacheKeysFilled)
	if st.Hits == 0 {
		t.Errorf("no read was answered from the cache: the race tested nothing")
	}
	if warm && a.db.GroupStats().CacheWarmed == 0 {
		t.Errorf("the warm-ups put nothing in the cache: the race tested the reads alone")
	}
	if lookups && a.db.GroupStats().CacheKeysFilled == 0 {
		t.Errorf("the key fill put no key in the cache: the lookups found none of its keys")
	}
}
