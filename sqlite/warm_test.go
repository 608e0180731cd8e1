package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/internal/sqlutil"
	"custos/sqlite"
)

// openAt opens the store at path with a read cache of size customers
// (sqlite.Options.ReadCache), closed at cleanup unless the test closes it.
func openAt(t *testing.T, path string, size int) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Migrate: true, ReadCache: size})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() }) // a second Close is harmless
	return db
}

// warmCanary is in every seeded subject's sealed field: the list must
// never hold it.
const warmCanary = "WARM-CANARY-1f3b"

// seedWarm stores n subjects with valid ids, each with a data key and a
// consent, and returns their ids in creation order.
func seedWarm(t *testing.T, db *sqlite.DB, n int) []custos.SubjectID {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := make([]custos.SubjectID, n)
	err := db.Update(ctx, func(tx custos.Tx) error {
		for i := range ids {
			ids[i] = custos.SubjectID(custos.NewID("sub"))
			id := ids[i]
			if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte(warmCanary + "-v0")}, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte("wrapped"), CreatedAt: now}); err != nil {
				return err
			}
			if err := tx.InsertConsent(ctx, &custos.StoredConsent{ID: "c-" + string(id), SubjectID: id, Purpose: "marketing",
				Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// readName reads id's sealed name in a View (through the read cache).
func readName(t *testing.T, db *sqlite.DB, id custos.SubjectID) string {
	t.Helper()
	ctx := context.Background()
	var name string
	err := db.View(ctx, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		name = string(st.Sealed["name"])
		return nil
	})
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return name
}

// setName replaces id's sealed name.
func setName(t *testing.T, db *sqlite.DB, id custos.SubjectID, name string) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		st.Sealed["name"] = []byte(name)
		st.UpdatedAt = tx.Now()
		return tx.UpdateSubject(ctx, st)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func listLines(t *testing.T, db *sqlite.DB) []string {
	t.Helper()
	b, err := os.ReadFile(db.WarmListPath())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte(warmCanary)) {
		t.Fatalf("the read cache list holds a stored value")
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// TestWarmReadCache: a store writes the ids its read cache holds, and a
// new process on the same file reads those customers back into its cache,
// so that their first reads are hits: the newest version of each (one
// changed after the list was written), none of one erased since, and
// without counting in the cache's hits and misses. Issue #7 (a 10M node's
// first seconds after a start).
func TestWarmReadCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db := openAt(t, path, 0)
	ids := seedWarm(t, db, 40)
	read := ids[:30]
	for _, id := range read {
		readName(t, db, id)
	}
	n, err := db.SaveReadCacheList()
	if err != nil || n != len(read) {
		t.Fatalf("SaveReadCacheList = %d, %v; want %d", n, err, len(read))
	}
	fi, err := os.Stat(db.WarmListPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("list mode %v, want 0600", fi.Mode().Perm())
	}
	lines := listLines(t, db)
	if lines[0] != "custos read cache v1" {
		t.Errorf("first line %q, want the header", lines[0])
	}
	got := slices.Sorted(slices.Values(lines[1:]))
	want := make([]string, len(read))
	for i, id := range read {
		want[i] = string(id)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("list holds %d ids %v, want the %d read: %v", len(got), got, len(want), want)
	}
	// After the list: one customer changed, one erased.
	changed, erased := read[3], read[7]
	setName(t, db, changed, warmCanary+"-v1")
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.DeleteSubject(ctx, erased) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db = openAt(t, path, 0)
	if st := db.ReadCacheStats(); st.Entries != 0 {
		t.Fatalf("a new process's cache holds %d entries", st.Entries)
	}
	var calls []sqlutil.WarmStats
	st, err := db.WarmReadCache(ctx, func(s sqlutil.WarmStats) { calls = append(calls, s) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Listed != 30 || st.Loaded != 29 || st.Gone != 1 || st.Cached != 0 || st.Skipped != 0 {
		t.Fatalf("WarmReadCache = %+v, want 30 listed, 29 loaded, 1 gone", st)
	}
	if len(calls) == 0 || calls[len(calls)-1].Loaded != 29 {
		t.Fatalf("progress calls %+v, want the last at 29 loaded", calls)
	}
	before := db.ReadCacheStats()
	if before.Entries != 29 || before.Warmed != 29 || before.Hits != 0 || before.Misses != 0 {
		t.Fatalf("after the warm-up: %+v, want 29 entries warmed and no hit or miss counted", before)
	}
	for _, id := range read {
		if id == erased {
			continue
		}
		want := warmCanary + "-v0"
		if id == changed {
			want = warmCanary + "-v1"
		}
		if got := readName(t, db, id); got != want {
			t.Errorf("%s reads %q after the warm-up, want %q", id, got, want)
		}
	}
	if after := db.ReadCacheStats(); after.Hits != 29 || after.Misses != 0 {
		t.Fatalf("reads after the warm-up: %+v, want 29 hits and no miss", after)
	}
	// A second warm-up finds them all there.
	if st, err := db.WarmReadCache(ctx, nil); err != nil || st.Cached != 29 || st.Loaded != 0 {
		t.Fatalf("second WarmReadCache = %+v, %v; want 29 already cached", st, err)
	}
}

// TestWarmReadCacheListOrder: the customers read since they were put
// come first in the list, so that a smaller cache warms with them; a
// warm-up never evicts, and counts what found no room.
func TestWarmReadCacheListOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "custos.db")
	db := openAt(t, path, 0)
	ids := seedWarm(t, db, 20)
	hot := ids[10:]
	for _, id := range ids {
		readName(t, db, id) // a miss: put, not read since
	}
	for _, id := range hot {
		readName(t, db, id) // a hit: read since put
	}
	if _, err := db.SaveReadCacheList(); err != nil {
		t.Fatal(err)
	}
	lines := listLines(t, db)[1:]
	if len(lines) != 20 {
		t.Fatalf("list holds %d ids, want 20", len(lines))
	}
	for i, l := range lines {
		if isHot := slices.Contains(hot, custos.SubjectID(l)); isHot != (i < len(hot)) {
			t.Fatalf("list line %d is %s (read again: %v); want the %d read again first:\n%s", i+2, l, isHot, len(hot), strings.Join(lines, "\n"))
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// 16 customers, one a shard: the first 16 listed are tried, and a
	// shard that is full keeps what it holds.
	small := openAt(t, path, 16)
	st, err := small.WarmReadCache(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Listed != 20 || st.Loaded+st.Skipped != 20 || st.Loaded == 0 || st.Loaded > 16 {
		t.Fatalf("WarmReadCache into 16 = %+v, want 20 listed, at most 16 loaded, the rest without room", st)
	}
	if e := small.ReadCacheStats().Entries; e != st.Loaded {
		t.Fatalf("cache holds %d entries after loading %d", e, st.Loaded)
	}
}

// TestWarmReadCacheBadList: a list that is not one is refused with an
// error naming the line and the rule, and nothing is read; no list, an
// empty cache or a cache that is off are no error and change nothing.
func TestWarmReadCacheBadList(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db := openAt(t, path, 0)
	ids := seedWarm(t, db, 3)

	if st, err := db.WarmReadCache(ctx, nil); err != nil || st != (sqlutil.WarmStats{}) {
		t.Fatalf("without a list: %+v, %v; want nothing done", st, err)
	}
	// An empty cache writes no list.
	if n, err := db.SaveReadCacheList(); err != nil || n != 0 {
		t.Fatalf("SaveReadCacheList of an empty cache = %d, %v", n, err)
	}
	if _, err := os.Stat(db.WarmListPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an empty cache wrote a list: %v", err)
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"header", "custos read cache v0\n" + string(ids[0]) + "\n", "line 1, is not the header"},
		{"id", "custos read cache v1\n" + string(ids[0]) + "\nsub_not-an-id\n" + string(ids[1]) + "\n", "line 3, is not a subject id"},
		{"value", "custos read cache v1\n" + warmCanary + "\n", "line 2, is not a subject id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(db.WarmListPath(), []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := db.WarmReadCache(ctx, nil)
			if custos.ErrorCode(err) != custos.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WarmReadCache: %v, want invalid with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), warmCanary) {
				t.Fatalf("the error quotes the line: %v", err)
			}
			if st.Loaded != 0 || db.ReadCacheStats().Entries != 0 {
				t.Fatalf("a bad list loaded %+v", st)
			}
		})
	}

	// A list left as it was by a process whose cache was empty.
	good := "custos read cache v1\n" + string(ids[0]) + "\n"
	if err := os.WriteFile(db.WarmListPath(), []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.SaveReadCacheList(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(db.WarmListPath()); string(b) != good {
		t.Fatalf("an empty cache replaced the list with %q", b)
	}
	// A cancelled warm-up reads nothing and says why.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if st, err := db.WarmReadCache(cctx, nil); !errors.Is(err, context.Canceled) || st.Loaded != 0 {
		t.Fatalf("cancelled WarmReadCache = %+v, %v; want context.Canceled", st, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	off := openAt(t, path, -1)
	if st, err := off.WarmReadCache(ctx, nil); err != nil || st.Listed != 0 {
		t.Fatalf("cache off: WarmReadCache = %+v, %v; want nothing done", st, err)
	}
	if n, err := off.SaveReadCacheList(); err != nil || n != 0 {
		t.Fatalf("cache off: SaveReadCacheList = %d, %v", n, err)
	}
}
