package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeBenchReports writes each report as a -json file and returns their
// paths, comma-separated.
func writeBenchReports(t *testing.T, reps ...benchReport) string {
	t.Helper()
	var paths []string
	for i, r := range reps {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), "run"+string(rune('a'+i))+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return strings.Join(paths, ",")
}

// benchRun is one made-up run: its ceiling, read and create at c=16 and
// read at c=64.
func benchRun(start time.Time, ceiling, readRatio, creates, p99 float64, errs int64, codes []benchCode, rss int64) benchReport {
	return benchReport{Store: "sqlite (fresh, temporary directory)", Subjects: 10000, DurationSec: 5, StartedAt: start, TotalDuration: 270,
		Results: []benchResult{
			{Workload: "ceiling", Concurrency: 16, Requests: 100, Throughput: ceiling, CeilingRPS: ceiling, Ratio: 1},
			{Workload: "read", Concurrency: 16, Requests: 100, Throughput: ceiling * readRatio, CeilingRPS: ceiling, Ratio: readRatio, PeakRSSBytes: rss},
			{Workload: "create", Concurrency: 16, Requests: 100, Throughput: creates, CeilingRPS: ceiling, Ratio: creates / ceiling, Errors: errs, ErrorCodes: codes, WriterBusy: 0.8, GroupSize: 5},
			{Workload: "read", Concurrency: 64, Requests: 100, CeilingRPS: ceiling, P99ms: p99},
		}}
}

// TestBenchMerge: -merge reports each step's median over the runs (a
// share of the ceiling as the median of each run's own share), adds up
// the counts and errors with their codes, keeps the largest peak memory,
// notes each step's range, judges the targets on the medians, and writes
// JSON like a run's.
func TestBenchMerge(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	// The read's wake-ups a request, and the machine's idle share where
	// the run could read it (the second could not); the PostgreSQL read
	// cache's stale answers, ten times the wake-ups.
	// The creates' audit index filings: per 1,000 writes 1.5 times the
	// wake-ups, each taking ten times them in ms.
	woke := func(r benchReport, waits float64, idle *float64) benchReport {
		r.Results[1].WaitsPerRequest, r.Results[1].MachineIdle = waits, idle
		r.Results[1].CacheStale = int64(math.Round(waits * 10))
		r.Results[1].CacheKeysFilled = int64(math.Round(waits * 100))
		r.Results[1].LateJoins, r.Results[1].LateJoined = int64(math.Round(waits*20)), int64(math.Round(waits*200))
		r.Results[2].FilingsPerThousand, r.Results[2].FilingMs = 1.5*waits, 10*waits
		// The collector: ten times the wake-ups in cycles, as many ms of
		// marking a cycle, a hundred MiB times them live.
		r.Results[1].GCCycles, r.Results[1].GCMarkMsPerCycle = uint64(math.Round(waits*10)), waits*10
		r.Results[1].GCLiveBytes = uint64(waits * 100 * (1 << 20))
		return r
	}
	share := func(v float64) *float64 { return &v }
	files := writeBenchReports(t,
		woke(benchRun(t0, 30000, 0.30, 4000, 30, 0, nil, 100<<20), 0.5, share(0.2)),
		func() benchReport {
			r := benchRun(t0.Add(time.Hour), 40000, 0.20, 5200, 19, 2, []benchCode{{"unavailable", 2}}, 300<<20)
			r.Results[2].Note = "100 create bodies made on demand"
			return woke(r, 0.7, nil)
		}(),
		woke(benchRun(t0.Add(2*time.Hour), 39000, 0.25, 5100, 21, 1, []benchCode{{"transport", 1}}, 200<<20), 0.6, share(0.4)),
	)
	out, svg := filepath.Join(t.TempDir(), "merged.json"), filepath.Join(t.TempDir(), "merged.svg")
	var stdout, stderr bytes.Buffer
	rep := runBenchJSON(t, context.Background(), []string{"bench", "-merge", files, "-json", out, "-svg", svg}, out, func(string) string { return "" }, &stdout, &stderr)
	if b, err := os.ReadFile(svg); err != nil || !strings.Contains(string(b), "median of 3 runs from 2026-12-03 04:00 UTC") {
		t.Errorf("-svg: %v; want a chart that says it is the median of 3 runs", err)
	}
	if rep.Rounds != 3 || len(rep.MergedFrom) != 3 || rep.MergedFrom[1] != "2026-12-03T05:00:00Z" || rep.TotalDuration != 810 {
		t.Errorf("rounds %d, merged from %v, total %v s; want 3 runs, the second started 05:00, 810 s", rep.Rounds, rep.MergedFrom, rep.TotalDuration)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("got %d steps, want 4", len(rep.Results))
	}
	ceil, read, create, read64 := rep.Results[0], rep.Results[1], rep.Results[2], rep.Results[3]
	if ceil.Throughput != 39000 || ceil.Requests != 300 {
		t.Errorf("ceiling: %.0f/s, %d requests; want the median 39,000 and 300", ceil.Throughput, ceil.Requests)
	}
	// The median of the runs' own shares (0.30, 0.20, 0.25), not the
	// median read over the median ceiling (9,000 / 39,000).
	if read.Ratio != 0.25 || read.Throughput != 9000 || read.PeakRSSBytes != 300<<20 {
		t.Errorf("read c=16: ratio %.3f, %.0f/s, peak %d MiB; want 0.25, 9,000/s, 300 MiB", read.Ratio, read.Throughput, read.PeakRSSBytes>>20)
	}
	if read.GCCycles != 18 || read.GCMarkMsPerCycle != 6 || read.GCLiveBytes != uint64(0.6*100*(1<<20)) {
		t.Errorf("read c=16: %d collections, %.1f ms of marking a cycle, %d bytes live; want the runs' 5 + 7 + 6, the median 6 ms and 60 MiB",
			read.GCCycles, read.GCMarkMsPerCycle, read.GCLiveBytes)
	}
	if read.CacheStale != 18 {
		t.Errorf("read c=16: %d stale cached answers, want the runs' 5 + 7 + 6", read.CacheStale)
	}
	if read.CacheKeysFilled != 180 {
		t.Errorf("read c=16: %d lookup keys filled, want the runs' 50 + 70 + 60", read.CacheKeysFilled)
	}
	if read.LateJoins != 36 || read.LateJoined != 360 {
		t.Errorf("read c=16: %d late joins taking %d requests, want the runs' 10 + 14 + 12 and 100 + 140 + 120", read.LateJoins, read.LateJoined)
	}
	if read.WaitsPerRequest != 0.6 || read.MachineIdle == nil || math.Abs(*read.MachineIdle-0.3) > 1e-9 || ceil.MachineIdle != nil {
		idle := "none"
		if read.MachineIdle != nil {
			idle = fmt.Sprint(*read.MachineIdle)
		}
		t.Errorf("read c=16: %.2f waits a request, machine idle %s; ceiling idle set %v; want the median 0.6, the median of the two known shares 0.3, and none for the ceiling",
			read.WaitsPerRequest, idle, ceil.MachineIdle != nil)
	}
	if create.Throughput != 5100 || create.Errors != 3 || len(create.ErrorCodes) != 2 ||
		create.ErrorCodes[0] != (benchCode{"unavailable", 2}) || create.ErrorCodes[1] != (benchCode{"transport", 1}) {
		t.Errorf("create c=16: %.0f/s, %d errors %v; want 5,100/s, 3 errors, unavailable×2 then transport×1", create.Throughput, create.Errors, create.ErrorCodes)
	}
	if want := "median of 3 runs: 4,000–5,200 req/s, p99 0.000–0.000 ms; run 2: 100 create bodies made on demand"; create.Note != want {
		t.Errorf("create note %q, want %q", create.Note, want)
	}
	if math.Abs(create.FilingsPerThousand-0.9) > 1e-9 || math.Abs(create.FilingMs-6) > 1e-9 {
		t.Errorf("create c=16: %.2f filings per 1,000 writes, %.2f ms each; want the medians 0.9 and 6", create.FilingsPerThousand, create.FilingMs)
	}
	if read64.P99ms != 21 {
		t.Errorf("read c=64 p99 %.1f ms, want the median 21", read64.P99ms)
	}
	verdict := map[string]bool{}
	for _, v := range rep.Targets {
		verdict[strings.Fields(v.Target)[0]+" "+strings.Fields(v.Target)[1]] = v.Met
	}
	if len(rep.Targets) != 4 || verdict["masked read"] || !verdict["durable creates"] || verdict["zero errors"] {
		t.Errorf("targets %+v; want read missed at 25 %%, creates met at 5,100/s, p99 missed at 21 ms, errors missed", rep.Targets)
	}
	for _, s := range []string{"the median of 3 runs, started 2026-12-03T04:00:00Z", "create c=16: writer busy 80 %",
		"0.90 audit index filings per 1,000 writes, 6.0 ms each", "3 in 3 runs of 3 steps at c=16,64"} {
		if !strings.Contains(stdout.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, stdout.String())
		}
	}

	if got := benchMedian([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 1–4: %v, want 2.5", got)
	}
}

// TestBenchMergeRefuses: runs that cannot be merged, and flags of a run
// beside -merge, are refused with what differs; a PostgreSQL merge
// keeps PostgreSQL's notes.
func TestBenchMergeRefuses(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	run1 := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	pg := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	pg.Store = "postgres://***@127.0.0.1:5432/b"
	short := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	short.Results = short.Results[:3]
	more := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	more.Subjects = 2000
	merged := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	merged.Rounds = 2
	primed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	primed.PrimeSeconds = 12
	skewed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	skewed.Zipf = 1.1
	warmed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	warmed.Warm = &benchWarm{Listed: 10, Loaded: 10}
	pgAnalyzed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	pgAnalyzed.Store, pgAnalyzed.AnalyzeSeconds = pg.Store, 0.4
	committed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	committed.ReadAuditDurability = "committed"
	tunedGC := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	tunedGC.GC = "headroom 128 MiB"
	oneProc := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	oneProc.Procs = 1
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"one file", []string{"-merge", writeBenchReports(t, run1)}, "two or more"},
		{"stores", []string{"-merge", writeBenchReports(t, run1, pg)}, "ran on sqlite"},
		{"steps", []string{"-merge", writeBenchReports(t, run1, short)}, "ran the steps ceiling c=16, read c=16, create c=16, read c=64"},
		{"customers", []string{"-merge", writeBenchReports(t, run1, more)}, "seeded 10000 customers"},
		{"not a report", []string{"-merge", writeBenchReports(t, run1) + "," + bad}, "bad.json is not a custos bench JSON report"},
		{"run flags", []string{"-merge", writeBenchReports(t, run1, run1), "-c", "16"}, "takes only -json and -svg, not -c"},
		{"a merge", []string{"-merge", writeBenchReports(t, run1, merged)}, "is itself the median of 2 runs"},
		{"primed", []string{"-merge", writeBenchReports(t, run1, primed)}, "differ in -prime"},
		{"zipf", []string{"-merge", writeBenchReports(t, run1, skewed)}, "with -zipf 0, "},
		{"warmed", []string{"-merge", writeBenchReports(t, run1, warmed)}, "differ in -warm"},
		{"planner statistics", []string{"-merge", writeBenchReports(t, pg, pgAnalyzed)}, "differ in planner statistics"},
		{"read audit durability", []string{"-merge", writeBenchReports(t, run1, committed)}, `differ in read_audit_durability ("synced" and "committed")`},
		{"garbage collector", []string{"-merge", writeBenchReports(t, run1, tunedGC)}, `differ in the garbage collector's setting ("Go's default" and "headroom 128 MiB")`},
		{"procs", []string{"-merge", writeBenchReports(t, oneProc, run1)}, fmt.Sprintf("differ in -procs, the Go processors custos's steps ran with (1 and the process's, %d)", run1.GOMAXPROCS)},
		{"one file and a comma", []string{"-merge", writeBenchReports(t, run1) + ","}, "two or more"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr, func(string) string { return "" })
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, stderr.String(), tc.want)
		}
	}

	pg.Results[2].DeferredStatements = 7
	pg.Results[1].GroupSize, pg.Results[1].LateJoins, pg.Results[1].LateJoined = 6.5, 3, 20
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-merge", writeBenchReports(t, pg, pg)}, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("PostgreSQL merge: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "create c=16: 5.0 writes per commit, 14 statements sent deferred") {
		t.Errorf("a PostgreSQL merge notes its groups as PostgreSQL's:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "6 groups of reads waited for the other writer's end, taking 40 requests meanwhile") {
		t.Errorf("a PostgreSQL merge notes the late joins of its runs, summed:\n%s", stdout.String())
	}
}

// TestBenchRounds: -rounds runs the benchmark that many times on fresh
// stores with one seed, keeps each round's report beside -json, and
// reports their medians; flags that would make rounds differ, or record
// one round's profile, are refused.
func TestBenchRounds(t *testing.T) {
	ctx, file := benchTest(t)
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-rounds", "2", "-subjects", "50", "-c", "2", "-duration", "200ms", "-workloads", "read", "-quiet", "-json", file}
	rep := runBenchJSON(t, ctx, args, file, func(string) string { return "" }, &stdout, &stderr)
	if rep.Rounds != 2 || len(rep.MergedFrom) != 2 || len(rep.Results) != 2 {
		t.Fatalf("rounds %d from %v, %d steps; want 2 rounds of 2 steps (ceiling, read)", rep.Rounds, rep.MergedFrom, len(rep.Results))
	}
	var seeds []uint64
	for i := 1; i <= 2; i++ {
		var r benchReport
		b, err := os.ReadFile(strings.TrimSuffix(file, ".json") + ".round" + string(rune('0'+i)) + ".json")
		if err != nil {
			t.Fatalf("round %d's report: %v", i, err)
		}
		if err := json.Unmarshal(b, &r); err != nil || r.Rounds != 0 || len(r.Results) != 2 {
			t.Fatalf("round %d's report: %v, %+v", i, err, r)
		}
		seeds = append(seeds, r.Seed)
	}
	if seeds[0] != seeds[1] || rep.Seed != seeds[0] || seeds[0] == 0 {
		t.Errorf("seeds of the rounds %v and of the merge %d: want one seed, not 0", seeds, rep.Seed)
	}
	if read := rep.Results[1]; read.Workload != "read" || read.Requests <= 0 || read.Errors != 0 {
		t.Errorf("read: %+v; want requests and no errors", read)
	}
	if !strings.Contains(stdout.String(), "the median of 2 runs") || strings.Count(stdout.String(), "vs ceiling") != 1 {
		t.Errorf("stdout: want one table, of the median of 2 runs:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "bench: round 2 of 2") {
		t.Errorf("stderr does not say which round runs:\n%s", stderr.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-rounds", "0"}, "-rounds must be 1–20"},
		{[]string{"-rounds", "2", "-data", t.TempDir()}, "not with -data"},
		{[]string{"-rounds", "2", "-cpuprofile", "cpu.prof"}, "not with -cpuprofile"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"bench"}, tc.args...), &stdout, &stderr, func(string) string { return "" }); code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}
