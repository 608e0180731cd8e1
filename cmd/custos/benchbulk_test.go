package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestBenchBulk: `custos bench -bulk N` imports N generated customers into
// a node it serves and seeds N into another store, each a process of the
// binary, and reports what each stored with its wall time, CPU and peak
// memory (issue 7's bulk-load target). The loads ignore the caller's
// CUSTOS_ variables, judge nothing below the target's size, leave no
// personal data in the node's log, and remove their directory.
func TestBenchBulk(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs four processes of it")
	}
	bin := scaleBuild(t)
	tmp, out := t.TempDir(), filepath.Join(t.TempDir(), "bulk.json")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	run := func(extra ...string) (string, string) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "-bulk", "300", "-seed", "5", "-json", out}, extra...)...)
		// A store the loads must not use: with it, init and seed would fail.
		cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "CUSTOS_STORE=postgres://nobody@127.0.0.1:1/none", "CUSTOS_DATA=/nonexistent/custos")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("bench -bulk: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}
	stdout, stderr := run()
	var rep benchBulkReport
	readJSONFile(t, out, &rep)
	if rep.Kind != "bulk" || rep.Customers != 300 || rep.Seed != 5 || len(rep.Runs) != 2 {
		t.Fatalf("report: got kind %q, %d customers, seed %d, %d runs; want bulk, 300, 5, 2", rep.Kind, rep.Customers, rep.Seed, len(rep.Runs))
	}
	for i, want := range []string{"import", "seed"} {
		r := rep.Runs[i]
		if r.Name != want || r.Stored != 300 {
			t.Errorf("run %d: got %s storing %d, want %s storing 300", i, r.Name, r.Stored, want)
		}
		if r.WallSeconds <= 0 || r.CPUSeconds <= 0 || r.PeakRSSBytes < 1<<20 {
			t.Errorf("%s: wall %.3fs, CPU %.3fs, peak %d bytes: want each measured", r.Name, r.WallSeconds, r.CPUSeconds, r.PeakRSSBytes)
		}
		if r.Met {
			t.Errorf("%s: judged met on 300 customers; only a load of %d is judged", r.Name, bulkTargetCustomers)
		}
	}
	if rep.Runs[0].ClientCPUSeconds <= 0 {
		t.Errorf("import: custos import's own CPU not measured")
	}
	if !strings.Contains(stdout, "judges nothing") || strings.Contains(stdout, "met   ") {
		t.Errorf("stdout should judge nothing for 300 customers:\n%s", stdout)
	}
	if !strings.Contains(stderr, "custos import of customers.csv") {
		t.Errorf("stderr does not report progress:\n%s", stderr)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("bench -bulk left %d entries in its temporary directory's parent", len(left))
	}

	// Kept: the node's log holds none of the customers' values.
	_, stderr = run("-keep", "-quiet")
	dir := strings.TrimSpace(strings.TrimPrefix(stderr[strings.LastIndex(stderr, "bench: data kept in "):], "bench: data kept in "))
	f, err := os.Open(filepath.Join(dir, "customers.csv"))
	if err != nil {
		t.Fatalf("kept directory %q: %v", dir, err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 301 {
		t.Fatalf("customers.csv: %d rows, %v; want a header and 300", len(rows), err)
	}
	log, err := os.ReadFile(filepath.Join(dir, "import", "serve.log"))
	if err != nil || !bytes.Contains(log, []byte("listening")) {
		t.Fatalf("serve.log: %v\n%s", err, log)
	}
	for _, row := range rows[1:] {
		for _, v := range []string{row[4], row[5], row[6]} { // id_number, mobile, email
			if bytes.Contains(log, []byte(v)) {
				t.Fatalf("serve.log holds a customer's value")
			}
		}
	}
}

// TestBenchBulkPostgres: with -store postgres://…, -bulk loads into two
// schemas it makes in that database, reports the store, and drops them
// afterwards, or keeps them with -keep; an operator's CUSTOS_STORE still
// receives nothing.
func TestBenchBulkPostgres(t *testing.T) {
	base := os.Getenv("CUSTOS_TEST_POSTGRES")
	if base == "" {
		t.Skip("CUSTOS_TEST_POSTGRES not set: PostgreSQL tests skipped (see .ci/run)")
	}
	if testing.Short() {
		t.Skip("builds the binary and runs four processes of it")
	}
	bin := scaleBuild(t)
	db := scaleDB(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	schemas := func() []string {
		t.Helper()
		rows, err := db.QueryContext(ctx, `SELECT nspname FROM pg_namespace WHERE nspname LIKE 'custos_bulk_%' ORDER BY nspname`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		return names
	}
	before := schemas()
	out := filepath.Join(t.TempDir(), "bulk.json")
	run := func(extra ...string) (string, string) {
		cmd := exec.CommandContext(ctx, bin, append([]string{"bench", "-bulk", "200", "-seed", "5", "-quiet", "-json", out, "-store", base}, extra...)...)
		cmd.Env = append(os.Environ(), "CUSTOS_STORE=postgres://nobody@127.0.0.1:1/none", "CUSTOS_DATA=/nonexistent/custos")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("bench -bulk -store: %v\n%s\n%s", err, stdout.String(), stderr.String())
		}
		return stdout.String(), stderr.String()
	}

	stdout, _ := run()
	var rep benchBulkReport
	readJSONFile(t, out, &rep)
	if rep.Store != "postgres" || len(rep.Runs) != 2 {
		t.Fatalf("report: store %q, %d runs; want postgres, 2", rep.Store, len(rep.Runs))
	}
	for _, r := range rep.Runs {
		if r.Stored != 200 || r.WallSeconds <= 0 || r.CPUSeconds <= 0 || r.PeakRSSBytes < 1<<20 {
			t.Errorf("%s: stored %d, wall %.3fs, CPU %.3fs, peak %d bytes; want 200 stored and each measured",
				r.Name, r.Stored, r.WallSeconds, r.CPUSeconds, r.PeakRSSBytes)
		}
	}
	if !strings.Contains(stdout, "into PostgreSQL") || !strings.Contains(stdout, "PostgreSQL's own processes are not counted") {
		t.Errorf("stdout does not name the store and what its peak leaves out:\n%s", stdout)
	}
	if after := schemas(); !slices.Equal(after, before) {
		t.Errorf("schemas left behind: before %v, after %v", before, after)
	}

	// Kept: the two schemas named hold the customers each load stored.
	_, stderr := run("-keep")
	m := regexp.MustCompile(`schemas kept: (custos_bulk_\w+_import) and (custos_bulk_\w+_seed)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr does not name the kept schemas:\n%s", stderr)
	}
	if dir, ok := strings.CutPrefix(stderr[strings.LastIndex(stderr, "bench: data kept in "):], "bench: data kept in "); ok {
		t.Cleanup(func() { os.RemoveAll(strings.TrimSpace(strings.SplitN(dir, "\n", 2)[0])) })
	}
	for _, schema := range m[1:] {
		t.Cleanup(func() { db.Exec(`DROP SCHEMA IF EXISTS ` + schema + ` CASCADE`) })
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+schema+`.subjects`).Scan(&n); err != nil || n != 200 {
			t.Errorf("%s.subjects: %d rows, %v; want 200", schema, n, err)
		}
	}
}

// TestBenchBulkFlags: -bulk refuses a size below one and the flags of a
// workload run, naming them.
func TestBenchBulkFlags(t *testing.T) {
	ctx := context.Background()
	env := func(string) string { return "" }
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "-bulk", "0"}, "-bulk must be ≥ 1"},
		{[]string{"bench", "-bulk", "10", "-c", "16"}, "not -c"},
		{[]string{"bench", "-bulk", "10", "-data", "x"}, "not -data"},
		{[]string{"bench", "-bulk", "10", "-store", "sqlite:/tmp/x.db"}, "-bulk -store takes a postgres:// URL"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, tc.args, &stdout, &stderr, env); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
