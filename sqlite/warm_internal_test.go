package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"custos"
)

// TestWarmReadCacheCoherent: a customer changed after the warm-up's read
// transaction began, and read in it afterwards (from the snapshot, so
// the version before the change), is not kept in the cache: the next
// read sees the change. The change commits between two reads of one
// batch, deterministically (warmAfterRead).
func TestWarmReadCacheCoherent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	db := openKept(t, path, keepFor)
	var ids []custos.SubjectID
	for range 8 {
		id := custos.SubjectID(custos.NewID("sub"))
		ids = append(ids, id)
		putSubject(t, db, id, "v0", false)
	}
	slices.Sort(ids) // the warm-up's order
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	list := "custos read cache v1\n"
	for _, id := range ids {
		list += string(id) + "\n"
	}
	if err := os.WriteFile(db.WarmListPath(), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}

	// After the first read (which begins the snapshot), change every
	// later customer of the batch.
	warmAfterRead = func(id custos.SubjectID) {
		if id != ids[0] {
			return
		}
		for _, later := range ids[1:] {
			if err := storeName(ctx, db, later, "v1", true); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(func() { warmAfterRead = nil })
	st, err := db.WarmReadCache(ctx, nil)
	warmAfterRead = nil
	if err != nil || st.Loaded != len(ids) {
		t.Fatalf("WarmReadCache = %+v, %v; want all %d read", st, err, len(ids))
	}
	if e := db.ReadCacheStats().Entries; e != 1 {
		t.Errorf("cache holds %d entries, want 1: the others were read from a snapshot older than their change", e)
	}
	for _, id := range ids[1:] {
		if got, _, err := readName(ctx, db.View, id); err != nil || got != "v1" {
			t.Fatalf("%s reads %q, %v after the warm-up, want the change v1", id, got, err)
		}
	}
}
