package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/seed"
)

// TestBenchHarnessJSON runs a tiny `custos bench` end to end and checks the
// JSON report: every requested workload ran, without errors, against a
// measured ceiling.
func TestBenchHarnessJSON(t *testing.T) {
	ctx, file := benchTest(t)
	var stdout, stderr bytes.Buffer
	dir := t.TempDir()
	cpuFile, traceFile := filepath.Join(dir, "cpu.prof"), filepath.Join(dir, "bench.trace")
	args := []string{"bench", "-subjects", "200", "-c", "2", "-duration", "300ms", "-workloads", "create,read,lookup,read-batch,mixed", "-json", file,
		"-cpuprofile", cpuFile, "-trace", traceFile}
	rep := runBenchJSON(t, ctx, args, file, func(string) string { return "" }, &stdout, &stderr)
	got := map[string]benchResult{}
	for _, r := range rep.Results {
		if r.Concurrency != 2 {
			t.Errorf("%s: concurrency got %d, want 2", r.Workload, r.Concurrency)
		}
		got[r.Workload] = r
	}
	ceil, ok := got["ceiling"]
	if !ok || ceil.Throughput <= 0 {
		t.Fatalf("ceiling: got %+v, want a positive throughput", ceil)
	}
	for _, name := range []string{"create", "read", "lookup", "read-batch", "mixed"} {
		r, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: missing from the report", name)
		case r.Requests <= 0:
			t.Errorf("%s: requests got %d, want > 0", name, r.Requests)
		case r.Errors != 0:
			t.Errorf("%s: errors got %d (%v), want 0", name, r.Errors, r.ErrorCodes)
		case r.CeilingRPS <= 0 || r.Ratio <= 0:
			t.Errorf("%s: ceiling %.0f req/s, ratio %.3f; want both positive", name, r.CeilingRPS, r.Ratio)
		case r.P50ms <= 0 || r.P99ms < r.P50ms:
			t.Errorf("%s: p50 %.3f ms, p99 %.3f ms; want 0 < p50 ≤ p99", name, r.P50ms, r.P99ms)
		}
	}
	// lookup reads the customers read just before: the read cache
	// answers most of them, and the report says so.
	if r := got["lookup"]; r.CacheHitRate <= 0 || r.CacheHitRate > 1 {
		t.Errorf("lookup: read cache hit rate %.3f, want in (0, 1]", r.CacheHitRate)
	}
	// Every batch read returned all of its customers, and the report
	// counts them.
	if r := got["read-batch"]; math.Abs(r.RowsPerSec/r.Throughput-benchReadBatch) > 1e-9 {
		t.Errorf("read-batch: %.1f customers/s at %.1f req/s, want %d a request", r.RowsPerSec, r.Throughput, benchReadBatch)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("customers/s read, 20 a request")) {
		t.Errorf("stdout does not give the customers read:\n%s", stdout.String())
	}
	if r := got["create"]; r.CacheHitRate != 0 {
		t.Errorf("create: read cache hit rate %.3f, want 0 (creates read nothing)", r.CacheHitRate)
	}
	// The ceiling's and a read's threads sleep in epoll and on futexes
	// between requests: the report counts the wake-ups a request, and the
	// machine's idle share is a share.
	for _, name := range []string{"ceiling", "read"} {
		r := got[name]
		if r.WaitsPerRequest <= 0 || r.PreemptionsPerRequest < 0 {
			t.Errorf("%s: %.3f waits, %.3f preemptions a request; want waits > 0, preemptions ≥ 0", name, r.WaitsPerRequest, r.PreemptionsPerRequest)
		}
		if runtime.GOOS == "linux" && (r.MachineIdle == nil || *r.MachineIdle < 0 || *r.MachineIdle >= 1) {
			t.Errorf("%s: machine idle %v; want a share in [0, 1) from /proc/stat", name, r.MachineIdle)
		}
	}
	if !bytes.Contains(stdout.Bytes(), []byte("thread waits and")) {
		t.Errorf("stdout does not give the thread waits:\n%s", stdout.String())
	}
	// Every create waits for the writer: its busy share and the writes per
	// commit are reported (two workers: at most two writes share a commit;
	// busy counts a running group up to each look, so it cannot pass 1).
	if r := got["create"]; r.WriterBusy <= 0 || r.WriterBusy > 1 || r.GroupSize < 1 || r.GroupSize > 2 {
		t.Errorf("create: writer busy %.3f, %.2f writes per commit; want busy in (0, 1] and 1–2 per commit", r.WriterBusy, r.GroupSize)
	}
	// Every create body was made before the step (benchBodies).
	if r := got["create"]; strings.Contains(r.Note, "create bodies") {
		t.Errorf("create: %s", r.Note)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("writes per commit")) {
		t.Errorf("stdout does not note the writer:\n%s", stdout.String())
	}
	// The profile and the trace of the workload steps are written whole.
	if b, err := os.ReadFile(cpuFile); err != nil || len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("-cpuprofile: want a gzipped pprof file, got %d bytes, %v", len(b), err)
	}
	if b, err := os.ReadFile(traceFile); err != nil || !bytes.HasPrefix(b, []byte("go 1.")) || len(b) < 1024 {
		t.Errorf("-trace: want a Go execution trace, got %d bytes, %v", len(b), err)
	}
	if len(rep.Results) != 6 {
		t.Errorf("results: got %d rows, want 6 (ceiling + 5 workloads)", len(rep.Results))
	}
	if !bytes.Contains(stdout.Bytes(), []byte("vs ceiling")) {
		t.Errorf("stdout has no results table:\n%s", stdout.String())
	}
	// At c=2 only the zero-errors target has its step; the JSON and the
	// table judge it (benchtargets.go).
	if len(rep.Targets) != 1 || !rep.Targets[0].Met || rep.Targets[0].Figure != "0 in 5 steps at c=2" || rep.HostSpeed != 0 {
		t.Errorf("targets: got %+v, host speed %v; want the zero-errors target met in 5 steps, no host speed without c=16", rep.Targets, rep.HostSpeed)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("targets (issue 7):\n  met     zero errors")) {
		t.Errorf("stdout does not judge the targets:\n%s", stdout.String())
	}
}

// TestBenchCreateBodies: the pool hands out the bodies made before a
// step, each a distinct customer, and once it is empty makes one on
// demand and counts it.
func TestBenchCreateBodies(t *testing.T) {
	g := &benchGen{g: seed.New(rand.New(rand.NewPCG(7, 1)))}
	var b benchBodies
	b.fill(g, 50)
	b.fill(g, 40) // already full enough: makes none
	if len(b.list) != 50 {
		t.Fatalf("pool holds %d bodies after fill(50) and fill(40), want 50", len(b.list))
	}
	mobiles := map[string]bool{}
	for range 51 {
		var s custos.NewSubject
		if err := json.Unmarshal(b.pop(g), &s); err != nil {
			t.Fatal(err)
		}
		m := s.Fields["mobile"]
		if m == "" || mobiles[m] {
			t.Fatalf("body %d: mobile %q empty or repeated", len(mobiles), m)
		}
		mobiles[m] = true
	}
	if got := b.late.Load(); got != 1 {
		t.Errorf("bodies made on demand = %d, want 1 (the 51st)", got)
	}
}

// TestBenchImportDrain: an import step whose batches outlast a short
// window reports, besides the rows stored inside the window, the rate
// counting the batches in flight at its end over the window and their
// drain, which counts at least one more batch. Not one per worker: a
// worker whose batch ends just before the window closes may find it
// closed when it would start the next (a CI run, forty-fourth session,
// counted 2,500 rows against 2,000 in the window with two workers).
func TestBenchImportDrain(t *testing.T) {
	ctx, file := benchTest(t)
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-subjects", "50", "-c", "2", "-duration", "300ms", "-workloads", "import", "-json", file}
	rep := runBenchJSON(t, ctx, args, file, func(string) string { return "" }, &stdout, &stderr)
	var r *benchResult
	for i := range rep.Results {
		if rep.Results[i].Workload == "import" {
			r = &rep.Results[i]
		}
	}
	if r == nil {
		t.Fatalf("no import step in %+v", rep.Results)
	}
	if r.Errors != 0 || r.LateErrors != 0 {
		t.Fatalf("import: %d errors, %d after the window (%v %v), want none", r.Errors, r.LateErrors, r.ErrorCodes, r.LateErrorCodes)
	}
	inWindow := r.RowsPerSec * r.Seconds
	all := r.RowsPerSecDrained * (r.Seconds + r.DrainSeconds)
	if r.DrainSeconds <= 0 || all < inWindow+benchImportBatch-0.5 {
		t.Errorf("import: %.0f rows in the window, %.0f with the %.3fs drain; want at least %d more (a batch in flight)", inWindow, all, r.DrainSeconds, benchImportBatch)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("counting the requests in flight")) {
		t.Errorf("stdout does not give the drained rate:\n%s", stdout.String())
	}
}

// TestBenchReuse: `custos bench -reuse` reads the customers a `custos
// seed` left in a data directory, seeding nothing, and refuses what it
// cannot do.
func TestBenchReuse(t *testing.T) {
	ctx, file := benchTest(t)
	dir := t.TempDir()
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"seed", "-subjects", "40", "-records", "0", "-seed", "9", "-quiet", "--data", dir}, &stdout, &stderr, env); code != 0 {
		t.Fatalf("seed: exit %d\n%s\n%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	args := []string{"bench", "-reuse", "-data", dir, "-subjects", "25", "-c", "2", "-duration", "300ms", "-workloads", "read", "-json", file}
	rep := runBenchJSON(t, ctx, args, file, env, &stdout, &stderr)
	if rep.Subjects != 25 {
		t.Errorf("subjects read: got %d, want 25 of the 40 seeded", rep.Subjects)
	}
	var read *benchResult
	for i, r := range rep.Results {
		if r.Workload == "read" {
			read = &rep.Results[i]
		}
	}
	if read == nil || read.Requests <= 0 || read.Errors != 0 {
		t.Errorf("read workload: got %+v, want requests and no errors", read)
	}
	// It seeded none: the store still holds the 40 customers of the seed.
	if !bytes.Contains(stderr.Bytes(), []byte("reading 25 of the 40 customers")) {
		t.Errorf("bench -reuse did not say what it reads:\n%s", stderr.String())
	}

	// -prime reads every customer once before the steps: with no
	// warm-up, the step's reads then all find their customer in the read
	// cache, where without it the first read of each misses.
	hits := func(prime bool) float64 {
		t.Helper()
		stdout.Reset()
		stderr.Reset()
		args := []string{"bench", "-reuse", "-data", dir, "-subjects", "25", "-c", "2", "-duration", "300ms", "-warmup", "0", "-workloads", "read", "-json", file}
		if prime {
			args = append(args, "-prime")
		}
		rep := runBenchJSON(t, ctx, args, file, env, &stdout, &stderr)
		primed := bytes.Contains(stdout.Bytes(), []byte("primed: each customer read once before the steps"))
		if prime != (rep.PrimeSeconds > 0) || prime != primed {
			t.Errorf("-prime %v: prime_seconds %g, table says primed %v; want both to say %v\n%s", prime, rep.PrimeSeconds, primed, prime, stdout.String())
		}
		if len(rep.Results) != 2 || rep.Results[1].Workload != "read" || rep.Results[1].Errors != 0 {
			t.Fatalf("-prime %v: got %+v, want a read step without errors", prime, rep.Results)
		}
		return rep.Results[1].CacheHitRate
	}
	if got := hits(true); got != 1 {
		t.Errorf("primed: the read cache answered %.3f of the step's reads, want all", got)
	}
	if got := hits(false); got <= 0 || got >= 1 {
		t.Errorf("not primed: the read cache answered %.3f of the step's reads, want some misses (each customer's first read)", got)
	}

	for _, bad := range [][]string{
		{"bench", "-reuse", "-workloads", "read"},                 // no -data
		{"bench", "-reuse", "-data", dir, "-workloads", "create"}, // not the read workload
	} {
		stdout.Reset()
		stderr.Reset()
		if code := run(ctx, bad, &stdout, &stderr, env); code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", bad, code, stderr.String())
		}
	}
}

// TestBenchReusePostgresWarm: on a PostgreSQL store, `custos bench -reuse`
// reads the customers an earlier run seeded (its keys in -data), and
// -warm warms the read cache from the audit log's latest reads
// (postgres/warm.go), so that a later run's read step, with the warm-up
// done before it, finds every customer in the cache where a run without
// -warm misses each one's first read.
func TestBenchReusePostgresWarm(t *testing.T) {
	ctx, file := benchTest(t)
	store := scaleSchema(t) // skips when CUSTOS_TEST_POSTGRES is unset
	dir := t.TempDir()
	env := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	common := []string{"-data", dir, "-store", store, "-seed", "9", "-c", "2", "-duration", "300ms", "-warmup", "0", "-workloads", "read", "-json", file}
	bench := func(extra ...string) benchReport {
		t.Helper()
		stdout.Reset()
		stderr.Reset()
		return runBenchJSON(t, ctx, append(append([]string{"bench"}, common...), extra...), file, env, &stdout, &stderr)
	}
	// Seeds 30 and reads them all once (-prime): the audit log lists them.
	if rep := bench("-migrate", "-subjects", "30", "-prime"); rep.Results[1].Errors != 0 {
		t.Fatalf("first run: %+v", rep.Results)
	}
	// Without -warm, the same 30 in a new process: each one's first read
	// misses.
	rep := bench("-reuse", "-subjects", "30")
	if rep.Subjects != 30 || rep.StoreSubjects != 30 || rep.Warm != nil {
		t.Fatalf("-reuse run: subjects %d of %d, warm %+v; want the 30 seeded, no warm-up", rep.Subjects, rep.StoreSubjects, rep.Warm)
	}
	if got := rep.Results[1].CacheHitRate; got >= 1 {
		t.Errorf("-reuse without -warm: the read cache answered %.3f of the step's reads, want some misses", got)
	}
	// The misses put customers in the cache, and their keys were loaded
	// (postgres/keyfill.go), which the table notes.
	if got := rep.Results[1].CacheKeysFilled; got <= 0 || !bytes.Contains(stdout.Bytes(), []byte(fmt.Sprintf("%d lookup keys loaded for customers read by id", got))) {
		t.Errorf("-reuse without -warm: %d lookup keys filled in the read step, want some, noted in the table:\n%s", got, stdout.String())
	}
	// With -warm: the 30 listed and loaded (in milliseconds, during the
	// ceiling's step), and the read step answered from the cache.
	rep = bench("-reuse", "-subjects", "30", "-warm")
	if w := rep.Warm; w == nil || !w.FromAuditLog || w.Listed != 30 || w.Loaded != 30 || w.Gone != 0 || w.NoRoom != 0 {
		t.Fatalf("-reuse -warm run: warm %+v; want the 30 customers listed from the audit log and loaded", rep.Warm)
	}
	if rep.Warm.LoadedAtSteps == 30 {
		if got := rep.Results[1].CacheHitRate; got != 1 {
			t.Errorf("-reuse -warm, the warm-up done before the steps: the read cache answered %.3f of the step's reads, want all", got)
		}
	} else {
		t.Logf("the warm-up had loaded %d of 30 when the steps began: the hit rate is not checked", rep.Warm.LoadedAtSteps)
	}
	if !bytes.Contains(stdout.Bytes(), []byte("read cache warmed in the background from the audit log's latest reads and lookups (-warm): 30 of 30 listed customers loaded")) {
		t.Errorf("the table does not say the read cache was warmed from the audit log:\n%s", stdout.String())
	}
}

// runBenchJSON runs custos with args (a bench writing its JSON report to
// file) and returns the report.
// benchTest skips a bench harness test under -short, and gives it a
// context of 60 s and a file for the JSON report.
func benchTest(t *testing.T) (context.Context, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("bench harness: skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx, filepath.Join(t.TempDir(), "bench.json")
}

func runBenchJSON(t *testing.T, ctx context.Context, args []string, file string, env func(string) string, stdout, stderr *bytes.Buffer) benchReport {
	t.Helper()
	if code := run(ctx, args, stdout, stderr, env); code != 0 {
		t.Fatalf("custos %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bench JSON: %v", err)
	}
	return rep
}

// TestBenchCodes: the error codes of a step — those inside the window and
// those of requests that completed after it — are the workers' counts
// added up, listed in order of first sight, at most five.
func TestBenchCodes(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 17, 0, 0, 0, time.UTC)
	a := map[string]*benchCodeSeen{"transport": {count: 2, first: t0.Add(3 * time.Second)}, "EINTERNAL": {count: 1, first: t0.Add(time.Second)}}
	b := map[string]*benchCodeSeen{"transport": {count: 5, first: t0}}
	for i, code := range []string{"c1", "c2", "c3", "c4"} {
		b[code] = &benchCodeSeen{count: 1, first: t0.Add(time.Duration(10+i) * time.Second)}
	}
	step := map[string]*benchCodeSeen{}
	benchMergeCodes(step, a)
	benchMergeCodes(step, b)
	got := benchFirstCodes(step)
	want := []benchCode{{"transport", 7}, {"EINTERNAL", 1}, {"c1", 1}, {"c2", 1}, {"c3", 1}}
	if !slices.Equal(got, want) {
		t.Fatalf("codes = %v, want %v", got, want)
	}
	if got := benchFirstCodes(map[string]*benchCodeSeen{}); got != nil {
		t.Fatalf("no codes = %v, want nil", got)
	}
}

// TestBenchParseProcStat: the machine's CPU ticks are the first line's
// fields up to steal, and idle is idle + iowait; guest time, already in
// user, is not counted twice, and anything but a cpu line is refused.
func TestBenchParseProcStat(t *testing.T) {
	const stat = "cpu  100 5 50 800 40 3 2 1 7 0\ncpu0 50 2 25 400 20 1 1 0 3 0\nintr 12345\n"
	total, idle, ok := benchParseProcStat(stat)
	if !ok || total != 100+5+50+800+40+3+2+1 || idle != 800+40 {
		t.Errorf("got total %d, idle %d, ok %v; want 1001, 840, true", total, idle, ok)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5 6", "cpu 1 2 x 4 5 6", "cpu 1 2 3"} {
		if _, _, ok := benchParseProcStat(bad); ok {
			t.Errorf("%q: parsed, want refused", bad)
		}
	}
	if runtime.GOOS == "linux" {
		if total, idle, ok := benchMachineCPU(); !ok || total <= 0 || idle < 0 || idle > total {
			t.Errorf("/proc/stat: total %d, idle %d, ok %v; want 0 ≤ idle ≤ total, total > 0", total, idle, ok)
		}
	}
}

// TestBenchProcs: with -procs custos's steps run with that many Go
// processors, the ceiling's with the process's, and the process has its
// own back at the end; the report says both.
func TestBenchProcs(t *testing.T) {
	ctx, file := benchTest(t)
	had := runtime.GOMAXPROCS(0)
	procs := 1
	if had == 1 {
		procs = 2
	}
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-subjects", "50", "-c", "2", "-duration", "200ms", "-workloads", "read", "-json", file, "-procs", strconv.Itoa(procs)}
	rep := runBenchJSON(t, ctx, args, file, func(string) string { return "" }, &stdout, &stderr)
	if now := runtime.GOMAXPROCS(0); now != had {
		t.Errorf("GOMAXPROCS after the run: %d, want the process's %d back", now, had)
	}
	if rep.Procs != procs || rep.GOMAXPROCS != had {
		t.Errorf("report: custos_gomaxprocs %d, gomaxprocs %d; want %d and %d", rep.Procs, rep.GOMAXPROCS, procs, had)
	}
	want := map[string]int{"ceiling": had, "read": procs}
	for _, r := range rep.Results {
		if r.Procs != want[r.Workload] {
			t.Errorf("%s c=%d ran with GOMAXPROCS %d, want %d", r.Workload, r.Concurrency, r.Procs, want[r.Workload])
		}
	}
	if len(rep.Results) != 2 {
		t.Errorf("results: %d steps, want the ceiling's and the read's", len(rep.Results))
	}
	if line := fmt.Sprintf("custos's steps ran with GOMAXPROCS %d (-procs); the seed, the priming and the ceiling's steps with %d", procs, had); !strings.Contains(stdout.String(), line) {
		t.Errorf("stdout does not say %q:\n%s", line, stdout.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run(ctx, []string{"bench", "-procs", "-1"}, &stdout, &stderr, func(string) string { return "" }); code != 2 || !strings.Contains(stderr.String(), "-procs must be 0 (the process's GOMAXPROCS) or more") {
		t.Errorf("-procs -1: exit %d, stderr %q; want 2 and the rule", code, stderr.String())
	}
}
