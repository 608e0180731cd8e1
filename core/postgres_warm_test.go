package core_test

import (
	"testing"

	"custos"
	"custos/internal/sqlutil"
	"custos/postgres"
)

// TestPostgresWarmReadCache: a PostgreSQL node started after others have
// served reads warms its read cache from the audit log's latest granted
// reads and lookups (postgres/warm.go): the customers read, and the
// blind-index keys of those looked up, so that its first reads of them
// are answered from the cache, with no statement; an erased customer is
// counted gone; a customer nobody read is not loaded; a correction made
// after the warm-up is shown, never the warmed rows.
func TestPostgresWarmReadCache(t *testing.T) {
	a, b, admin := newPGNodes(t) // b: the node started later, its cache empty
	account := []string{"account"}
	ids := make([]custos.SubjectID, 6)
	for i := range ids {
		ids[i] = pgCreate(t, a, admin, map[string]string{"name": "王小明", "mobile": pgMobile(7, i)})
	}
	// On a: ids 0–3 read by id, 3 and 4 looked up by mobile, 5 neither
	// (its read refused).
	for _, id := range ids[:4] {
		if _, err := a.svc.FindSubjectByID(admin, account, id); err != nil {
			t.Fatalf("read on a: %v", err)
		}
	}
	for _, i := range []int{3, 4} {
		if _, err := a.svc.FindSubjectByLookup(admin, account, "mobile", pgMobile(7, i)); err != nil {
			t.Fatalf("lookup on a: %v", err)
		}
	}
	// A refused read of id 5 leaves an event of its own, which lists
	// nobody.
	nobody := custos.NewContextWithActor(t.Context(), &custos.Principal{ID: "prn_nobody"})
	if _, err := a.svc.FindSubjectByID(nobody, account, ids[5]); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Fatalf("read on a by a principal without a role: %v, want EFORBIDDEN", err)
	}
	if _, err := a.svc.EraseSubject(admin, []string{"customer-service"}, ids[0], "customer request"); err != nil {
		t.Fatalf("erase on a: %v", err)
	}

	var calls int
	var last sqlutil.WarmStats
	st, err := b.db.WarmReadCache(t.Context(), func(s sqlutil.WarmStats) { calls, last = calls+1, s })
	if err != nil {
		t.Fatalf("WarmReadCache: %v", err)
	}
	if st.Listed != 5 || st.Loaded != 4 || st.Gone != 1 || st.Cached != 0 || st.Skipped != 0 {
		t.Fatalf("warm-up: listed %d, loaded %d, gone %d, cached %d, no room %d; want 5 listed (ids 0–4), 4 loaded, 1 gone (erased)",
			st.Listed, st.Loaded, st.Gone, st.Cached, st.Skipped)
	}
	if st.Keys != 4 {
		t.Fatalf("warm-up: %d lookup keys, want the mobiles of the 4 customers loaded, read by id or looked up", st.Keys)
	}
	if calls == 0 || last.Loaded != st.Loaded || last.Keys != st.Keys {
		t.Fatalf("progress: %d calls, last %+v; want the final figures %+v", calls, last, st)
	}
	if got := b.db.ReadCacheStats(); got.Hits != 0 || got.Misses != 0 || got.Entries != 4 {
		t.Fatalf("after the warm-up: %+v; want 4 entries and no hit or miss counted", got)
	}
	if got := b.db.GroupStats().CacheWarmed; got != 4 {
		t.Fatalf("warmed counter (custos_pg_read_cache_warmed_total): %d, want 4", got)
	}

	// b's first reads of the warmed customers: all from the cache.
	stmts := b.db.GroupStats().ReadStatements
	for _, id := range ids[1:5] {
		if s, err := b.svc.FindSubjectByID(admin, account, id); err != nil || s.Fields["name"] != "王小明" {
			t.Fatalf("read on b: %v", err)
		}
	}
	for i := 1; i <= 4; i++ { // 1 and 2 only read by id on a
		if s, err := b.svc.FindSubjectByLookup(admin, account, "mobile", pgMobile(7, i)); err != nil || s.ID != ids[i] {
			t.Fatalf("lookup on b: %v", err)
		}
	}
	if got := b.db.ReadCacheStats(); got.Hits != 8 || got.Misses != 0 {
		t.Fatalf("b's first 4 reads and 4 lookups of warmed customers: %+v, want 8 hits and no miss", got)
	}
	if got := b.db.GroupStats().ReadStatements; got != stmts {
		t.Fatalf("read statements %d → %d, want none", stmts, got)
	}
	// Not read on a: not warmed, a miss.
	if _, err := b.svc.FindSubjectByID(admin, account, ids[5]); err != nil {
		t.Fatal(err)
	}
	if got := b.db.ReadCacheStats(); got.Misses != 1 {
		t.Fatalf("read of a customer nobody had read: misses %d, want 1", got.Misses)
	}

	// A second warm-up loads nothing new: b's own reads are in the log
	// now (id 5 too), and all are cached.
	st, err = b.db.WarmReadCache(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Listed != 6 || st.Cached != 5 || st.Gone != 1 || st.Loaded != 0 {
		t.Fatalf("second warm-up: %+v; want 6 listed, 5 already cached, 1 gone", st)
	}

	// a corrects a warmed customer: b shows the correction.
	if err := pgCorrect(a, admin, ids[2], "name", "王大明"); err != nil {
		t.Fatal(err)
	}
	if s, err := b.svc.FindSubjectByID(admin, account, ids[2]); err != nil || s.Fields["name"] != "王大明" {
		t.Fatalf("read on b after a's correction: %v, name %q; want the correction, not the warmed rows", err, s.Fields["name"])
	}
}

// TestPostgresWarmListNewestFirst: the warm-up lists at most as many
// customers as the cache holds, the most recently read first: with a
// cache of 160 and 200 customers read one after another, the 40 read
// first are not loaded.
func TestPostgresWarmListNewestFirst(t *testing.T) {
	const size, read = 160, 200
	a, b, admin := newPGNodesWith(t, postgres.Options{Migrate: true, ReadCache: size})
	account := []string{"account"}
	ids := make([]custos.SubjectID, read)
	for i := range ids {
		ids[i] = pgCreate(t, a, admin, map[string]string{"name": "王小明"})
		if _, err := a.svc.FindSubjectByID(admin, account, ids[i]); err != nil {
			t.Fatalf("read on a: %v", err)
		}
	}
	st, err := b.db.WarmReadCache(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// A shard holds size/16 entries, and the ids hash to shards unevenly:
	// some of the listed find no room.
	if st.Listed != size || st.Loaded+st.Skipped != size || st.Loaded < size/2 {
		t.Fatalf("warm-up: %+v; want %d listed, each loaded or without room, most loaded", st, size)
	}
	hits := func(l []custos.SubjectID) int64 {
		t.Helper()
		before := b.db.ReadCacheStats().Hits
		for _, id := range l {
			if _, err := b.svc.FindSubjectByID(admin, account, id); err != nil {
				t.Fatalf("read on b: %v", err)
			}
		}
		return b.db.ReadCacheStats().Hits - before
	}
	if got := b.db.ReadCacheStats().Entries; got != st.Loaded {
		t.Fatalf("entries after the warm-up: %d, want the %d loaded", got, st.Loaded)
	}
	// The 40 read first were not listed: none is a hit. (Read first,
	// before their misses' fills evict anything.)
	if got := hits(ids[:read-size]); got != 0 {
		t.Fatalf("reads of the %d read first: %d hits, want none (not listed)", read-size, got)
	}
}
