package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchScaleRuns: a -reuse run records how many customers its store
// held, and -scale pairs real runs on a larger and a smaller store, giving
// each pair's ratio of the read's p50 from the reports; stores of other
// sizes than the target's are not judged.
func TestBenchScaleRuns(t *testing.T) {
	ctx, _ := benchTest(t)
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	stores := map[string]int{"large": 60, "small": 20}
	reports := map[string]string{}
	for name, n := range stores {
		dir := t.TempDir()
		if code := run(ctx, []string{"seed", "-subjects", strconv.Itoa(n), "-records", "0", "-seed", "9", "-quiet", "--data", dir}, &stdout, &stderr, env); code != 0 {
			t.Fatalf("seed %s: exit %d\n%s", name, code, stderr.String())
		}
		file := filepath.Join(t.TempDir(), name+".json")
		rep := runBenchJSON(t, ctx, []string{"bench", "-reuse", "-data", dir, "-subjects", "10", "-c", "2", "-duration", "300ms",
			"-workloads", "read", "-json", file}, file, env, &stdout, &stderr)
		if rep.StoreSubjects != n || rep.Subjects != 10 {
			t.Fatalf("%s: store_subjects %d, subjects %d; want %d and 10", name, rep.StoreSubjects, rep.Subjects, n)
		}
		reports[name] = file
	}
	out := filepath.Join(t.TempDir(), "scale.json")
	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"bench", "-scale", reports["large"], "-scale-small", reports["small"], "-json", out}, &stdout, &stderr, env); code != 0 {
		t.Fatalf("-scale: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	var sc benchScaleReport
	readJSONFile(t, out, &sc)
	p50 := func(path string) float64 {
		var r benchReport
		readJSONFile(t, path, &r)
		for _, x := range r.Results {
			if x.Workload == "read" && x.Concurrency == 2 {
				return x.P50ms
			}
		}
		t.Fatalf("%s: no read step at c=2", path)
		return 0
	}
	want := p50(reports["large"]) / p50(reports["small"])
	if sc.LargeStore != 60 || sc.SmallStore != 20 || sc.Pairs != 1 || len(sc.Steps) != 1 || sc.Steps[0].Concurrency != 2 ||
		sc.Steps[0].Ratio != want {
		t.Fatalf("-scale: got %+v, want stores 60 and 20, one pair, read c=2 with ratio %g", sc, want)
	}
	if sc.Target != nil || len(sc.Notes) == 0 || !strings.Contains(stdout.String(), "did not measure") {
		t.Errorf("-scale judged stores of 60 and 20 at c=2: %+v\n%s", sc.Target, stdout.String())
	}
}

// TestBenchScaleJudge: -scale judges the target on the median of the
// pairs' ratios at c=16 for 10,000,000 customers against 10,000, and
// refuses reports it cannot pair.
func TestBenchScaleJudge(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 20, 0, 0, 0, time.UTC)
	runAt := func(store int, p50 float64, primed bool) benchReport {
		r := benchReport{Store: "sqlite:/x/custos.db", Subjects: 100, StoreSubjects: store, DurationSec: 10, StartedAt: t0,
			Results: []benchResult{
				{Workload: "ceiling", Concurrency: 16, Requests: 100, Throughput: 30000},
				{Workload: "read", Concurrency: 16, Requests: 100, Throughput: 5000, P50ms: p50},
			}}
		if primed {
			r.PrimeSeconds = 30
		}
		return r
	}
	judge := func(large, small string) *benchScaleReport {
		t.Helper()
		sc, err := benchScale(strings.Split(large, ","), strings.Split(small, ","))
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	small := writeBenchReports(t, runAt(10_000, 1.0, true), runAt(10_000, 2.0, true), runAt(10_000, 1.0, true))
	// Ratios 1.5, 1.1 and 2.5: median 1.5, met although one pair is over 2.
	sc := judge(writeBenchReports(t, runAt(10_000_000, 1.5, true), runAt(10_000_000, 2.2, true), runAt(10_000_000, 2.5, true)), small)
	if sc.Target == nil || !sc.Target.Met || sc.Steps[0].Ratio != 1.5 || sc.Steps[0].RatioMin != 1.1 || sc.Steps[0].RatioMax != 2.5 {
		t.Errorf("ratios 1.5, 1.1, 2.5: got %+v, step %+v; want met at 1.5 (1.1–2.5)", sc.Target, sc.Steps[0])
	}
	if !strings.Contains(sc.Target.Figure, "primed") {
		t.Errorf("figure %q does not say the runs were primed", sc.Target.Figure)
	}
	// Ratios 2.1, 1.2 and 3: median 2.1, missed.
	sc = judge(writeBenchReports(t, runAt(10_000_000, 2.1, true), runAt(10_000_000, 2.4, true), runAt(10_000_000, 3, true)), small)
	if sc.Target == nil || sc.Target.Met || sc.Steps[0].Ratio != 2.1 {
		t.Errorf("ratios 2.1, 1.2, 3: got %+v; want missed at 2.1", sc.Target)
	}
	// A million customers is not the target's store: not judged.
	sc = judge(writeBenchReports(t, runAt(1_000_000, 1.2, true)), writeBenchReports(t, runAt(10_000, 1.0, true)))
	if sc.Target != nil || len(sc.Notes) == 0 {
		t.Errorf("1M against 10k judged: %+v", sc.Target)
	}

	old := runAt(10_000_000, 1.5, true)
	old.StoreSubjects = 0
	for _, tc := range []struct {
		name         string
		large, small string
		want         string
	}{
		{"uneven", writeBenchReports(t, runAt(10_000_000, 1.5, true)), small, "-scale has 1 reports and -scale-small 3"},
		{"prime", writeBenchReports(t, runAt(10_000_000, 1.5, false)), writeBenchReports(t, runAt(10_000, 1.0, true)), "differ in -prime"},
		{"swapped", writeBenchReports(t, runAt(10_000, 1.0, true)), writeBenchReports(t, runAt(10_000_000, 1.5, true)), "give the large store's reports to -scale"},
		{"no store size", writeBenchReports(t, old), writeBenchReports(t, runAt(10_000, 1.0, true)), "not a -reuse run"},
		{"two stores on a side", writeBenchReports(t, runAt(10_000_000, 1.5, true), runAt(9_000_000, 1.5, true)),
			writeBenchReports(t, runAt(10_000, 1.0, true), runAt(10_000, 1.0, true)), "each side is one store"},
	} {
		_, err := benchScale(strings.Split(tc.large, ","), strings.Split(tc.small, ","))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"bench", "-scale", small, "-scale-small", small, "-c", "16"}, &stdout, &stderr, func(string) string { return "" }); code != 2 ||
		!strings.Contains(stderr.String(), "not -c") {
		t.Errorf("-scale with -c: exit %d, %q; want 2 naming -c", code, stderr.String())
	}
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
