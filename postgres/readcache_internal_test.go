package postgres

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"custos"
	"custos/internal/cacheblob"
	"custos/internal/sqlutil"
)

// TestChangesCached: the statements that may change a row a read cache
// holds move the cache generation on (readcache.go); inserts of a new
// customer's rows, reads and audit appends do not.
func TestChangesCached(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`UPDATE subjects SET sealed = $1, updated_at = $2 WHERE id = $3`, true},
		{`DELETE FROM data_keys WHERE subject_id = $1`, true},
		{`DELETE FROM lookups WHERE subject_id = $1 AND field = $2`, true},
		{eraseRowsSQL, true}, // deletes inside WITH
		{sqlutil.InsertConsentSQL, true},
		{sqlutil.DeleteConsentSQL, true},
		{`update  "subjects" set restricted_until = $1 where id = $2`, true},
		{`TRUNCATE lookups`, true},
		{`INSERT INTO lookups (field, hash, subject_id) VALUES ($1, $2, $3) ON CONFLICT (field, hash) DO UPDATE SET subject_id = excluded.subject_id`, true},
		{newSubjectSQL(" ON CONFLICT DO NOTHING"), false},
		{insertNewSubjectStrict, false},
		{`INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, false},
		{lockSubjectSQL, false}, // SELECT … FOR UPDATE
		{serverChainSQL, false},
		{`UPDATE subject_lifecycle SET at = $1 WHERE subject_id = $2`, false},
		{`DELETE FROM records WHERE subject_id = $1`, false},
		{bumpGenSQL, false},
	} {
		if got := changesCached(c.query); got != c.want {
			t.Errorf("changesCached(%.80q) = %v, want %v", c.query, got, c.want)
		}
	}
}

// TestReadCacheEntries: the cache answers only with entries of the
// generation the node knows, never caches generation 0, hands out and
// keeps copies, and stays within its size.
func TestReadCacheEntries(t *testing.T) {
	c := newReadCache(32) // 2 a shard
	read := func(id string) *sqlutil.SubjectRead {
		return &sqlutil.SubjectRead{
			Subject: &custos.StoredSubject{ID: custos.SubjectID(id), Sealed: map[string][]byte{"name": {1, 2, 3}}},
			Key:     &custos.DataKey{SubjectID: custos.SubjectID(id), Version: 1, Wrapped: []byte{9}},
			Consents: []*custos.StoredConsent{{Seq: 1, SubjectID: custos.SubjectID(id), Purpose: "marketing", Sealed: []byte{7}},
				{Seq: 2, SubjectID: custos.SubjectID(id), Purpose: "analytics", Action: custos.ConsentGranted}},
		}
	}
	hash := []byte{0xab}
	if c.put(read("sub_a"), 0, "mobile", hash); c.known.Load() != 0 {
		t.Fatalf("generation 0 taken as known")
	}
	if _, _, ok := c.byID("sub_a"); ok {
		t.Fatalf("an entry of generation 0 answered")
	}
	orig := read("sub_a")
	c.put(orig, 5, "mobile", hash)
	orig.Subject.Sealed["name"][0] = 0 // the caller's copy, changed after
	got, gen, ok := c.byID("sub_a")
	if !ok || gen != 5 || got.Subject.Sealed["name"][0] != 1 {
		t.Fatalf("byID after put at 5: ok %v, gen %d, name %v; want the entry as put, of generation 5", ok, gen, got.Subject.Sealed["name"])
	}
	// The consents come decoded on demand, only those of the purposes
	// asked for (sixty-fourth session), in recorded order.
	all := []string{"analytics", "marketing"}
	if want := read("sub_a"); got.Consents != nil || got.ConsentsOf == nil ||
		!reflect.DeepEqual(got.Subject, want.Subject) || !reflect.DeepEqual(got.Key, want.Key) ||
		!reflect.DeepEqual(got.ConsentsOf(all), want.Consents) || !reflect.DeepEqual(got.ConsentsOf([]string{"analytics"}), want.Consents[1:]) {
		t.Fatalf("byID after put: got %+v, %+v, consents %v now and %+v on demand; want the read as put, %+v, %+v, none now and %+v on demand",
			got.Subject, got.Key, got.Consents, got.ConsentsOf(all), want.Subject, want.Key, want.Consents)
	}
	consents := got.ConsentsOf(all)
	got.Subject.Sealed["name"][0], got.Key.Wrapped[0], consents[0].Sealed[0] = 0, 0, 0
	if again, _, _ := c.byID("sub_a"); again.Subject.Sealed["name"][0] != 1 || again.Key.Wrapped[0] != 9 || again.ConsentsOf(all)[0].Sealed[0] != 7 {
		t.Fatalf("a copy handed out, changed, changed the cache")
	}
	if got.ConsentsOf(all)[0].Sealed[0] != 7 {
		t.Fatalf("a consent handed out, changed, changed what the next ask of the same read gets")
	}
	if r, gen, ok := c.byKey("mobile", hash); !ok || gen != 5 || r.Subject.ID != "sub_a" {
		t.Fatalf("byKey: ok %v, gen %d", ok, gen)
	}
	if c.put(read("sub_b"), 4, "", nil); c.known.Load() != 5 {
		t.Fatalf("an older generation's read moved the known one to %d", c.known.Load())
	}
	if _, _, ok := c.byID("sub_b"); ok {
		t.Fatalf("an entry older than the known generation answered")
	}
	c.learn(6)
	if _, _, ok := c.byID("sub_a"); ok {
		t.Fatalf("an entry of generation 5 answered after 6 was learned")
	}
	if _, _, ok := c.byKey("mobile", hash); ok {
		t.Fatalf("a key of generation 5 answered after 6 was learned")
	}
	// An owner filled at a later generation than its key does not vouch
	// for the key, whatever the node knows when it looks.
	c.put(read("sub_a"), 6, "mobile", hash)
	c.put(read("sub_a"), 7, "", nil)
	c.learn(6)
	if _, _, ok := c.byKey("mobile", hash); ok {
		t.Fatalf("a key of generation 6 answered with its owner of generation 7")
	}
	c.forget()
	if _, _, ok := c.byID("sub_a"); ok {
		t.Fatalf("an entry answered after the node's own change")
	}
	for i := range 200 {
		c.put(read(fmt.Sprintf("sub_%d", i)), 8, "", nil)
	}
	if n := (&DB{rc: c}).ReadCacheStats().Entries; n > 32 {
		t.Fatalf("%d entries, want at most 32", n)
	}
	if _, gen, ok := c.byID("sub_199"); !ok || gen != 8 {
		t.Fatalf("the last entry put: ok %v, gen %d", ok, gen)
	}
}

// BenchmarkReadCacheGC measures one whole garbage collection with 10,000
// customers shaped as the bench's in the read cache: the marking the
// collector repeats every cycle while the node serves (about three cycles
// a second in a read step at c=64). Before entries were one pointer-free
// slice each (internal/cacheblob, fifty-ninth session) the cache was most
// of the pointers it traced. Each customer has three keys, as the key fill
// loads them (keyfill.go); the keys' map holds no pointers either since
// the sixty-second session (with strings: 1.55 ms a collection against
// 1.10 with one key a customer).
func BenchmarkReadCacheGC(b *testing.B) {
	c := newReadCache(10_000)
	for i := range 10_000 {
		id := custos.SubjectID(fmt.Sprintf("sub_%026d", i))
		st, key, history := cacheblob.Typical(id, i, "marketing", "analytics")
		c.put(&sqlutil.SubjectRead{Subject: st, Key: key, Consents: history}, 1, "mobile", []byte(id)[14:])
		for _, field := range []string{"email", "id_number"} {
			c.keepKey(field, []byte(id)[14:], id, 1, false)
		}
	}
	runtime.GC()
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(c)
}

// TestKeyAsks: the keys' map files a key and its owner in fixed arrays
// (readcache.go); distinct keys stay distinct, the owner comes back whole,
// and a key or an id too long for them is not cached.
func TestKeyAsks(t *testing.T) {
	distinct := [][2]any{
		{"mobile", []byte{1}}, {"mobile", []byte{1, 0}}, {"mobile", []byte{0, 1}},
		{"mobil", []byte{'e', 0, 1}}, {"email", []byte{1}}, {"mobile", []byte{}},
	}
	seen := map[keyAsk]int{}
	for i, d := range distinct {
		k, ok := askOf(d[0].(string), d[1].([]byte))
		if !ok {
			t.Fatalf("askOf(%q, %x) did not fit", d[0], d[1])
		}
		if j, dup := seen[k]; dup {
			t.Fatalf("askOf(%q, %x) = askOf(%q, %x)", d[0], d[1], distinct[j][0], distinct[j][1])
		}
		seen[k] = i
	}
	if _, ok := askOf("mobile", make([]byte, 41)); ok {
		t.Error("a 6-byte field and a 41-byte hash fit in 48 bytes with their separator and length")
	}
	if _, ok := askOf("mobile", make([]byte, 40)); !ok {
		t.Error("a 6-byte field and a 40-byte hash did not fit")
	}
	id := custos.SubjectID(custos.NewID("sub"))
	e, ok := ownerOf(id, 3)
	if !ok || e.id() != id || e.gen != 3 {
		t.Fatalf("ownerOf(%s): %v, id %s, gen %d", id, ok, e.id(), e.gen)
	}
	if _, ok := ownerOf(id+"xx", 3); ok {
		t.Error("a 32-byte id fit in 31 bytes")
	}

	c := newReadCache(readCacheShards)
	c.learn(1)
	if c.keepKey("mobile", make([]byte, 41), id, 1, true) {
		t.Error("keepKey cached a key too long to file")
	}
	if c.keepKey("mobile", []byte{1}, id+"xx", 1, true) {
		t.Error("keepKey cached a key whose owner's id is too long to file")
	}
}

// BenchmarkReadCacheHit is a read's use of the cache on a hit: the entry
// by id, kept for the transaction, and the consents of the read's
// purpose asked for, of a customer with four consents (the bench's
// seeded customers). The consents are decoded on demand since the
// sixty-fourth session: 17 allocations and 2,008 bytes a hit against 31
// and 3,336, about 2.1 µs against 2.9 on the benchmark host.
func BenchmarkReadCacheHit(b *testing.B) {
	c := newReadCache(1024)
	id := custos.SubjectID("sub_0123456789abcdefghijklmnop")
	r := &sqlutil.SubjectRead{
		Subject: &custos.StoredSubject{ID: id, Sealed: map[string][]byte{}},
		Key:     &custos.DataKey{SubjectID: id, Version: 1, Wrapped: make([]byte, 60)},
	}
	for _, f := range []string{"name", "mobile", "email", "resident_id", "address", "birth_date", "gender", "_provenance"} {
		r.Subject.Sealed[f] = make([]byte, 40)
	}
	for i, p := range []string{"marketing", "customer_service", "analytics", "marketing"} {
		r.Consents = append(r.Consents, &custos.StoredConsent{Seq: int64(i + 1), ID: "con_0123456789abcdefghijklmn", SubjectID: id,
			Purpose: p, Scope: "all", Action: custos.ConsentGranted, NoticeVersion: 1, Channel: "app", InitiatedBy: "customer",
			ActorID: "prn_0123456789abcdefghijklmn", Sealed: make([]byte, 48)})
	}
	c.put(r, 5, "", nil)
	purposes := []string{"customer_service"}
	b.ReportAllocs()
	for b.Loop() {
		got, _, ok := c.byID(id)
		if !ok {
			b.Fatal("no hit")
		}
		var reads sqlutil.SubjectReads
		reads.Keep(got)
		if cs, ok := reads.ConsentsFor(id, purposes); !ok || len(cs) != 1 {
			b.Fatalf("consents for %v: %d, %v", purposes, len(cs), ok)
		}
	}
}
