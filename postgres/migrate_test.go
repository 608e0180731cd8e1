package postgres_test

import (
	"crypto/sha256"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/postgres"
	"custos/sqlite"
)

// TestMigrationNames checks that both stores carry the same migrations.
// It needs no server.
func TestMigrationNames(t *testing.T) {
	names := postgres.MigrationNames()
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
	if want := sqlite.MigrationNames(); !slices.Equal(names, want) {
		t.Errorf("postgres migrations %v, sqlite migrations %v: want the same names", names, want)
	}
	// The directories themselves, so a file the embed pattern misses is
	// caught too.
	list := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	if pg, lite := list("migration"), list(filepath.Join("..", "sqlite", "migration")); !slices.Equal(pg, lite) {
		t.Errorf("postgres/migration holds %v, sqlite/migration holds %v: want the same names", pg, lite)
	}
}

// appliedRows reads the migrations table directly.
func appliedRows(t *testing.T, pool *sql.DB) (names []string, at []int64) {
	t.Helper()
	rows, err := pool.QueryContext(t.Context(), `SELECT name, applied_at FROM migrations ORDER BY name`)
	if err != nil {
		t.Fatalf("query migrations: %v", err)
	}
	for rows.Next() {
		var name string
		var a int64
		if err := rows.Scan(&name, &a); err != nil {
			t.Fatal(err)
		}
		names, at = append(names, name), append(at, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	return names, at
}

func TestMigrate(t *testing.T) {
	ctx := t.Context()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	url := MustCreateSchema(t)
	db := MustOpen(t, url, postgres.Options{Now: func() time.Time { return now }, Migrate: true})

	pending, err := db.PendingMigrations(ctx)
	if err != nil || len(pending) != 0 {
		t.Fatalf("PendingMigrations after Open: got %v, %v, want none", pending, err)
	}
	// Applying again is a no-op.
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	names, at := appliedRows(t, db.Pool())
	if !slices.Equal(names, postgres.MigrationNames()) {
		t.Errorf("recorded migrations: got %v, want %v (each once)", names, postgres.MigrationNames())
	}
	for i, a := range at {
		if a != now.UnixMicro() {
			t.Errorf("%s applied_at: got %d, want %d", names[i], a, now.UnixMicro())
		}
	}
	applied, err := db.AppliedMigrations(ctx)
	if err != nil || !slices.Equal(applied, postgres.MigrationNames()) {
		t.Errorf("AppliedMigrations: got %v, %v, want %v", applied, err, postgres.MigrationNames())
	}

	// Reopening without Migrate accepts an up-to-date schema.
	db2, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentMigrate starts several nodes on an empty schema at once:
// each migration must be applied, and recorded, exactly once.
func TestConcurrentMigrate(t *testing.T) {
	url := MustCreateSchema(t)
	const nodes = 6
	dbs := make([]*postgres.DB, nodes)
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { dbs[i], errs[i] = postgres.Open(t.Context(), url, postgres.Options{Migrate: true}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d Open: %v", i, err)
			continue
		}
		t.Cleanup(func() {
			if err := dbs[i].Close(); err != nil {
				t.Error(err)
			}
		})
	}
	if t.Failed() {
		t.FailNow()
	}
	names, _ := appliedRows(t, dbs[0].Pool())
	if !slices.Equal(names, postgres.MigrationNames()) {
		t.Errorf("recorded migrations: got %v, want %v", names, postgres.MigrationNames())
	}
}

func TestOpenOutOfDate(t *testing.T) {
	ctx := t.Context()
	url := MustCreateSchema(t)
	_, err := postgres.Open(ctx, url, postgres.Options{})
	if code := custos.ErrorCode(err); code != custos.EINVALID {
		t.Fatalf("Open fresh without Migrate: got %v, want EINVALID", err)
	}
	const want = "Database schema is out of date; run custos migrate or start with --migrate."
	if msg := custos.ErrorMessage(err); msg != want {
		t.Errorf("message: got %q, want %q", msg, want)
	}

	// The refusal changed nothing; a migrating Open then succeeds.
	db := MustOpen(t, url, postgres.Options{Migrate: true})
	names, _ := appliedRows(t, db.Pool())
	if !slices.Equal(names, postgres.MigrationNames()) {
		t.Errorf("recorded migrations: got %v, want %v", names, postgres.MigrationNames())
	}
}

func TestOpenNewerDatabase(t *testing.T) {
	ctx := t.Context()
	url := MustCreateSchema(t)
	db := MustOpen(t, url, postgres.Options{Migrate: true})
	if _, err := db.Pool().ExecContext(ctx, `INSERT INTO migrations (name, applied_at) VALUES ('9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PendingMigrations(ctx); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("PendingMigrations: got %v, want EINVALID", err)
	}
	if err := db.Migrate(ctx); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("Migrate: got %v, want EINVALID", err)
	}
	const want = "The database was migrated by a newer custos; upgrade custos to use it."
	for _, migrate := range []bool{false, true} {
		_, err := postgres.Open(ctx, url, postgres.Options{Migrate: migrate})
		if custos.ErrorCode(err) != custos.EINVALID || custos.ErrorMessage(err) != want {
			t.Errorf("Open(Migrate: %v): got %v, want EINVALID %q", migrate, err, want)
		}
	}
}

// TestLookupsHash16 (migration 0014): a store written before it, with
// 32-byte blind-index keys, comes out with every key cut to its first 16
// bytes, the customer found by the cut key as by the key this custos
// computes (keys.IndexSize); afterwards a 32-byte key, as an older node
// still running during an upgrade would write, is refused by name, and
// nothing of the refused transaction is stored.
func TestLookupsHash16(t *testing.T) {
	ctx := t.Context()
	url := MustCreateSchema(t)
	db := MustOpen(t, url, postgres.Options{Migrate: true})
	pool := db.Pool()
	// The store as it was before 0014.
	if _, err := pool.ExecContext(ctx, `ALTER TABLE lookups DROP CONSTRAINT lookups_hash_not_before_0014;
		DELETE FROM migrations WHERE name = '0014_lookups_hash16.sql'`); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0).UTC()
	long := map[custos.SubjectID][]byte{}
	for i := range 50 {
		id := custos.SubjectID(fmt.Sprintf("sub_%06d", i))
		h := sha256.Sum256([]byte(id))
		long[id] = h[:]
		err := db.Update(ctx, func(tx custos.Tx) error {
			if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": {1}}, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			return tx.InsertLookups(ctx, []custos.Lookup{{Field: "mobile", Hash: h[:], SubjectID: id}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// As custos migrate up applies it, reporting its start and end.
	db = MustOpen(t, url, postgres.Options{NoSchemaCheck: true})
	pool = db.Pool()
	var reported []string
	if err := db.MigrateReporting(ctx, func(name string, done bool, took time.Duration) {
		reported = append(reported, fmt.Sprint(name, " done=", done, " timed=", took > 0))
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"0014_lookups_hash16.sql done=false timed=false", "0014_lookups_hash16.sql done=true timed=true"}; !slices.Equal(reported, want) {
		t.Errorf("MigrateReporting reported %q, want %q", reported, want)
	}
	var n, cut int
	if err := pool.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE octet_length(hash) = 16) FROM lookups`).Scan(&n, &cut); err != nil {
		t.Fatal(err)
	}
	if n != len(long) || cut != n {
		t.Errorf("after the migration: %d keys, %d of them 16 bytes; want %d and all", n, cut, len(long))
	}
	for id, h := range long {
		var got custos.SubjectID
		err := db.View(ctx, func(tx custos.Tx) error {
			var err error
			got, err = tx.FindLookup(ctx, "mobile", h[:16])
			return err
		})
		if err != nil || got != id {
			t.Errorf("FindLookup of %s's cut key: got %q, %v", id, got, err)
		}
	}

	// An older node's key: refused, naming the constraint, and the
	// subject of the same transaction is not stored.
	h := sha256.Sum256([]byte("older node"))
	err := db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_older", Sealed: map[string][]byte{"name": {1}}, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		return tx.InsertLookups(ctx, []custos.Lookup{{Field: "mobile", Hash: h[:], SubjectID: "sub_older"}})
	})
	if err == nil || !strings.Contains(err.Error(), "lookups_hash_not_before_0014") {
		t.Errorf("a 32-byte key after the migration: got %v, want a refusal naming lookups_hash_not_before_0014", err)
	}
	var stored int
	if err := pool.QueryRowContext(ctx, `SELECT count(*) FROM subjects WHERE id = 'sub_older'`).Scan(&stored); err != nil || stored != 0 {
		t.Errorf("the refused transaction's subject: %d rows, %v; want none", stored, err)
	}
}
