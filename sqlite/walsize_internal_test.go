package sqlite

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// TestWALLimitFollowsDatabaseSize: a small database starts its WAL again
// past walResetFrames, as before; a large one lets it grow to a tenth of
// the database, at most maxWALResetFrames, and keeps the file that large
// (journal_size_limit), so that bulk writes' commit groups are copied by
// the checkpointer rather than by the writer (BENCHMARKS.md, twelfth
// session).
func TestWALLimitFollowsDatabaseSize(t *testing.T) {
	const page = 4096
	for _, c := range []struct {
		name      string
		pages     int64
		wantLimit int64
	}{
		{"empty", 1, int64(walResetFrames)},
		{"10k customers (25 MB)", 6_400, int64(walResetFrames)},
		{"just past ten times the reset size", 10*int64(walResetFrames) + 10, int64(walResetFrames) + 1},
		{"1 GiB", 1 << 18, 1 << 18 / 10},
		{"1M customers (2.5 GB)", 610_000, 61_000},
		{"1.5M customers", 960_000, maxWALResetFrames},
		{"10M customers", 6_400_000, maxWALResetFrames},
	} {
		limit := max(int64(walResetFrames), walLimitFor(c.pages))
		if limit != c.wantLimit {
			t.Errorf("%s: WAL reset past %d frames, want %d", c.name, limit, c.wantLimit)
		}
		size := walSizeLimit(limit, page)
		if size < 64<<20 {
			t.Errorf("%s: journal_size_limit %d, below the DSN's 64 MiB", c.name, size)
		}
		if grown := limit * (page + 24); size < grown {
			t.Errorf("%s: journal_size_limit %d would cut back a WAL grown to its reset size (%d bytes)", c.name, size, grown)
		}
	}

	// The store applies it: the checkpointer's round computes the limit
	// for the database it sees, and a restart by the writer sets it on
	// the write connection. No background rounds: the test runs them.
	oldFrames, oldEvery := walResetFrames, checkpointEvery
	walResetFrames, checkpointEvery = 4, time.Hour
	t.Cleanup(func() { walResetFrames, checkpointEvery = oldFrames, oldEvery })
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "custos.db"), Options{Migrate: true, Now: func() time.Time { return time.Unix(1e9, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var pages int64
	if err := db.ckpt.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	db.checkpointPassive()
	want := walSizeLimit(max(int64(walResetFrames), walLimitFor(pages)), page)
	if got := db.walSizeLimit.Load(); got != want {
		t.Fatalf("checkpointer wants journal_size_limit %d for %d pages, want %d", got, pages, want)
	}
	// Ask for a restart as the checkpointer does past the limit, and run
	// it as the idle writer would between two groups.
	db.walSizeLimit.Store(want + page)
	db.walReset.Store(true)
	db.resetWAL()
	var got int64
	if err := db.write.QueryRowContext(ctx, "PRAGMA journal_size_limit").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != want+page {
		t.Fatalf("write connection's journal_size_limit after a restart: %d, want %d", got, want+page)
	}
}
