package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/sqlite"
	"custos/storetest"

	_ "modernc.org/sqlite" // the "sqlite" driver, for raw checks
)

// MustOpenDB opens a migrated database in a fresh temporary directory and
// closes it when the test ends.
func MustOpenDB(tb testing.TB, now func() time.Time) *sqlite.DB {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "custos.db")
	db, err := sqlite.Open(context.Background(), path, sqlite.Options{Now: now, Migrate: true})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(tb testing.TB, now func() time.Time) custos.Store {
		return MustOpenDB(tb, now)
	})
}

func TestMigrationNames(t *testing.T) {
	names := sqlite.MigrationNames()
	if len(names) == 0 || names[0] != "0001_init.sql" {
		t.Fatalf("MigrationNames: got %v, want 0001_init.sql first", names)
	}
	if !slices.IsSorted(names) {
		t.Errorf("MigrationNames: got %v, want sorted", names)
	}
	for _, n := range names {
		if len(n) < 10 || strings.Trim(n[:4], "0123456789") != "" || n[4] != '_' || !strings.HasSuffix(n, ".sql") {
			t.Errorf("migration %q: want NNNN_name.sql", n)
		}
	}
}

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db := MustOpenDB(t, func() time.Time { return now })

	pending, err := db.PendingMigrations(ctx)
	if err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations after Open: got %v, %v, want none", pending, err)
	}
	// Applying again is a no-op.
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	rows, err := db.ReadPool().QueryContext(ctx, `SELECT name, applied_at FROM migrations ORDER BY name`)
	if err != nil {
		t.Fatalf("query migrations: %v", err)
	}
	var names []string
	for rows.Next() {
		var name string
		var at int64
		if err := rows.Scan(&name, &at); err != nil {
			t.Fatal(err)
		}
		if at != now.UnixMicro() {
			t.Errorf("%s applied_at: got %d, want %d", name, at, now.UnixMicro())
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, sqlite.MigrationNames()) {
		t.Errorf("recorded migrations: got %v, want %v", names, sqlite.MigrationNames())
	}

	// Reopening without Migrate accepts an up-to-date schema.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := sqlite.Open(ctx, db.Path(), sqlite.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenOutOfDate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "custos.db")
	_, err := sqlite.Open(ctx, path, sqlite.Options{})
	if code := custos.ErrorCode(err); code != custos.EINVALID {
		t.Fatalf("Open fresh without Migrate: got %v, want EINVALID", err)
	}
	const want = "Database schema is out of date; run custos migrate or start with --migrate."
	if msg := custos.ErrorMessage(err); msg != want {
		t.Errorf("message: got %q, want %q", msg, want)
	}

	// The refusal changed nothing; a migrating Open then succeeds.
	db, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatalf("Open with Migrate: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenNewerDatabase(t *testing.T) {
	ctx := t.Context()
	db := MustOpenDB(t, nil)
	if _, err := db.WritePool().ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES ('9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PendingMigrations(ctx); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("PendingMigrations: got %v, want EINVALID", err)
	}
	if err := db.Migrate(ctx); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("Migrate: got %v, want EINVALID", err)
	}
	for _, migrate := range []bool{false, true} {
		_, err := sqlite.Open(ctx, db.Path(), sqlite.Options{Migrate: migrate})
		if custos.ErrorCode(err) != custos.EINVALID || !strings.Contains(custos.ErrorMessage(err), "newer custos") {
			t.Errorf("Open(Migrate: %v): got %v, want EINVALID naming a newer custos", migrate, err)
		}
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "custos.db")
	_, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	if custos.ErrorCode(err) != custos.EINVALID || custos.ErrorMessage(err) != "Database directory does not exist." {
		t.Errorf("Open: got %v, want EINVALID about the directory", err)
	}
	if _, serr := os.Stat(filepath.Dir(path)); !os.IsNotExist(serr) {
		t.Errorf("Open created the directory")
	}
}

func TestPragmas(t *testing.T) {
	ctx := t.Context()
	db := MustOpenDB(t, nil)

	// journal_mode is stored in the file: any new connection sees WAL.
	raw, err := sql.Open("sqlite", db.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := raw.Close(); err != nil {
			t.Error(err)
		}
	})
	var mode string
	if err := raw.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode: got %q, want wal", mode)
	}

	tests := []struct {
		pragma string
		write  int
		read   int
	}{
		{pragma: "busy_timeout", write: 10000, read: 10000},
		{pragma: "foreign_keys", write: 1, read: 1},
		{pragma: "synchronous", write: 2, read: 2}, // FULL: a create is acknowledged only once on disk; walvfs.go relies on it
		{pragma: "secure_delete", write: 1, read: 1},
		{pragma: "query_only", write: 0, read: 1},
	}
	for _, tt := range tests {
		for _, pool := range []struct {
			name string
			db   *sql.DB
			want int
		}{{"write", db.WritePool(), tt.write}, {"read", db.ReadPool(), tt.read}} {
			var got int
			if err := pool.db.QueryRowContext(ctx, `PRAGMA `+tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != pool.want {
				t.Errorf("%s pool %s: got %d, want %d", pool.name, tt.pragma, got, pool.want)
			}
		}
	}
	if got := db.WritePool().Stats().MaxOpenConnections; got != 1 {
		t.Errorf("write pool: got %d connections, want 1", got)
	}
}

// TestShreddedKeyLeavesNoBytes checks that deleting a data key removes its
// bytes from the database file, not only from the table.
func TestShreddedKeyLeavesNoBytes(t *testing.T) {
	ctx := t.Context()
	db := MustOpenDB(t, nil)
	marker := []byte("WRAPPED-KEY-MARKER-0123456789abcdef")
	err := db.Update(ctx, func(tx custos.Tx) error {
		return tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "sub_a", Version: 1, KEKVersion: 1, Wrapped: marker, CreatedAt: tx.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if b := readFiles(t, db.Path()); !bytes.Contains(b, marker) {
		t.Fatalf("marker not found before delete: the scan is broken")
	}
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.DeleteDataKey(ctx, "sub_a") }); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if b := readFiles(t, db.Path()); bytes.Contains(b, marker) {
		t.Errorf("the deleted key's bytes are still in the database files")
	}
}

// readFiles returns the database file and its WAL, concatenated.
func readFiles(t *testing.T, path string) []byte {
	t.Helper()
	var all []byte
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestQueryTimeout(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "custos.db")
	// Migrate under the default timeout first: the short one below bounds
	// every statement, and the migrations outlast it under -race.
	mig, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := mig.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, path, sqlite.Options{QueryTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	// While one Update holds the only write connection, another gives up
	// after the query timeout instead of waiting forever.
	hold, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- db.Update(ctx, func(tx custos.Tx) error {
			close(hold)
			<-release
			return nil
		})
	}()
	<-hold
	err = db.Update(ctx, func(tx custos.Tx) error { return nil })
	if custos.ErrorCode(err) != custos.EUNAVAILABLE {
		t.Errorf("blocked Update: got %v, want EUNAVAILABLE (busy, retry later)", err)
	}
	// With a deadline of its own (an HTTP request's), an Update waits
	// past the query timeout for as long as that deadline allows.
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- db.Update(dctx, func(tx custos.Tx) error { return nil }) }()
	time.Sleep(10 * 50 * time.Millisecond)
	close(release)
	if err := <-waited; err != nil {
		t.Errorf("Update with a deadline, held for 10 query timeouts: %v, want it to wait and commit", err)
	}
	if err := <-done; err != nil {
		t.Errorf("holding Update: %v", err)
	}
}

func BenchmarkInsertSubject(b *testing.B) {
	db := MustOpenDB(b, nil)
	ctx := b.Context()
	sealed := storetest.BenchSealed()
	var i int
	for b.Loop() {
		i++
		id := custos.SubjectID(custos.NewID("sub"))
		lks := []custos.Lookup{{Field: "email", Hash: []byte("email" + string(id)), SubjectID: id},
			{Field: "mobile", Hash: []byte("mobile" + string(id)), SubjectID: id}}
		if err := db.Update(ctx, func(tx custos.Tx) error {
			return storetest.CreateCustomer(ctx, tx, id, sealed, lks, false)
		}); err != nil {
			b.Fatalf("Update %d: %v", i, err)
		}
	}
}
