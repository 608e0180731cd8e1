package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// benchMerge reads the JSON reports of earlier runs (-json) and returns
// one report of their medians, step by step, so that a figure near a
// target is judged on several runs rather than one: on this host one
// build's creates at c=16 ranged 4,176–5,127/s over four runs within 40
// minutes (BENCHMARKS.md, twenty-seventh session). The runs must be of
// the same kind of store, customers, window and steps. A share of the
// ceiling is the median of each run's own share, as the issue measures
// it; counts (requests, errors) are added up; peak memory is the
// largest; each step's note gives the throughput's and p99's range, and
// the notes of the runs.
func benchMerge(paths []string) (*benchReport, error) {
	paths = slices.DeleteFunc(paths, func(p string) bool { return strings.TrimSpace(p) == "" })
	if len(paths) < 2 {
		return nil, errors.New("bench: -merge needs two or more JSON reports, comma-separated")
	}
	reps, err := benchLoadReports("-merge", paths)
	if err != nil {
		return nil, err
	}
	steps, err := benchSameRuns("-merge", paths, reps)
	if err == nil {
		err = benchSameSettings("-merge", paths, reps)
	}
	if err != nil {
		return nil, err
	}
	first := reps[0]
	out := *first
	out.LoadAvg = ""
	out.Rounds = len(reps)
	out.MergedFrom = nil
	out.TotalDuration = 0
	for _, r := range reps {
		out.MergedFrom = append(out.MergedFrom, r.StartedAt.Format("2006-01-02T15:04:05Z07:00"))
		out.TotalDuration += r.TotalDuration
	}
	out.Results = make([]benchResult, len(steps))
	pg := benchStoreKind(first.Store) == "postgres"
	for s := range steps {
		rs := make([]benchResult, len(reps))
		for i, r := range reps {
			rs[i] = r.Results[s]
		}
		med := func(f func(benchResult) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return benchMedian(v)
		}
		m := benchResult{Workload: rs[0].Workload, Concurrency: rs[0].Concurrency, Procs: rs[0].Procs, pgGroups: pg,
			Throughput:            med(func(r benchResult) float64 { return r.Throughput }),
			P50ms:                 med(func(r benchResult) float64 { return r.P50ms }),
			P95ms:                 med(func(r benchResult) float64 { return r.P95ms }),
			P99ms:                 med(func(r benchResult) float64 { return r.P99ms }),
			CPUPerRequestUS:       med(func(r benchResult) float64 { return r.CPUPerRequestUS }),
			WaitsPerRequest:       med(func(r benchResult) float64 { return r.WaitsPerRequest }),
			PreemptionsPerRequest: med(func(r benchResult) float64 { return r.PreemptionsPerRequest }),
			CeilingRPS:            med(func(r benchResult) float64 { return r.CeilingRPS }),
			Ratio:                 med(func(r benchResult) float64 { return r.Ratio }),
			RowsPerSec:            med(func(r benchResult) float64 { return r.RowsPerSec }),
			RowsPerSecDrained:     med(func(r benchResult) float64 { return r.RowsPerSecDrained }),
			CacheHitRate:          med(func(r benchResult) float64 { return r.CacheHitRate }),
			KeptRate:              med(func(r benchResult) float64 { return r.KeptRate }),
			KeptStale:             med(func(r benchResult) float64 { return r.KeptStale }),
			WriterBusy:            med(func(r benchResult) float64 { return r.WriterBusy }),
			GroupSize:             med(func(r benchResult) float64 { return r.GroupSize }),
			PagesPerWrite:         med(func(r benchResult) float64 { return r.PagesPerWrite }),
			SyncsPerGroup:         med(func(r benchResult) float64 { return r.SyncsPerGroup }),
			FilingsPerThousand:    med(func(r benchResult) float64 { return r.FilingsPerThousand }),
			FilingMs:              med(func(r benchResult) float64 { return r.FilingMs }),
			EarlyShare:            med(func(r benchResult) float64 { return r.EarlyShare }),
			DrainSeconds:          med(func(r benchResult) float64 { return r.DrainSeconds }),
			GCMarkMsPerCycle:      med(func(r benchResult) float64 { return r.GCMarkMsPerCycle }),
			GCLiveBytes:           uint64(med(func(r benchResult) float64 { return float64(r.GCLiveBytes) })),
		}
		// The machine's idle share, over the runs that read it.
		var idle []float64
		for _, r := range rs {
			if r.MachineIdle != nil {
				idle = append(idle, *r.MachineIdle)
			}
		}
		if len(idle) > 0 {
			v := benchMedian(idle)
			m.MachineIdle = &v
		}
		codes := map[string]*benchCodeSeen{}
		late := map[string]*benchCodeSeen{}
		tMin, tMax, pMin, pMax := rs[0].Throughput, rs[0].Throughput, rs[0].P99ms, rs[0].P99ms
		for i, r := range rs {
			m.Requests += r.Requests
			m.Seconds += r.Seconds
			m.Errors += r.Errors
			m.GCCycles += r.GCCycles // over the summed seconds: the cycles a second
			m.LateErrors += r.LateErrors
			m.CPUSeconds += r.CPUSeconds
			m.Samples += r.Samples
			m.DeferredStatements += r.DeferredStatements
			m.GroupsUndeferred += r.GroupsUndeferred
			m.CacheStale += r.CacheStale
			m.CacheKeysFilled += r.CacheKeysFilled
			m.LateJoins += r.LateJoins
			m.LateJoined += r.LateJoined
			m.MaxMs = max(m.MaxMs, r.MaxMs)
			m.PeakRSSBytes = max(m.PeakRSSBytes, r.PeakRSSBytes)
			tMin, tMax = min(tMin, r.Throughput), max(tMax, r.Throughput)
			pMin, pMax = min(pMin, r.P99ms), max(pMax, r.P99ms)
			for j, c := range r.ErrorCodes {
				benchMergeCodes(codes, map[string]*benchCodeSeen{c.Code: {count: c.Count, first: benchSight(i, j)}})
			}
			for j, c := range r.LateErrorCodes {
				benchMergeCodes(late, map[string]*benchCodeSeen{c.Code: {count: c.Count, first: benchSight(i, j)}})
			}
		}
		m.ErrorCodes, m.LateErrorCodes = benchFirstCodes(codes), benchFirstCodes(late)
		notes := []string{fmt.Sprintf("median of %d runs: %s–%s req/s, p99 %s–%s ms", len(rs),
			benchThousands(tMin), benchThousands(tMax), benchMs(pMin), benchMs(pMax))}
		for i, r := range rs {
			if r.Note != "" { // a run's warning is not lost in the median
				notes = append(notes, fmt.Sprintf("run %d: %s", i+1, r.Note))
			}
		}
		m.Note = strings.Join(notes, "; ")
		out.Results[s] = m
	}
	out.Targets, out.HostSpeed = benchVerdicts(&out), benchHostSpeed(&out)
	return &out, nil
}

// benchLoadReports reads the JSON reports at paths for the option named
// opt (-merge, -compare). A report that is itself the median of several
// runs is refused: its counts are sums and its figures medians already.
func benchLoadReports(opt string, paths []string) ([]*benchReport, error) {
	reps := make([]*benchReport, len(paths))
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("bench: %s: %w", opt, err)
		}
		var r benchReport
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("bench: %s: %s is not a custos bench JSON report: %v", opt, p, err)
		}
		if len(r.Results) == 0 {
			return nil, fmt.Errorf("bench: %s: %s has no results", opt, p)
		}
		if r.Rounds > 0 {
			return nil, fmt.Errorf("bench: %s: %s is itself the median of %d runs; use the runs' own reports", opt, p, r.Rounds)
		}
		reps[i] = &r
	}
	return reps, nil
}

// benchSameRuns checks that reps (read from paths) ran the same kind of
// store, customers, window, draws and steps, so that their figures may be
// set side by side, and returns their steps ("read c=16", …) in order.
func benchSameRuns(opt string, paths []string, reps []*benchReport) ([]string, error) {
	first := reps[0]
	var steps []string
	for _, r := range first.Results {
		steps = append(steps, benchStepKey(r))
	}
	for i, r := range reps[1:] {
		p := paths[i+1]
		if err := benchAlike(opt, paths[0], p, first, r); err != nil {
			return nil, err
		}
		if r.Subjects != first.Subjects {
			return nil, fmt.Errorf("bench: %s: %s seeded %d customers, %s %d", opt, paths[0], first.Subjects, p, r.Subjects)
		}
		var got []string
		for _, x := range r.Results {
			got = append(got, benchStepKey(x))
		}
		if !slices.Equal(got, steps) {
			return nil, fmt.Errorf("bench: %s: %s ran the steps %s, %s ran %s", opt, paths[0], strings.Join(steps, ", "), p, strings.Join(got, ", "))
		}
	}
	return steps, nil
}

// benchAlike checks that run r (read from p) ran the same kind of store
// as run first (from p0), with the same window and draws of customers;
// what they read may differ (-scale sets a large store against a small
// one).
func benchAlike(opt, p0, p string, first, r *benchReport) error {
	switch {
	case benchStoreKind(r.Store) != benchStoreKind(first.Store):
		return fmt.Errorf("bench: %s: %s ran on %s, %s on %s", opt, p0, benchStoreKind(first.Store), p, benchStoreKind(r.Store))
	case r.DurationSec != first.DurationSec:
		return fmt.Errorf("bench: %s: %s measured %gs a step, %s %gs", opt, p0, first.DurationSec, p, r.DurationSec)
	case r.Zipf != first.Zipf:
		return fmt.Errorf("bench: %s: %s drew customers with -zipf %g, %s with %g", opt, p0, first.Zipf, p, r.Zipf)
	}
	return nil
}

// benchSameSettings checks that reps (read from paths) were all primed
// (-prime) or none, all warmed (-warm) or none, all analysed their
// PostgreSQL store after the seed or none did (builds before the
// fortieth session), and that all answered reads at one
// read_audit_durability and ran under one garbage collector setting.
// -merge asks it of all its runs, -compare of each side's: a pair may set
// a build or a setting against another.
func benchSameSettings(opt string, paths []string, reps []*benchReport) error {
	for i, r := range reps[1:] {
		if (r.PrimeSeconds > 0) != (reps[0].PrimeSeconds > 0) {
			return fmt.Errorf("bench: %s: %s and %s differ in -prime: one read its customers once before the steps, the other did not", opt, paths[0], paths[i+1])
		}
		if (r.Warm != nil) != (reps[0].Warm != nil) {
			return fmt.Errorf("bench: %s: %s and %s differ in -warm: one warmed its read cache after its start, the other did not", opt, paths[0], paths[i+1])
		}
		if (r.AnalyzeSeconds > 0) != (reps[0].AnalyzeSeconds > 0) {
			return fmt.Errorf("bench: %s: %s and %s differ in planner statistics: one analysed its PostgreSQL store after the seed, the other (a build before the fortieth session) did not", opt, paths[0], paths[i+1])
		}
		if r.GC != reps[0].GC {
			return fmt.Errorf("bench: %s: %s and %s differ in the garbage collector's setting (%q and %q)", opt, paths[0], paths[i+1],
				cmp.Or(reps[0].GC, "Go's default"), cmp.Or(r.GC, "Go's default"))
		}
		if r.Procs != reps[0].Procs {
			return fmt.Errorf("bench: %s: %s and %s differ in -procs, the Go processors custos's steps ran with (%s and %s)", opt, paths[0], paths[i+1],
				benchProcs(reps[0]), benchProcs(r))
		}
		if r.ReadAuditDurability != reps[0].ReadAuditDurability {
			return fmt.Errorf("bench: %s: %s and %s differ in read_audit_durability (%q and %q)", opt, paths[0], paths[i+1],
				cmp.Or(reps[0].ReadAuditDurability, "synced"), cmp.Or(r.ReadAuditDurability, "synced"))
		}
	}
	return nil
}

// benchProcs says the GOMAXPROCS rep's custos steps ran with.
func benchProcs(rep *benchReport) string {
	if rep.Procs > 0 {
		return strconv.Itoa(rep.Procs)
	}
	return fmt.Sprintf("the process's, %d", rep.GOMAXPROCS)
}

// benchStepKey names a step: "read c=16".
func benchStepKey(r benchResult) string { return fmt.Sprintf("%s c=%d", r.Workload, r.Concurrency) }

// benchSight orders the codes of merged runs: run i's j-th code (a run
// lists at most five) is seen after every code of the runs before it.
func benchSight(i, j int) time.Time { return time.Unix(int64(i*8+j), 0) }

// benchStoreKind is "postgres" or "sqlite", from a report's store.
func benchStoreKind(store string) string {
	if strings.HasPrefix(store, "postgres") {
		return "postgres"
	}
	return "sqlite"
}

// benchMedian is the median of v (the mean of the middle two when v has
// an even length); v is sorted in place.
func benchMedian(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// maxBenchRounds bounds -rounds: a full run takes about 4.5 minutes here.
const maxBenchRounds = 20

// benchRounds runs the benchmark of fs's flags n times, one after the
// other, each on a fresh temporary store with the same seed, and reports
// the medians of the rounds as -merge does. The rounds' own reports are
// kept beside jsonOut (FILE.round1.json, …) when it is set. Each round's
// table is left out; its progress goes to stderr as a run's does.
func benchRounds(ctx context.Context, fs *flag.FlagSet, n int, seed uint64, jsonOut, svgOut string, stdout, stderr io.Writer, getenv func(string) string) error {
	var args []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "rounds", "json", "svg", "seed":
		default:
			args = append(args, "-"+f.Name+"="+f.Value.String())
		}
	})
	args = append(args, fmt.Sprintf("-seed=%d", seed))
	dir := ""
	if jsonOut == "" {
		d, err := os.MkdirTemp("", "custos-bench-rounds-*")
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	}
	files := make([]string, n)
	for i := range n {
		files[i] = filepath.Join(dir, fmt.Sprintf("round%d.json", i+1))
		if jsonOut != "" {
			files[i] = fmt.Sprintf("%s.round%d.json", strings.TrimSuffix(jsonOut, ".json"), i+1)
		}
		fmt.Fprintf(stderr, "bench: round %d of %d\n", i+1, n)
		if err := cmdBench(ctx, append(slices.Clone(args), "-json", files[i]), io.Discard, stderr, getenv); err != nil {
			return fmt.Errorf("bench: round %d of %d: %w", i+1, n, err)
		}
	}
	rep, err := benchMerge(files)
	if err != nil {
		return err
	}
	return benchWrite(rep, stdout, jsonOut, svgOut)
}
