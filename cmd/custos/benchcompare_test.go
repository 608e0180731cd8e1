package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBenchSignTest: the two-sided sign test's p against counts worked
// by hand from the binomial law.
func TestBenchSignTest(t *testing.T) {
	for _, tc := range []struct {
		n, k int
		want float64
	}{
		{4, 4, 2.0 / 16},            // 4 of 4: never under 0.05
		{4, 0, 2.0 / 16},            // the other way alike
		{6, 6, 2.0 / 64},            // 6 of 6: the fewest pairs under 0.05
		{10, 8, 2 * 56.0 / 1024},    // C(10,8)+C(10,9)+C(10,10) = 56
		{10, 2, 2 * 56.0 / 1024},    // as far from 5 the other way
		{5, 2, 1},                   // 2·(10+5+1)/32 = 1
		{16, 16, 2 * 1.0 / 65536.0}, // the thirty-second session's series
		{0, 0, 1},
	} {
		if got := benchSignTest(tc.n, tc.k); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("sign test %d of %d: p = %g, want %g", tc.k, tc.n, got, tc.want)
		}
	}
}

// TestBenchCompare: -compare pairs the change's runs with the base's by
// position and reports, step by step, the median of the pairs' ratios,
// their range, A's wins and the sign test, the ratio of ceiling shares,
// and each side's CPU, p99 and writer time per request, with how many
// pairs A's p99 was lower in; a step no pair served has no ratio; JSON
// carries the same.
func TestBenchCompare(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	var as, bs []benchReport
	// Six pairs. Creates: A 10 % faster in every pair. Reads at c=16: A
	// faster in three pairs, slower in three. The ceiling: alike.
	readA := []float64{0.30, 0.20, 0.31, 0.19, 0.32, 0.18}
	// Read p99 at c=16: A's lower than B's 7 ms in four pairs of six,
	// higher in two; their medians (5 and 7) alone would not say so.
	readP99A := []float64{5, 9, 5, 9, 5, 5}
	for i := range 6 {
		ceiling := 30000 + 1000*float64(i) // the host drifts; a pair shares it
		start := t0.Add(time.Duration(2*i) * time.Minute)
		b := benchRun(start, ceiling, 0.25, 4000+100*float64(i), 20, 0, nil, 0)
		a := benchRun(start.Add(time.Minute), ceiling, readA[i], 1.1*(4000+100*float64(i)), 18, 0, nil, 0)
		a.Results[2].CPUPerRequestUS, b.Results[2].CPUPerRequestUS = 270, 300
		a.Results[1].P99ms, b.Results[1].P99ms = readP99A[i], 7
		as, bs = append(as, a), append(bs, b)
	}
	file := filepath.Join(t.TempDir(), "compare.json")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"bench", "-compare", writeBenchReports(t, as...), "-base", writeBenchReports(t, bs...), "-json", file},
		&stdout, &stderr, func(string) string { return "" })
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"6 pairs, A (-compare) against B (-base)",
		"no pair served", // read c=64 served nothing in these made-up runs
		"A's p99 lower", "4 of 6",
		"repeat the series at another time",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warning: the ceiling") {
		t.Errorf("an even ceiling was warned about:\n%s", out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var c benchComparison
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Pairs != 6 || len(c.A) != 6 || c.A[0] != "2026-12-03T15:01:00Z" || c.B[5] != "2026-12-03T15:10:00Z" {
		t.Errorf("pairs %d, A started %v, B started %v", c.Pairs, c.A, c.B)
	}
	step := map[string]benchCompared{}
	for _, s := range c.Steps {
		step[s.Step] = s
	}
	create, read, ceiling, read64 := step["create c=16"], step["read c=16"], step["ceiling c=16"], step["read c=64"]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(create.Ratio, 1.1) || !near(create.RatioMin, 1.1) || !near(create.RatioMax, 1.1) || create.AWins != 6 || create.Counted != 6 || !near(create.SignP, 2.0/64) {
		t.Errorf("create: ratio %g (%g–%g), %d of %d, p %g; want 1.1, 6 of 6, p 1/32", create.Ratio, create.RatioMin, create.RatioMax, create.AWins, create.Counted, create.SignP)
	}
	if !near(create.ShareRatio, 1.1) || create.ACPU != 270 || create.BCPU != 300 {
		t.Errorf("create: share ratio %g, CPU %g/%g", create.ShareRatio, create.ACPU, create.BCPU)
	}
	// Writer busy 0.8 of the window (benchRun): µs per create = 0.8/rate.
	if want := 0.8 / (1.1 * 4250) * 1e6; math.Abs(create.AWriterUS-want) > 0.5 {
		t.Errorf("create: A's writer %g µs a create, want %g", create.AWriterUS, want)
	}
	if read.AWins != 3 || read.SignP != 1 || !near(read.RatioMin, 0.72) || !near(read.RatioMax, 1.28) {
		t.Errorf("read: %d of %d, p %g, range %g–%g; want 3 of 6, p 1, 0.72–1.28", read.AWins, read.Counted, read.SignP, read.RatioMin, read.RatioMax)
	}
	if !near(ceiling.Ratio, 1) || ceiling.ShareRatio != 0 || ceiling.AWins != 0 || ceiling.Ties != 6 || ceiling.SignP != 1 {
		t.Errorf("ceiling: ratio %g, share ratio %g, A faster in %d, %d ties, p %g", ceiling.Ratio, ceiling.ShareRatio, ceiling.AWins, ceiling.Ties, ceiling.SignP)
	}
	if read64.Counted != 0 || read64.Ratio != 0 || read64.AP99 != 18 || read64.BP99 != 20 {
		t.Errorf("read c=64 served nothing, yet counted %d pairs, ratio %g; p99 %g/%g, want 18/20", read64.Counted, read64.Ratio, read64.AP99, read64.BP99)
	}
	if read.AP99Lower != 4 || read.P99Pairs != 6 || read.AP99 != 5 || read.BP99 != 7 || read64.AP99Lower != 6 || read64.P99Pairs != 6 {
		t.Errorf("p99: read c=16 A lower in %d of %d (medians %g/%g), c=64 in %d of %d; want 4 of 6 (5/7) and 6 of 6",
			read.AP99Lower, read.P99Pairs, read.AP99, read.BP99, read64.AP99Lower, read64.P99Pairs)
	}
	if ceiling.P99Pairs != 0 || ceiling.AP99Lower != 0 {
		t.Errorf("ceiling: no run had a p99, yet %d of %d pairs counted", ceiling.AP99Lower, ceiling.P99Pairs)
	}
}

// TestBenchCompareCeilingLean: when the ceiling — the same handler in
// both builds — ran faster on one side in every pair, -compare warns that
// the host, not the build, moved the series.
func TestBenchCompareCeilingLean(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	var as, bs []benchReport
	for i := range 4 {
		start := t0.Add(time.Duration(2*i) * time.Minute)
		bs = append(bs, benchRun(start, 30000, 0.25, 4000, 20, 0, nil, 0))
		as = append(as, benchRun(start.Add(time.Minute), 30000*1.01, 0.25, 4400, 20, 0, nil, 0))
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-compare", writeBenchReports(t, as...), "-base", writeBenchReports(t, bs...)},
		&stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "warning: the ceiling at c=16: A/B 1.010, A faster in 4 of 4 pairs") {
		t.Errorf("no warning for a ceiling that ran faster in every A run:\n%s", stdout.String())
	}
}

// TestBenchCompareRefuses: -compare needs as many base runs as runs of
// the change, two pairs at least, runs that measured the same steps, and
// no flags of a run.
func TestBenchCompareRefuses(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 4, 0, 0, 0, time.UTC)
	r := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	short := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	short.Results = short.Results[:3]
	two, one := writeBenchReports(t, r, r), writeBenchReports(t, r)
	analysed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	analysed.AnalyzeSeconds = 0.4
	committed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	committed.ReadAuditDurability = "committed"
	warmed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	warmed.Warm = &benchWarm{FromAuditLog: true, Listed: 10, Loaded: 10}
	primed := benchRun(t0, 30000, 0.2, 4000, 30, 0, nil, 0)
	primed.PrimeSeconds = 1.5
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"uneven", []string{"-compare", two, "-base", writeBenchReports(t, r, r, r)}, "-compare has 2 reports and -base 3"},
		{"one pair", []string{"-compare", one, "-base", one}, "two or more pairs"},
		{"no base", []string{"-compare", two}, "-compare and -base go together"},
		{"no change", []string{"-base", two}, "-compare and -base go together"},
		{"steps", []string{"-compare", two, "-base", writeBenchReports(t, r, short)}, "ran the steps ceiling c=16, read c=16, create c=16, read c=64"},
		{"run flags", []string{"-compare", two, "-base", two, "-duration", "5s"}, "takes only -base and -json, not -duration"},
		{"statistics within a side", []string{"-compare", writeBenchReports(t, r, analysed), "-base", two}, "differ in planner statistics"},
		{"read audit durability within a side", []string{"-compare", two, "-base", writeBenchReports(t, committed, r)}, "differ in read_audit_durability"},
		{"warm-up within a side", []string{"-compare", writeBenchReports(t, warmed, r), "-base", two}, "differ in -warm"},
		{"priming within a side", []string{"-compare", two, "-base", writeBenchReports(t, r, primed)}, "differ in -prime"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr, func(string) string { return "" })
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, stderr.String(), tc.want)
		}
	}
	// Between the sides it is what a pair may compare.
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"bench", "-compare", writeBenchReports(t, analysed, analysed), "-base", two}, &stdout, &stderr,
		func(string) string { return "" }); code != 0 {
		t.Errorf("a build that analyses against one that did not: exit %d, stderr %q", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := run(context.Background(), []string{"bench", "-compare", writeBenchReports(t, committed, committed), "-base", two}, &stdout, &stderr,
		func(string) string { return "" }); code != 0 {
		t.Errorf("read_audit_durability committed against synced: exit %d, stderr %q", code, stderr.String())
	}
	for _, side := range []benchReport{warmed, primed} {
		stdout.Reset()
		stderr.Reset()
		if code := run(context.Background(), []string{"bench", "-compare", writeBenchReports(t, side, side), "-base", two}, &stdout, &stderr,
			func(string) string { return "" }); code != 0 {
			t.Errorf("warmed or primed runs against runs neither: exit %d, stderr %q", code, stderr.String())
		}
	}
}
