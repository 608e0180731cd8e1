package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// TestMigrateUpReports: custos migrate up names each migration as it
// starts, with what an operator should know before a long one (0014
// rewrites the blind index), and how long each took; status agrees
// before and after.
func TestMigrateUpReports(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	if code, out, errOut := runCLI(t, ctx, "init", "--data", dir); code != 0 {
		t.Fatalf("init: code %d\n%s\n%s", code, out, errOut)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "custos.db"))
	if err != nil {
		t.Fatal(err)
	}
	// 0014 runs again on a table it has already cut, as on one before it.
	if _, err := db.ExecContext(ctx, `DELETE FROM migrations WHERE name = '0014_lookups_hash16.sql'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if code, out, errOut := runCLI(t, ctx, "migrate", "status", "--data", dir); code != 0 || out != "1 pending: 0014_lookups_hash16.sql\n" {
		t.Fatalf("migrate status: code %d, stdout %q, stderr %q; want 0 and the one pending", code, out, errOut)
	}
	code, out, errOut := runCLI(t, ctx, "migrate", "up", "--data", dir)
	if code != 0 {
		t.Fatalf("migrate up: code %d\n%s\n%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "applying 0014_lookups_hash16.sql: rewrites every blind-index key;") ||
		!strings.HasPrefix(lines[1], "applied 0014_lookups_hash16.sql in ") ||
		!strings.HasPrefix(lines[2], "applied 1 migrations in ") || !strings.HasSuffix(lines[2], "; schema up to date") {
		t.Errorf("migrate up printed:\n%s\nwant the migration's note, its time, and the total", out)
	}
	if code, out, _ := runCLI(t, ctx, "migrate", "status", "--data", dir); code != 0 || out != "schema up to date\n" {
		t.Errorf("migrate status after up: code %d, stdout %q", code, out)
	}
}
