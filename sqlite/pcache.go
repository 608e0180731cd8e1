package sqlite

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The page cache's largest page number, kept true across a B-tree swap.
//
// SQLite's default page cache (pcache1) remembers the largest page number
// it has held since it was last truncated (PCache1.iMaxKey). At the end of
// every transaction the pager truncates the cache to the database's size
// (pager_end_transaction), and pcache1Truncate walks the hash table only
// if that largest number lies beyond the size: the few slots that can
// hold such pages, or, when the largest number is a whole table's width
// beyond, every slot and every page in it.
//
// B-tree balancing (balance_nonroot) puts new sibling pages in page-number
// order by swapping two pages' numbers through a spare one: the number of
// the page that holds the lock byte at 1 GiB, which no database ever uses
// for data. That spare number stays in iMaxKey after the swap. So while
// the database is smaller than 1 GiB, a commit after any swap walked the
// writer's whole cache though it removed nothing: 3 % of a create
// benchmark's CPU with an 8 MiB cache, 8 % of the writer goroutine's (the
// writer is what a create waits for), and a fifth of the writer's time
// with a 64 MiB cache in the fifth session, which is why the writer keeps
// a small cache below 1 GiB (pagecache.go).
//
// So custos gives SQLite the default page cache with its xRekey wrapped
// (pcacheRekey; xTruncate is wrapped too, only to count the walks): when a page leaves the spare number, the cache's largest
// number is put back to what it was before a page took the spare number,
// or to the page's new number if that is larger. That is exact: balancing
// makes its three renumberings one after another with no page fetched
// between them (pgnoTemp in balance_nonroot), and every number a page
// moves to is one a page already had, so the largest number any page
// holds after the swap is the largest before it. Nothing else in pcache1
// reads iMaxKey, so the only thing it decides is how far the next
// truncation looks, and it still looks at every page that can lie beyond
// the database (TestPageCacheSpareNumber checks the cache after every
// swap; a rollback that drops new pages is checked there too).
//
// SQLite takes a page cache only before its first connection opens
// (SQLITE_CONFIG_PCACHE2 fails with SQLITE_MISUSE after that), so this is
// installed by the package's init. If something opened SQLite first,
// SQLite keeps its own page cache, and commits walk the cache as before
// (pcacheFix.installed says which).

// pcacheFix is the state of the wrapped page cache.
var pcacheFix struct {
	installed bool    // SQLite took the wrapped methods
	baseRekey uintptr // pcache1's xRekey
	baseTrunc uintptr // pcache1's xTruncate
	mu        sync.Mutex
	// parked holds, for each cache whose page sits at the spare number,
	// its largest page number from before.
	parked map[uintptr]uint32
	// parks counts pages renumbered to the spare number, restores the
	// times a cache's largest number was put back, walks the truncations
	// that walked a whole hash table (for tests).
	parks, restores, walks atomic.Int64
	// check, if set, runs after a restore with the cache's group mutex
	// held (for tests).
	check atomic.Pointer[func(c *sqlite3.TPCache1)]
}

// The C signatures of xRekey and xTruncate.
type (
	rekeyFn = func(tls *libc.TLS, p, pPg uintptr, iOld, iNew uint32)
	truncFn = func(tls *libc.TLS, p uintptr, iLimit uint32)
)

func init() { installPageCache() }

// installPageCache gives SQLite pcache1 with xRekey wrapped, if SQLite
// has not started yet.
func installPageCache() {
	tls := libc.NewTLS()
	defer tls.Close()
	// Both allocations live as long as the process: SQLite copies the
	// methods, but keeping them costs 100 bytes.
	methods := libc.Xcalloc(tls, 1, libc.Tsize_t(unsafe.Sizeof(sqlite3.Tsqlite3_pcache_methods2{})))
	args := libc.Xmalloc(tls, libc.Tsize_t(unsafe.Sizeof(uintptr(0))))
	if methods == 0 || args == 0 {
		return
	}
	if sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_GETPCACHE2, libc.VaList(args, methods)) != sqlite3.SQLITE_OK {
		return
	}
	m := (*sqlite3.Tsqlite3_pcache_methods2)(cptr(methods))
	if m.FxRekey == 0 || m.FxTruncate == 0 {
		return
	}
	pcacheFix.baseRekey, pcacheFix.baseTrunc = m.FxRekey, m.FxTruncate
	pcacheFix.parked = map[uintptr]uint32{}
	setCFn[rekeyFn](&m.FxRekey, pcacheRekey)
	setCFn[truncFn](&m.FxTruncate, pcacheTruncate)
	pcacheFix.installed = sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_PCACHE2, libc.VaList(args, methods)) == sqlite3.SQLITE_OK
}

// pcacheRekey is pcache1's xRekey, then, when a page leaves the spare
// number, its cache's largest page number as it was before the page took
// that number.
func pcacheRekey(tls *libc.TLS, p, pPg uintptr, iOld, iNew uint32) {
	c := (*sqlite3.TPCache1)(cptr(p))
	spare := uint32(pendingByte/int64(c.FszPage)) + 1
	base := cfn[rekeyFn](pcacheFix.baseRekey)
	switch {
	case iNew == spare:
		before := maxKey(tls, c)
		base(tls, p, pPg, iOld, iNew)
		pcacheFix.parks.Add(1)
		pcacheFix.mu.Lock()
		pcacheFix.parked[p] = before
		pcacheFix.mu.Unlock()
	case iOld == spare:
		base(tls, p, pPg, iOld, iNew)
		pcacheFix.mu.Lock()
		before, ok := pcacheFix.parked[p]
		delete(pcacheFix.parked, p)
		pcacheFix.mu.Unlock()
		if ok {
			restoreMaxKey(tls, c, spare, max(before, iNew))
		}
	default:
		base(tls, p, pPg, iOld, iNew)
	}
}

// pcacheTruncate is pcache1's xTruncate, counting the truncations that
// walk every slot of the cache's hash table (pcache1TruncateUnsafe's
// general case). It runs once a transaction.
func pcacheTruncate(tls *libc.TLS, p uintptr, iLimit uint32) {
	c := (*sqlite3.TPCache1)(cptr(p))
	mu := groupMutex(c)
	sqlite3.Xsqlite3_mutex_enter(tls, mu)
	if iLimit <= c.FiMaxKey && c.FiMaxKey-iLimit >= c.FnHash {
		pcacheFix.walks.Add(1)
	}
	sqlite3.Xsqlite3_mutex_leave(tls, mu)
	cfn[truncFn](pcacheFix.baseTrunc)(tls, p, iLimit)
}

// groupMutex is the mutex of c's group, which guards c's fields in
// pcache1 (zero, which SQLite's mutex calls ignore, if it has none).
func groupMutex(c *sqlite3.TPCache1) uintptr {
	return (*sqlite3.TPGroup)(cptr(c.FpGroup)).Fmutex
}

// maxKey reads c's largest page number under its group's mutex, which
// guards it in pcache1.
func maxKey(tls *libc.TLS, c *sqlite3.TPCache1) uint32 {
	mu := groupMutex(c)
	sqlite3.Xsqlite3_mutex_enter(tls, mu)
	defer sqlite3.Xsqlite3_mutex_leave(tls, mu)
	return c.FiMaxKey
}

// restoreMaxKey lowers c's largest page number from spare to to, unless
// a larger number than the spare one came in meanwhile.
func restoreMaxKey(tls *libc.TLS, c *sqlite3.TPCache1, spare, to uint32) {
	mu := groupMutex(c)
	sqlite3.Xsqlite3_mutex_enter(tls, mu)
	defer sqlite3.Xsqlite3_mutex_leave(tls, mu)
	if c.FiMaxKey != spare {
		return
	}
	c.FiMaxKey = to
	pcacheFix.restores.Add(1)
	if check := pcacheFix.check.Load(); check != nil {
		(*check)(c)
	}
}
