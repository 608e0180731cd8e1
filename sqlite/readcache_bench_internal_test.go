package sqlite

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"

	"custos"
	"custos/internal/cacheblob"
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
		st, key, history := cacheblob.Typical(ids[i], i, "marketing", "analytics")
		c.putSubject(c.begin(), st, key, history)
	}
	return c, ids
}

// BenchmarkReadCacheGC measures one whole garbage collection with 10,000
// customers in the read cache: the collector's marking of the cache,
// which it repeats every cycle while the node serves (about 9 cycles a
// second at c=64 in the bench). Before entries were one pointer-free
// slice each (internal/cacheblob) this was the largest part of the
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
