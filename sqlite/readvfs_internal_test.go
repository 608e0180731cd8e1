package sqlite

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"custos"
)

// openMappedReader opens path read-only through readVFS with a page
// cache of 10 pages, so that SQLite asks the VFS for nearly every page it
// reads.
func openMappedReader(t *testing.T, path string) *sql.DB {
	t.Helper()
	if err := registerReadVFS(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)&_pragma=cache_size(10)&_query_only=on&vfs="+readVFSName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// readRows reads every row of t through db.
func readRows(t *testing.T, ctx context.Context, db *sql.DB) map[int]string {
	t.Helper()
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

// readCounts returns readVFS's counters: reads copied from a map, reads
// passed to the default VFS, faults recovered.
func readCounts() (mapped, passed, faults int64) {
	return readVFS.mapped.Load(), readVFS.passed.Load(), readVFS.faults.Load()
}

func checkpointTruncate(t *testing.T, ctx context.Context, db *sql.DB) {
	t.Helper()
	var busy, log, done int
	if err := db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &log, &done); err != nil || busy != 0 {
		t.Fatalf("checkpoint: busy %d, %v", busy, err)
	}
}

// TestReadVFSReadsFromTheMap checks the read connections' VFS
// (readvfs.go): pages of the database file come from the map, not from
// pread, and what a reader reads is what was committed as the file grows
// (pages past the size the map knew at open), as pages are rewritten in
// place by a checkpoint of another connection, and after another
// connection shrinks the file. Every connection to the file shares one
// map, which goes when the last closes.
func TestReadVFSReadsFromTheMap(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "r.db")
	w := openWALTest(t, path, false, false) // the default VFS
	want := map[int]string{}
	if err := writeWALRows(ctx, w, want, 0, 2000, 1, true); err != nil {
		t.Fatal(err)
	}
	checkpointTruncate(t, ctx, w)

	r := openMappedReader(t, path)
	m0, p0, f0 := readCounts()
	checkWALRows(t, "first read", readRows(t, ctx, r), want)
	m1, p1, _ := readCounts()
	// 2,000 rows of about 920 bytes are some 500 pages.
	if m1-m0 < 400 {
		t.Errorf("first read: %d reads came from the map, %d from pread; want at least 400 from the map", m1-m0, p1-p0)
	}
	if p1-p0 > 5 {
		t.Errorf("first read: %d reads went to pread, though the file's size was known at open", p1-p0)
	}

	// The file grows past what the map knew: the first read of each new
	// page goes to pread and shows the map the file is longer.
	if err := writeWALRows(ctx, w, want, 2000, 6000, 1, true); err != nil {
		t.Fatal(err)
	}
	checkpointTruncate(t, ctx, w)
	checkWALRows(t, "after the file grew", readRows(t, ctx, r), want)
	_, p2, _ := readCounts()
	if p2 == p1 {
		t.Errorf("after the file grew: no read went to pread; the map cannot have known the new pages")
	}
	if err := writeWALRows(ctx, w, want, 0, 1, 1, true); err != nil { // the WAL changes: SQLite empties the reader's cache
		t.Fatal(err)
	}
	m3, _, _ := readCounts()
	checkWALRows(t, "again", readRows(t, ctx, r), want)
	m4, p4, _ := readCounts()
	if p4-p2 > 5 || m4-m3 < 1400 {
		t.Errorf("reading the grown file again: %d reads from the map, %d from pread; want the map to know the whole file", m4-m3, p4-p2)
	}

	// Pages rewritten in place by another connection's checkpoint read
	// back as rewritten: the map shows the file as it is now.
	if err := writeWALRows(ctx, w, want, 0, 6000, 2, true); err != nil {
		t.Fatal(err)
	}
	checkpointTruncate(t, ctx, w)
	checkWALRows(t, "after a checkpoint rewrote every page", readRows(t, ctx, r), want)

	// Another connection shrinks the file (VACUUM; custos never does).
	if _, err := w.ExecContext(ctx, `DELETE FROM t WHERE id >= 500`); err != nil {
		t.Fatal(err)
	}
	for id := 500; id < 6000; id++ {
		delete(want, id)
	}
	if _, err := w.ExecContext(ctx, `VACUUM`); err != nil {
		t.Fatal(err)
	}
	checkpointTruncate(t, ctx, w)
	checkWALRows(t, "after the file shrank", readRows(t, ctx, r), want)
	if _, _, f := readCounts(); f != f0 {
		t.Errorf("%d faults: SQLite read past the file's end", f-f0)
	}

	// A second reader shares the map; the map goes with the last one.
	r2 := openMappedReader(t, path)
	checkWALRows(t, "second reader", readRows(t, ctx, r2), want)
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	key := fileKey{uint64(st.Dev), uint64(st.Ino)}
	readVFS.mu.Lock()
	m, ok := readVFS.maps[key]
	refs := 0
	if ok {
		refs = m.refs
	}
	readVFS.mu.Unlock()
	if !ok || refs != 2 {
		t.Errorf("two readers of one file: map present %v with %d users, want one map for both", ok, refs)
	}
	r.Close()
	r2.Close()
	readVFS.mu.Lock()
	_, ok = readVFS.maps[key]
	readVFS.mu.Unlock()
	if ok {
		t.Errorf("the file's map outlived its last reader")
	}
}

// TestReadVFSFaultFallsBack cuts a mapped file shorter than the map
// knows, as another program could: a copy from past the new end must
// not end the process but report that it could not copy, so that the
// read falls back to pread, and the map must learn the size again.
func TestReadVFSFaultFallsBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := mapFile(int(f.Fd()))
	if m == nil {
		t.Fatal("no map")
	}
	defer func() {
		readVFS.mu.Lock()
		unmapLocked(m)
		readVFS.mu.Unlock()
	}()
	if got := m.avail.Load(); got != int64(len(data)) {
		t.Fatalf("avail %d, want the file's size %d", got, len(data))
	}
	buf := make([]byte, 4096)
	if !m.copy(buf, 8192) || string(buf) != string(data[8192:8192+4096]) {
		t.Fatal("copy from the map did not return the file's bytes")
	}
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, _, f0 := readCounts()
	if m.copy(buf, 32768) {
		t.Fatal("a copy from past the file's end reported success")
	}
	if _, _, f1 := readCounts(); f1 != f0+1 {
		t.Errorf("faults counted %d, want 1", f1-f0)
	}
	if got := m.avail.Load(); got != 0 {
		t.Errorf("after a fault avail is %d, want 0 (learn the size again)", got)
	}
	if !m.copy(buf[:100], 0) || string(buf[:100]) != string(data[:100]) {
		t.Error("a copy from inside the shortened file failed")
	}
}

// TestReadVFSConcurrent reads rows through mapped readers from several
// goroutines while a writer rewrites them and checkpoints after every
// commit: every row read must be whole, one version's bytes throughout.
func TestReadVFSConcurrent(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "c.db")
	w := openWALTest(t, path, false, false)
	want := map[int]string{}
	const rows = 1500
	if err := writeWALRows(ctx, w, want, 0, rows, 1, true); err != nil {
		t.Fatal(err)
	}
	r := openMappedReader(t, path)
	m0, _, _ := readCounts()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := rnd.IntN(rows)
				var v string
				if err := r.QueryRowContext(ctx, `SELECT v FROM t WHERE id = ?`, id).Scan(&v); err != nil {
					errs <- err.Error()
					return
				}
				ok := false
				for ver := 1; ver <= 12 && !ok; ver++ {
					ok = v == walRow(id, ver)
				}
				if !ok {
					errs <- "row " + v[:12] + " is no version that was written"
					return
				}
			}
		}()
	}
	for ver := 2; ver <= 12; ver++ {
		if err := writeWALRows(ctx, w, want, 0, rows, ver, true); err != nil {
			t.Fatal(err)
		}
		var busy, log, done int
		if err := w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &done); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	checkWALRows(t, "after the writes", readRows(t, ctx, r), want)
	if m1, _, _ := readCounts(); m1 == m0 {
		t.Error("no read came from the map")
	}
}

// TestReadVFSTrimsItsResidentPages touches every page of a mapped 32 MiB
// file, which puts them in the process's resident size, and checks that
// trimMaps over a limit below that lets go of them, that it does nothing
// under a limit above, and that the map still reads the file's bytes
// after a trim.
func TestReadVFSTrimsItsResidentPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	const size = 32 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 13)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := mapFile(int(f.Fd()))
	if m == nil {
		t.Fatal("no map")
	}
	defer func() {
		readVFS.mu.Lock()
		unmapLocked(m)
		readVFS.mu.Unlock()
	}()
	buf := make([]byte, 4096)
	touch := func() {
		for off := int64(0); off < size; off += 4096 {
			if !m.copy(buf, off) {
				t.Fatalf("copy at %d failed", off)
			}
		}
	}
	resident := func() int64 {
		n, ok := residentShared()
		if !ok {
			t.Skip("no /proc/self/statm")
		}
		return n
	}
	before := resident()
	touch()
	touched := resident()
	if touched-before < size/2 {
		t.Fatalf("touching 32 MiB of the map added %d bytes of resident file pages; the test cannot see a trim", touched-before)
	}
	if trimMaps(touched + size) {
		t.Error("trimMaps trimmed under its limit")
	}
	if !trimMaps(touched - size/2) {
		t.Fatal("trimMaps did not trim over its limit")
	}
	if after := resident(); touched-after < size/2 {
		t.Errorf("after a trim resident file pages went from %d to %d bytes; want at least 16 MiB fewer", touched, after)
	}
	if !m.copy(buf, 12345*4096%size) || string(buf) != string(data[12345*4096%size:][:4096]) {
		t.Error("the map does not read the file's bytes after a trim")
	}
}

// TestReadPoolUsesTheMap checks that a store's read connections open the
// database through readVFS: a read after a checkpoint fetches the
// database file's pages, and they come from the map.
func TestReadPoolUsesTheMap(t *testing.T) {
	ctx := t.Context()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "custos.db"), Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.SetMeta(ctx, "k", "v") }); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	m0, _, _ := readCounts()
	var n int
	if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master`).Scan(&n); err != nil || n == 0 {
		t.Fatalf("reading the schema: %d tables, %v", n, err)
	}
	if m1, _, _ := readCounts(); m1 == m0 {
		t.Errorf("a read of the database file on the read pool took nothing from the map; is the pool opened through %s?", readVFSName)
	}
}
