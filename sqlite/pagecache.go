package sqlite

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// The write connection's page cache.
//
// SQLite's B-tree balancing swaps two pages' numbers through a spare
// number, the page that holds the lock byte at 1 GiB (balance_nonroot,
// pgnoTemp). The page cache remembers the largest page number it has
// seen, so after any such swap the next commit "truncates" the cache to
// the database's size, and while the database is smaller than 1 GiB that
// truncation walks the whole cache's hash table (pcache1TruncateUnsafe)
// though it removes nothing. With a 64 MiB cache that walk took a fifth of
// the writer's CPU time in a read benchmark on a small store (BENCHMARKS.md,
// fifth session). So below 1 GiB the writer keeps a small cache — the
// database then fits in the OS page cache anyway — and lets a transaction
// hold up to 64 MiB of changed pages before it spills them into the WAL
// (cache_spill), which is what the import needed the large cache for;
// from 1 GiB on, where the walk cannot happen, it uses the large cache.
// pcache.go now keeps the walk from happening at all, but the small cache
// stays: with the walk gone, the large cache below 1 GiB read 5–7 % slower
// in two rounds of eight interleaved pairs (BENCHMARKS.md, twenty-sixth
// session), and created no faster.

const (
	// smallCacheKiB and largeCacheKiB are the write connection's
	// cache_size below and above the lock-byte page; spillKiB is how many
	// changed pages a transaction may hold before it spills.
	smallCacheKiB = 8 << 10
	largeCacheKiB = 64 << 10
	spillKiB      = 64 << 10
	// pendingByte is SQLite's lock-byte offset (PENDING_BYTE).
	pendingByte = 1 << 30
)

// tuneCacheInterval is how often the writer looks at the database's size
// (tuneCache): after the first group that ends this long after its last
// look. It looked every 1,024 commit groups before, but an import's or a
// seed's groups are whole batches of 500 customers, so a 1M seed ran most
// of its way past 1 GiB with the small cache (BENCHMARKS.md, eighteenth
// session). A look is three pragmas on the write connection. A variable
// so that a test can shorten it before it opens a store.
var tuneCacheInterval = time.Second

// writeCacheDSN is the part of the write connection's DSN that sizes its
// page cache as it starts: small, until tuneCache has seen the database.
func writeCacheDSN() string {
	return fmt.Sprintf("&_pragma=cache_size(-%d)&_pragma=cache_spill(-%d)", smallCacheKiB, spillKiB)
}

// largeCacheFrom is the database size in bytes from which the writer
// uses the large cache: the lock-byte page. Tests lower it while a
// writer may be reading it, hence atomic; zero means pendingByte.
var largeCacheFrom atomic.Int64

// wantCacheKiB is the cache the write connection should have for a
// database of pages pages of pageSize bytes.
func wantCacheKiB(pages, pageSize int64) int64 {
	from := largeCacheFrom.Load()
	if from == 0 {
		from = pendingByte
	}
	if pageSize > 0 && pages >= from/pageSize {
		return largeCacheKiB
	}
	return smallCacheKiB
}

// tuneCache sets the write connection's cache size for the database's
// current size. The writer calls it when it starts and then between two
// groups, every tuneCacheInterval. A failure leaves the cache as
// it was until the next look.
func (db *DB) tuneCache() error {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	conn, err := db.write.Conn(ctx)
	if err != nil {
		return internal("page cache", err)
	}
	defer conn.Close()
	var pages, pageSize, cur int64
	if err := conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return internal("page cache", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return internal("page cache", err)
	}
	if err := conn.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&cur); err != nil {
		return internal("page cache", err)
	}
	if want := wantCacheKiB(pages, pageSize); cur != -want {
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = -%d", want)); err != nil {
			return internal("page cache", err)
		}
	}
	return nil
}
