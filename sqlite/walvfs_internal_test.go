package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	sqlite3 "modernc.org/sqlite/lib"
)

// walFileNamed returns the WAL opened through walVFS under name.
func walFileNamed(t *testing.T, name string) *walFile {
	t.Helper()
	var found *walFile
	walVFS.files.Range(func(_, v any) bool {
		if f, ok := v.(*walFile); ok && f.name == name {
			found = f
			return false
		}
		return true
	})
	if found == nil {
		t.Fatalf("no WAL %s open through %s", name, walVFSName)
	}
	return found
}

// walRow is the content the test stores in row id at version v.
func walRow(id, v int) string { return fmt.Sprintf("%06d-%d-%0900d", id, v, id*v) }

// readWALRows reads every row of t through a connection of the default
// VFS and checks the database's integrity.
func readWALRows(t *testing.T, ctx context.Context, path string) map[int]string {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check of %s: got %q, %v", path, ok, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT id, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[int]string{}
	for rows.Next() {
		var id int
		var v string
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		got[id] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

func checkWALRows(t *testing.T, what string, got, want map[int]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d rows, want %d", what, len(got), len(want))
	}
	bad := 0
	for id, w := range want {
		if got[id] != w {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d rows differ from what was committed", what, bad, len(want))
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// openWALTest opens path for these tests, one connection at a time,
// through walVFS when ours is set and through the default VFS otherwise,
// with no automatic checkpoint and, when spill is set, a cache of 20
// pages that spills changed pages into the WAL; it creates table t.
func openWALTest(t *testing.T, path string, ours, spill bool) *sql.DB {
	t.Helper()
	if err := registerWALVFS(); err != nil {
		t.Fatal(err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_synchronous=full&_pragma=wal_autocheckpoint(0)"
	if spill {
		dsn += "&_pragma=cache_size(20)&_pragma=cache_spill(20)"
	}
	if ours {
		dsn += "&vfs=" + walVFSName
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	if _, err := db.ExecContext(t.Context(), `CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	return db
}

// insertWALRows writes rows from..to at version v in tx.
func insertWALRows(ctx context.Context, tx *sql.Tx, from, to, v int) error {
	for id := from; id < to; id++ {
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO t(id, v) VALUES (?, ?)`, id, walRow(id, v)); err != nil {
			return err
		}
	}
	return nil
}

// writeWALRows writes rows from..to at version v in a transaction of
// their own and commits it, recording the rows in want, or, unless
// commit, rolls it back.
func writeWALRows(ctx context.Context, db *sql.DB, want map[int]string, from, to, v int, commit bool) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := insertWALRows(ctx, tx, from, to, v); err != nil {
		tx.Rollback()
		return err
	}
	if !commit {
		return tx.Rollback()
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	for id := from; id < to; id++ {
		want[id] = walRow(id, v)
	}
	return nil
}

// checkWALCopy copies the database and its WAL as they are on disk, the
// WAL not checkpointed, and opens the copy without the shared-memory
// index: SQLite rebuilds the index from the WAL's frames and their
// checksums, and every committed row must read back.
func checkWALCopy(t *testing.T, path string, want map[int]string) {
	t.Helper()
	copied := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, path, copied)
	copyFile(t, path+"-wal", copied+"-wal")
	checkWALRows(t, "recovered from a copy of the WAL", readWALRows(t, t.Context(), copied), want)
}

// TestWALVFSGathersWrites checks the write connection's VFS (walvfs.go):
// a commit's frames reach the file in a few large writes, and what other
// connections read, and what SQLite recovers from the WAL file alone, is
// exactly what was committed — through a transaction that spills frames
// before it commits and then rewrites some of them in place (SQLite's
// iReCksum path), one that spills and rolls back, and small commits after
// both.
func TestWALVFSGathersWrites(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wal.db")
	w := openWALTest(t, path, true, true)
	f := walFileNamed(t, path+"-wal")
	want := map[int]string{}
	// Every sync of the WAL must find nothing gathered: the sync makes a
	// commit durable, and SQLite shows it to readers right after.
	var syncs, unsynced int
	walSyncCheck = func(gathered int) {
		syncs++
		unsynced = max(unsynced, gathered)
	}
	defer func() { walSyncCheck = nil }()

	// 1. One commit of about 80 pages.
	asked0, issued0, _ := f.gathered()
	if err := writeWALRows(ctx, w, want, 0, 300, 1, true); err != nil {
		t.Fatal(err)
	}
	asked, issued, _ := f.gathered()
	if asked, issued = asked-asked0, issued-issued0; asked < 100 || issued*10 > asked {
		t.Errorf("commit of 300 rows: SQLite made %d writes, the file got %d; want at least 100 gathered into a tenth as many", asked, issued)
	}
	checkWALRows(t, "after the first commit", readWALRows(t, ctx, path), want)

	// 2. A transaction larger than the cache (20 pages): it spills frames
	// into the WAL before it commits, then changes rows on pages it has
	// spilled, which SQLite rewrites in place at commit.
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := insertWALRows(ctx, tx, 300, 2300, 1); err != nil {
		t.Fatal(err)
	}
	// Read every page back inside the transaction: with 20 pages of
	// cache the last ones spilled are read from the WAL.
	var n, size int
	if err := tx.QueryRowContext(ctx, `SELECT count(*), sum(length(v)) FROM t`).Scan(&n, &size); err != nil {
		t.Fatal(err)
	}
	if wantSize := 2300 * len(walRow(0, 1)); n != 2300 || size != wantSize {
		t.Errorf("read back inside the spilling transaction: got %d rows of %d bytes, want 2300 of %d", n, size, wantSize)
	}
	if err := insertWALRows(ctx, tx, 0, 400, 2); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for id := 300; id < 2300; id++ {
		want[id] = walRow(id, 1)
	}
	for id := 0; id < 400; id++ {
		want[id] = walRow(id, 2)
	}
	checkWALRows(t, "after the spilling commit", readWALRows(t, ctx, path), want)

	// 3. A spilling transaction rolled back, then two small commits.
	if err := writeWALRows(ctx, w, want, 0, 3000, 3, false); err != nil {
		t.Fatal(err)
	}
	for v := 4; v < 6; v++ {
		if err := writeWALRows(ctx, w, want, 10*v, 10*v+3, v, true); err != nil {
			t.Fatal(err)
		}
	}
	checkWALRows(t, "after the rollback and two commits", readWALRows(t, ctx, path), want)

	if syncs == 0 || unsynced != 0 {
		t.Errorf("WAL synced %d times with up to %d bytes not yet written; want syncs with none", syncs, unsynced)
	}

	// 4. Recovery from the files alone, with over 1 MiB of frames.
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() < 1<<20 {
		t.Fatalf("WAL: %v, %v; want over 1 MiB of frames to recover", st, err)
	}
	checkWALCopy(t, path, want)
}

// TestWALVFSRollbackLeavesNothingBehind checks that frames a transaction
// spilled and then rolled back never reach the WAL after the write lock
// is released: another connection may by then have written committed
// frames at the same offsets, and a late write of the old ones would
// overwrite them.
func TestWALVFSRollbackLeavesNothingBehind(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wal.db")
	ours := openWALTest(t, path, true, true)
	other := openWALTest(t, path, false, true)
	want := map[int]string{}
	// With the WAL empty, the rollback reloads pages from the database
	// file and reads nothing from the WAL.
	var busy, logFrames, done int
	if err := other.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
	// Our connection spills about 800 frames and rolls back; the other
	// writes more than that over the same part of the WAL and commits;
	// then ours commits again.
	if err := writeWALRows(ctx, ours, want, 0, 3000, 1, false); err != nil {
		t.Fatal(err)
	}
	if _, _, left := walFileNamed(t, path+"-wal").gathered(); left != 0 {
		t.Errorf("after the rollback: %d bytes of frames still gathered, want none", left)
	}
	if err := writeWALRows(ctx, other, want, 0, 4000, 2, true); err != nil {
		t.Fatal(err)
	}
	if err := writeWALRows(ctx, ours, want, 5000, 5003, 3, true); err != nil {
		t.Fatal(err)
	}
	checkWALRows(t, "after the other connection's commit", readWALRows(t, ctx, path), want)
}

// TestWALVFSFailedWriteLosesNothing: when a gathered write fails (a full
// disk), the commit that needed it fails, what was committed before stays
// whole, and the connection commits again once writes succeed.
func TestWALVFSFailedWriteLosesNothing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "wal.db")
	w := openWALTest(t, path, true, false)
	want := map[int]string{}
	if err := writeWALRows(ctx, w, want, 0, 300, 1, true); err != nil {
		t.Fatal(err)
	}

	// The disk is full for the next commit: it changes rows already
	// there and adds new ones.
	var failed atomic.Int64
	walFailWrite = func() int32 { failed.Add(1); return sqlite3.SQLITE_FULL }
	err := writeWALRows(ctx, w, want, 100, 500, 2, true)
	walFailWrite = nil
	if err == nil || failed.Load() == 0 {
		t.Fatalf("commit with every write failing: got %v after %d failed writes, want an error", err, failed.Load())
	}
	checkWALRows(t, "after the failed commit", readWALRows(t, ctx, path), want)

	// Writes succeed again: the same connection commits.
	if err := writeWALRows(ctx, w, want, 100, 500, 3, true); err != nil {
		t.Fatalf("commit after the disk has room again: %v", err)
	}
	checkWALRows(t, "after the next commit", readWALRows(t, ctx, path), want)
	checkWALCopy(t, path, want)
}
