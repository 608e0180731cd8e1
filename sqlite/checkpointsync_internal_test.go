package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"custos"
)

// openCheckpointTest opens a store whose checkpointer never runs by
// itself (the test runs its rounds), asks for a WAL restart past 4 frames,
// and lets wb stand for the database file's writebacks. It restores the
// package's settings when the test ends.
func openCheckpointTest(t *testing.T, path string, wb func(*os.File) error) *DB {
	t.Helper()
	oldFrames, oldEvery, oldWriteback := walResetFrames, checkpointEvery, dbFileWriteback
	oldRounds, oldCatch := catchUpRounds, catchUpFrames
	walResetFrames, checkpointEvery, dbFileWriteback = 4, time.Hour, wb
	t.Cleanup(func() {
		walResetFrames, checkpointEvery, dbFileWriteback = oldFrames, oldEvery, oldWriteback
		catchUpRounds, catchUpFrames = oldRounds, oldCatch
	})
	db, err := Open(context.Background(), path, Options{Migrate: true, ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// putSubjects commits n subjects named after prefix, one a commit.
func putSubjects(t *testing.T, db *DB, prefix string, n int) {
	t.Helper()
	for i := range n {
		putSubject(t, db, custos.SubjectID(fmt.Sprintf("sub_%s_%d", prefix, i)), "v", false)
	}
}

// TestCheckpointStartsWriteback: a PASSIVE round that copied frames has
// the kernel start writing the database file, and one that copied nothing
// does not; the checkpointer's rounds do so only once the WAL is past its
// limit, when a restart that would write them all is next. Under load SQLite writebacks the file only when a round copies the
// WAL to its end, which it never does while the writer commits, so the
// writer's restart wrote every round's copies with every request waiting
// (BENCHMARKS.md, thirty-third session).
func TestCheckpointStartsWriteback(t *testing.T) {
	var writebacks int
	db := openCheckpointTest(t, filepath.Join(t.TempDir(), "c.db"), func(f *os.File) error {
		writebacks++
		return startWriteback(f)
	})
	db.checkpointPassive() // what Open's migrations left
	putSubjects(t, db, "first", 5)
	writebacks = 0
	copied, _, err := db.passiveRound(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if copied == 0 || writebacks != 1 {
		t.Fatalf("a round after five commits copied %d frames and started the database file's writeback %d times, want some frames and once", copied, writebacks)
	}
	copied, _, err = db.passiveRound(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if copied != 0 || writebacks != 1 {
		t.Fatalf("a round with nothing new copied %d frames and started writeback %d times in all, want 0 and still once", copied, writebacks)
	}

	for _, c := range []struct {
		name           string
		frames         int
		wantWritebacks int
	}{
		{"under the WAL's limit", 1 << 30, 0},
		{"past it", 4, 1},
	} {
		walResetFrames, catchUpRounds = c.frames, 0
		putSubjects(t, db, c.name, 5)
		writebacks = 0
		db.checkpointPassive()
		if writebacks != c.wantWritebacks {
			t.Errorf("a round of the checkpointer %s started writeback %d times, want %d", c.name, writebacks, c.wantWritebacks)
		}
	}
}

// TestCheckpointCatchesUp: past the WAL's limit, the checkpointer copies
// (and writes out) again what the writer committed during its round, up
// to catchUpRounds more rounds and while a round copies catchUpFrames or
// more, and only then asks the writer to start the WAL again, so that the
// writer's restart has little left to copy and sync.
func TestCheckpointCatchesUp(t *testing.T) {
	ctx := context.Background()
	var db *DB
	var writebacks, commits int
	// Each writeback stands for a round during which the writer committed:
	// one commit more each time. (SQLite starts the WAL again at the
	// first of them, because the round copied all of it, so the next
	// round copies only these commits; were they as many each time, the
	// WAL would look as the last round left it, and passiveRound would
	// take the round for one that copied nothing.)
	db = openCheckpointTest(t, filepath.Join(t.TempDir(), "c.db"), func(f *os.File) error {
		writebacks++
		for range writebacks {
			commits++
			if err := storeName(ctx, db, custos.SubjectID(fmt.Sprintf("sub_during_%d", commits)), "v", false); err != nil {
				return err
			}
		}
		return startWriteback(f)
	})
	for _, c := range []struct {
		name           string
		rounds, frame  int
		wantWritebacks int
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
		putSubjects(t, db, c.name, 30)
		writebacks = 0
		db.checkpointPassive()
		if writebacks != c.wantWritebacks {
			t.Errorf("%s: %d rounds copied and wrote out, want %d", c.name, writebacks, c.wantWritebacks)
		}
		if !db.walReset.Load() {
			t.Errorf("%s: the WAL is past its limit, but the writer was not asked to start it again", c.name)
		}
	}
}

// TestStartWriteback: the call reaches the kernel for an open file, and
// fails for a closed one.
func TestStartWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1<<16)); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(f); err != nil {
		t.Fatalf("writeback of an open file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := startWriteback(f); err == nil && runtime.GOOS == "linux" {
		t.Fatal("writeback of a closed file: no error")
	}
}

// TestCheckpointWALOverdue: past its limit the WAL is to be started again;
// past walOverdueFactor times that it is overdue too, and the writer's
// restart no longer waits for other processes' writers to pause (resetWAL).
func TestCheckpointWALOverdue(t *testing.T) {
	quietAuditFiling(t, auditFileChunk, auditFileIdleMax) // no frames but the test's
	ctx := context.Background()
	db := openCheckpointTest(t, filepath.Join(t.TempDir(), "c.db"), startWriteback)
	catchUpRounds = 0
	putSubjects(t, db, "overdue", 30)
	_, frames, err := db.passiveRound(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	var pages int64
	if err := db.ckpt.QueryRowContext(ctx, "SELECT page_count FROM pragma_page_count()").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if walLimitFor(pages) >= int64(frames/walOverdueFactor)-1 {
		t.Fatalf("a WAL of %d frames on %d pages: too few frames for the test's limits", frames, pages)
	}
	for _, c := range []struct {
		name           string
		limit          int
		reset, overdue bool
	}{
		{"within its limit", frames, false, false},
		{"past its limit", frames - 1, true, false},
		{"past twice its limit", frames/walOverdueFactor - 1, true, true},
	} {
		walResetFrames = c.limit
		db.walReset.Store(false)
		db.walOverdue.Store(false)
		db.checkpointPassive()
		if db.walReset.Load() != c.reset || db.walOverdue.Load() != c.overdue {
			t.Errorf("a WAL of %d frames, %s (%d): restart asked %v, overdue %v; want %v, %v",
				frames, c.name, c.limit, db.walReset.Load(), db.walOverdue.Load(), c.reset, c.overdue)
		}
	}
}
