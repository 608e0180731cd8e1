package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// cacheKeys returns the page numbers c holds, read under its group's
// mutex.
func cacheKeys(c *sqlite3.TPCache1) []uint32 {
	tls := libc.NewTLS()
	defer tls.Close()
	mu := groupMutex(c)
	sqlite3.Xsqlite3_mutex_enter(tls, mu)
	defer sqlite3.Xsqlite3_mutex_leave(tls, mu)
	return hashKeys(c)
}

// hashKeys walks c's hash table; the caller holds its group's mutex.
func hashKeys(c *sqlite3.TPCache1) []uint32 {
	var keys []uint32
	for h := range uintptr(c.FnHash) {
		for pg := *(*uintptr)(cptr(c.FapHash + h*unsafe.Sizeof(uintptr(0)))); pg != 0; {
			hdr := (*sqlite3.TPgHdr1)(cptr(pg))
			keys = append(keys, hdr.FiKey)
			pg = hdr.FpNext
		}
	}
	return keys
}

// TestPageCacheSpareNumber (pcache.go): a B-tree balance that swaps two
// pages' numbers through the lock-byte page's number leaves the page
// cache's largest number where it was, so that commits after it do not
// walk the cache's whole hash table; and after every such swap no page
// in the cache has a larger number than the cache's largest, so a
// truncation (here, a rollback of pages the transaction added) still
// drops every page beyond the database.
func TestPageCacheSpareNumber(t *testing.T) {
	if !pcacheFix.installed {
		t.Fatal("SQLite runs without the wrapped page cache: something started it before this package's init")
	}
	var (
		mu         sync.Mutex
		caches     = map[*sqlite3.TPCache1]bool{}
		violations int
	)
	check := func(c *sqlite3.TPCache1) {
		for _, k := range hashKeys(c) {
			if k > c.FiMaxKey {
				mu.Lock()
				violations++
				mu.Unlock()
			}
		}
		mu.Lock()
		caches[c] = true
		mu.Unlock()
	}
	pcacheFix.check.Store(&check)
	t.Cleanup(func() { pcacheFix.check.Store(nil) })

	ctx := context.Background()
	// A plain database on the default VFS, a cache large enough that
	// a whole-table walk would show, one connection.
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "p.db")+
		"?_pragma=journal_mode(WAL)&_pragma=cache_size(-65536)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	// n random keys in one transaction, ended by end: random keys land
	// on random leaves, and leaves split.
	insert := func(n int, end func(*sql.Tx) error) {
		t.Helper()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for range n {
			k, v := make([]byte, 24), make([]byte, 200)
			rand.Read(k)
			rand.Read(v)
			if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?, ?)`, k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := end(tx); err != nil {
			t.Fatal(err)
		}
	}
	parks, restores, walks := pcacheFix.parks.Load(), pcacheFix.restores.Load(), pcacheFix.walks.Load()
	for range 60 {
		insert(200, (*sql.Tx).Commit)
	}
	if got := pcacheFix.parks.Load() - parks; got == 0 {
		t.Fatal("no page took the spare number in 12,000 random inserts: the test no longer makes SQLite swap pages")
	}
	if got := pcacheFix.restores.Load() - restores; got == 0 {
		t.Error("no cache had its largest page number put back after a swap")
	}
	if got := pcacheFix.walks.Load() - walks; got != 0 {
		t.Errorf("%d commits walked the whole page cache; want none", got)
	}

	// A transaction that grows the database by many pages, with swaps,
	// then rolls back: its pages must leave the cache.
	var before, rows int64
	if err := db.QueryRowContext(ctx, `PRAGMA page_count`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	restores = pcacheFix.restores.Load()
	insert(3000, (*sql.Tx).Rollback)
	if pcacheFix.restores.Load() == restores {
		t.Fatal("the rolled-back transaction made no swap")
	}
	mu.Lock()
	defer mu.Unlock()
	if violations != 0 {
		t.Errorf("%d pages had a larger number than their cache's largest after a swap", violations)
	}
	if len(caches) != 1 {
		t.Fatalf("swaps in %d page caches, want the one connection's", len(caches))
	}
	for c := range caches {
		for _, k := range cacheKeys(c) {
			if int64(k) > before {
				t.Errorf("page %d is still cached after the rollback; the database has %d pages", k, before)
			}
		}
	}
	var check2 string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check2); err != nil || check2 != "ok" {
		t.Errorf("integrity_check = %q, %v", check2, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&rows); err != nil || rows != 12000 {
		t.Errorf("rows = %d, %v; want 12000", rows, err)
	}
}
