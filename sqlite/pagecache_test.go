package sqlite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"custos"
)

// writeConnPragma reads one integer pragma on the write connection.
func writeConnPragma(t *testing.T, db *DB, name string) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := db.write.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var v int64
	if err := conn.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return v
}

func TestWantCacheKiB(t *testing.T) {
	for _, c := range []struct {
		pages, pageSize, want int64
	}{
		{0, 4096, smallCacheKiB},
		{262143, 4096, smallCacheKiB}, // just under 1 GiB
		{262144, 4096, largeCacheKiB},
		{10_000_000, 4096, largeCacheKiB},
		{16383, 65536, smallCacheKiB},
		{16384, 65536, largeCacheKiB},
		{5, 0, smallCacheKiB}, // no page size read: stay small
	} {
		if got := wantCacheKiB(c.pages, c.pageSize); got != c.want {
			t.Errorf("wantCacheKiB(%d, %d) = %d KiB, want %d", c.pages, c.pageSize, got, c.want)
		}
	}
}

// TestWriteCacheSize: a small store's writer has the small page cache and
// may still hold 64 MiB of changed pages before spilling; once the store
// is past the size where the commit-time cache walk happens, tuneCache
// gives it the large cache, and back.
func TestWriteCacheSize(t *testing.T) {
	t.Cleanup(func() { largeCacheFrom.Store(0) })
	db := openInternal(t)

	if got := writeConnPragma(t, db, "cache_size"); got != -smallCacheKiB {
		t.Errorf("cache_size on a new store = %d, want -%d (KiB)", got, smallCacheKiB)
	}
	// cache_spill reports the spill threshold in pages: 64 MiB of 4 KiB
	// pages and their headers, far above the small cache's 2,048 pages.
	if got := writeConnPragma(t, db, "cache_spill"); got < spillKiB/4*9/10 || got > spillKiB/4 {
		t.Errorf("cache_spill = %d pages, want about %d", got, spillKiB/4)
	}

	largeCacheFrom.Store(4096) // every store is "large" now
	if err := db.tuneCache(); err != nil {
		t.Fatal(err)
	}
	if got := writeConnPragma(t, db, "cache_size"); got != -largeCacheKiB {
		t.Errorf("cache_size past the threshold = %d, want -%d", got, largeCacheKiB)
	}
	largeCacheFrom.Store(0)
	if err := db.tuneCache(); err != nil {
		t.Fatal(err)
	}
	if got := writeConnPragma(t, db, "cache_size"); got != -smallCacheKiB {
		t.Errorf("cache_size back under the threshold = %d, want -%d", got, smallCacheKiB)
	}
}

// TestWriterRetunesCacheByTime: the writer looks at the store's size again
// after the first group that ends tuneCacheInterval after its last look,
// however few groups ran, so that a bulk load (whole batches a group) gets
// the large cache soon after the store passes the threshold.
func TestWriterRetunesCacheByTime(t *testing.T) {
	old := tuneCacheInterval
	tuneCacheInterval = 5 * time.Millisecond
	t.Cleanup(func() { tuneCacheInterval = old; largeCacheFrom.Store(0) })
	db := openInternal(t) // closed before the cleanup above restores
	ctx := context.Background()
	write := func(i int) {
		t.Helper()
		if err := db.Update(ctx, func(tx custos.Tx) error {
			return tx.SetMeta(ctx, "retune-test", fmt.Sprint(i))
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	if got := writeConnPragma(t, db, "cache_size"); got != -smallCacheKiB {
		t.Fatalf("cache_size on a new store = %d, want -%d (KiB)", got, smallCacheKiB)
	}
	largeCacheFrom.Store(4096) // every store is "large" now
	time.Sleep(2 * tuneCacheInterval)
	write(1) // a group that ends past the interval: the writer looks after it
	write(2) // answered only once the writer is done with the look
	if got := writeConnPragma(t, db, "cache_size"); got != -largeCacheKiB {
		t.Errorf("cache_size two groups after the store passed the threshold = %d, want -%d",
			got, largeCacheKiB)
	}
}
