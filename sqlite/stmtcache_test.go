package sqlite_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"custos"
	"custos/sqlite"
)

// TestStatementCache checks that statements end up prepared on both pools
// after their first use, and that the prepared path returns the same rows,
// keeps constraint errors, and survives a member's savepoint rollback.
func TestStatementCache(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	db := MustOpenDB(t, func() time.Time { return now })
	if w, r := db.CachedStatements(); w != 0 || r != 0 {
		t.Fatalf("fresh store: %d write and %d read statements prepared, want none", w, r)
	}
	insert := func(i int) error {
		return db.Update(ctx, func(tx custos.Tx) error {
			return tx.InsertSubject(ctx, &custos.StoredSubject{ID: custos.SubjectID(fmt.Sprintf("sub_%d", i)),
				Sealed: map[string][]byte{"email": {byte(i)}}, CreatedAt: now, UpdatedAt: now})
		})
	}
	read := func(i int) []byte {
		t.Helper()
		var got []byte
		if err := db.View(ctx, func(tx custos.Tx) error {
			st, err := tx.GetSubject(ctx, custos.SubjectID(fmt.Sprintf("sub_%d", i)))
			if err == nil {
				got = st.Sealed["email"]
			}
			return err
		}); err != nil {
			t.Fatalf("GetSubject %d: %v", i, err)
		}
		return got
	}
	for i := range 5 {
		if err := insert(i); err != nil {
			t.Fatalf("InsertSubject %d: %v", i, err)
		}
		if got := read(i); !bytes.Equal(got, []byte{byte(i)}) {
			t.Fatalf("subject %d: sealed email %v, want [%d]", i, got, i)
		}
	}
	w, r := db.CachedStatements()
	if w == 0 || r == 0 {
		t.Fatalf("after 5 inserts and reads: %d write and %d read statements prepared, want some of each", w, r)
	}
	// A duplicate through the prepared insert is still a conflict, and a
	// member that fails after writing leaves nothing behind.
	if err := insert(1); custos.ErrorCode(err) != custos.ECONFLICT {
		t.Fatalf("duplicate insert: got %v, want ECONFLICT", err)
	}
	err := db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_rolled_back", Sealed: map[string][]byte{"email": {7}},
			CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return custos.Errorf(custos.EINVALID, "refused after writing")
	})
	if custos.ErrorCode(err) != custos.EINVALID {
		t.Fatalf("failing member: got %v, want EINVALID", err)
	}
	if err := db.View(ctx, func(tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_rolled_back")
		return err
	}); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("rolled-back subject: got %v, want ENOTFOUND", err)
	}
	for i := range 5 {
		if got := read(i); !bytes.Equal(got, []byte{byte(i)}) {
			t.Fatalf("subject %d on the prepared path: sealed email %v, want [%d]", i, got, i)
		}
	}
	if w2, r2 := db.CachedStatements(); w2 < w || r2 < r {
		t.Fatalf("statements prepared went from %d/%d to %d/%d, want no fewer", w, r, w2, r2)
	}
}

// TestCheckpointer: the writer does not checkpoint, so committed pages
// reach the database file only through the background checkpointer; a
// marker written through Update must show up in the main file (not only
// in the WAL) while the store stays open.
func TestCheckpointer(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	db := MustOpenDB(t, func() time.Time { return now })
	marker := []byte("checkpointer-marker-4f1c9a")
	if err := db.Update(ctx, func(tx custos.Tx) error {
		return tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_marker", Sealed: map[string][]byte{"email": marker},
			CreatedAt: now, UpdatedAt: now})
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(200 * sqlite.CheckpointEvery)
	for {
		b, err := os.ReadFile(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, marker) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("marker not in %s after %v: the checkpointer did not copy the WAL", db.Path(), 200*sqlite.CheckpointEvery)
		}
		time.Sleep(sqlite.CheckpointEvery / 5)
	}
}

// TestCheckpointerBoundsWAL: under a sustained write load the WAL must not
// keep growing; the writer starts it again once it passes the reset
// size (a 1M import once grew it to 9 GB with PASSIVE checkpoints only):
// here a tenth of the 40 MB written (walLimitFor), far below what an
// unbounded WAL would reach.
func TestCheckpointerBoundsWAL(t *testing.T) {
	sqlite.SetWALResetFrames(t, 64)
	sqlite.SetCheckpointEvery(t, 10*time.Millisecond)
	ctx := t.Context()
	now := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	db := MustOpenDB(t, func() time.Time { return now })
	blob := bytes.Repeat([]byte{0x5a}, 8<<10)
	const updates, perUpdate = 600, 8 // about 40 MB of pages in all
	var maxWAL int64
	for u := range updates {
		if err := db.Update(ctx, func(tx custos.Tx) error {
			for i := range perUpdate {
				if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: custos.SubjectID(fmt.Sprintf("sub_%d_%d", u, i)),
					Sealed: map[string][]byte{"address": blob}, CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(db.Path() + "-wal"); err == nil {
			maxWAL = max(maxWAL, fi.Size())
		}
	}
	const bound = 8 << 20
	if maxWAL > bound {
		t.Fatalf("WAL reached %d MiB during %d writes of %d KiB, want at most %d MiB", maxWAL>>20, updates, perUpdate*len(blob)>>10, bound>>20)
	}
	t.Logf("largest WAL seen: %.1f MiB", float64(maxWAL)/(1<<20))
}
