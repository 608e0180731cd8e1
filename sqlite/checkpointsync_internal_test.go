package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"custos"
)

// openCheckpointTest opens a store whose checkpointer never runs by
// itself (the test runs its rounds), asks for a WAL restart past 4 frames,
// and lets fsync stand for the database file's syncs. It restores the
// package's settings when the test ends.
func openCheckpointTest(t *testing.T, path string, fsync func(*os.File) error) *DB {
	t.Helper()
	oldFrames, oldEvery, oldSync := walResetFrames, checkpointEvery, dbFileSync
	oldRounds, oldCatch := catchUpRounds, catchUpFrames
	walResetFrames, checkpointEvery, dbFileSync = 4, time.Hour, fsync
	t.Cleanup(func() {
		walResetFrames, checkpointEvery, dbFileSync = oldFrames, oldEvery, oldSync
		catchUpRounds, catchUpFrames = oldRounds, oldCatch
	})
	db, err := Open(context.Background(), path, Options{Migrate: true, ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCheckpointSyncsDatabaseFile: a PASSIVE round that copied frames
// syncs the database file itself, and one that copied nothing does not.
// Under load SQLite syncs the file only when a round copies the WAL to its
// end, which it never does while the writer commits, so the writer's
// restart synced every round's copies with every request waiting
// (BENCHMARKS.md, thirty-third session).
func TestCheckpointSyncsDatabaseFile(t *testing.T) {
	var syncs int
	db := openCheckpointTest(t, filepath.Join(t.TempDir(), "c.db"), func(f *os.File) error {
		syncs++
		return f.Sync()
	})
	db.checkpointPassive() // what Open's migrations left
	for i := range 5 {
		putSubject(t, db, custos.SubjectID(fmt.Sprintf("sub_%d", i)), "v", false)
	}
	syncs = 0
	copied, _, err := db.passiveRound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if copied == 0 || syncs != 1 {
		t.Fatalf("a round after five commits copied %d frames and synced the database file %d times, want some frames and 1 sync", copied, syncs)
	}
	copied, _, err = db.passiveRound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if copied != 0 || syncs != 1 {
		t.Fatalf("a round with nothing new copied %d frames and synced %d times in all, want 0 and still 1", copied, syncs)
	}
}

// TestCheckpointCatchesUp: past the WAL's limit, the checkpointer copies
// again what the writer committed during its round, up to catchUpRounds
// more rounds and while a round copies catchUpFrames or more, and only
// then asks the writer to start the WAL again, so that the writer's
// restart has little left to copy and sync.
func TestCheckpointCatchesUp(t *testing.T) {
	ctx := context.Background()
	var db *DB
	var syncs, commits int
	// Each sync stands for a round during which the writer committed:
	// one commit more each time. (SQLite starts the WAL again at the
	// first of them, because the round copied all of it, so the next
	// round copies only these commits; were they as many each time, the
	// WAL would look as the last round left it, and passiveRound would
	// take the round for one that copied nothing.)
	db = openCheckpointTest(t, filepath.Join(t.TempDir(), "c.db"), func(f *os.File) error {
		syncs++
		for range syncs {
			commits++
			if err := storeName(ctx, db, custos.SubjectID(fmt.Sprintf("sub_during_%d", commits)), "v", false); err != nil {
				return err
			}
		}
		return f.Sync()
	})
	for _, c := range []struct {
		name          string
		rounds, frame int
		wantSyncs     int
	}{
		{"no catch-up rounds", 0, 1, 1},
		{"two catch-up rounds", 2, 1, 3},
		{"rounds that copy fewer frames than the bound stop", 2, 1 << 20, 1},
	} {
		catchUpRounds, catchUpFrames = c.rounds, c.frame
		// Asked for by the last case: the writer would start the WAL
		// again after its next group.
		db.walReset.Store(false)
		// Enough commits to pass the WAL's limit (a tenth of the
		// database's pages at least), whatever the last case left.
		for i := range 30 {
			putSubject(t, db, custos.SubjectID(fmt.Sprintf("sub_%s_%d", c.name, i)), "v", false)
		}
		syncs = 0
		db.checkpointPassive()
		if syncs != c.wantSyncs {
			t.Errorf("%s: %d rounds copied and synced, want %d", c.name, syncs, c.wantSyncs)
		}
		if !db.walReset.Load() {
			t.Errorf("%s: the WAL is past its limit, but the writer was not asked to start it again", c.name)
		}
	}
}

// TestCheckpointSyncFailure: a failed sync of the database file may have
// lost copied pages that the kernel now holds as clean, and a WAL started
// again would lose them for good. So the store fails every later write,
// and the writer no longer starts the WAL again; nothing committed is
// lost, as a store opened again shows.
func TestCheckpointSyncFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	fail := false
	db := openCheckpointTest(t, path, func(f *os.File) error {
		if fail {
			return syscall.EIO
		}
		return f.Sync()
	})
	for i := range 5 {
		putSubject(t, db, custos.SubjectID(fmt.Sprintf("sub_%d", i)), "v", false)
	}
	fail = true
	db.checkpointPassive()
	if db.walReset.Load() {
		t.Fatal("the checkpointer asked for a WAL restart after its sync failed")
	}
	err := storeName(ctx, db, "sub_after", "v", false)
	if custos.ErrorCode(err) != custos.EINTERNAL || !errors.Is(err, syscall.EIO) {
		t.Fatalf("a write after the database file's sync failed: %v, want EINTERNAL wrapping EIO", err)
	}
	db.walReset.Store(true)
	db.resetWAL()
	if !db.walReset.Load() {
		t.Fatal("the writer started the WAL again after the database file's sync failed")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	fail = false
	db2, err := Open(ctx, path, Options{Migrate: true, ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	for i := range 5 {
		name, _, err := readName(ctx, db2.View, custos.SubjectID(fmt.Sprintf("sub_%d", i)))
		if err != nil || name != "v" {
			t.Fatalf("subject %d after opening the store again: %q, %v", i, name, err)
		}
	}
	if _, _, err := readName(ctx, db2.View, "sub_after"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("the refused write: %v, want ENOTFOUND", err)
	}
}
