package sqlite

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"custos"
)

// benchCache is a read cache holding n customers shaped as the bench's
// synthetic ones: twelve sealed fields (about 60 bytes of ciphertext
// each), a wrapped data key and two consents.
func benchCache(b *testing.B, n int) (*readCache, []custos.SubjectID) {
	b.Helper()
	shared, err := openSharedGen(filepath.Join(b.TempDir(), "custos.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = shared.close() })
	c := newReadCache(2*n, shared) // room to spare: no shard evicts
	ids := make([]custos.SubjectID, n)
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("sub_%026d", i))
		st, key, history := typicalEntry(ids[i], i, "marketing", "analytics")
		c.putSubject(c.begin(), st, key, history)
	}
	return c, ids
}

// typicalEntry is what the cache keeps of a customer shaped as the
// bench's synthetic ones: twelve sealed fields of about 60 bytes of
// ciphertext, a wrapped data key and one consent for each of purposes.
func typicalEntry(id custos.SubjectID, i int, purposes ...string) (*custos.StoredSubject, *custos.DataKey, []*custos.StoredConsent) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	st := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{}, CreatedAt: now, UpdatedAt: now}
	for _, f := range []string{"name", "mobile", "email", "id_number", "address", "birth_date",
		"gender", "member_no", "city", "postcode", "tier", "_provenance"} {
		st.Sealed[f] = make([]byte, 60)
	}
	key := &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: make([]byte, 60), CreatedAt: now}
	var history []*custos.StoredConsent
	for j, p := range purposes {
		history = append(history, &custos.StoredConsent{Seq: int64(i), ID: fmt.Sprintf("con_%d_%d", i, j),
			SubjectID: id, Purpose: p, Scope: "all", Action: custos.ConsentGranted, NoticeVersion: 1, At: now,
			Channel: "app", InitiatedBy: "subject", ActorID: "prn_app"})
	}
	return st, key, history
}

// BenchmarkReadCacheGC measures one whole garbage collection with 10,000
// customers in the read cache: the collector's marking of the cache,
// which it repeats every cycle while the node serves (about 9 cycles a
// second at c=64 in the bench). Before entries were one pointer-free
// slice each (cacheblob.go) this was the largest part of the
// collector's work.
func BenchmarkReadCacheGC(b *testing.B) {
	c, _ := benchCache(b, 10_000)
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(c)
}

// BenchmarkReadCacheHit measures what a read that finds its customer in
// the cache asks of it: the subject row, the data key and the consents
// for one purpose.
func BenchmarkReadCacheHit(b *testing.B) {
	c, ids := benchCache(b, 10_000)
	purposes := []string{"marketing"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := ids[i%len(ids)]
		i++
		if c.getSubject(id) == nil || c.getKey(id) == nil {
			b.Fatal("miss")
		}
		if l, ok := c.getConsents(id, purposes); !ok || len(l) != 1 {
			b.Fatalf("consents %d, %v", len(l), ok)
		}
	}
}
