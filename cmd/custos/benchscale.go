package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The scale target (issue 7): "with 10,000,000 customers on one SQLite
// node, masked read p50 within 2× of a 10,000-customer store". It is
// measured with -reuse runs on two seeded stores, alternating which goes
// first (BENCHMARKS.md, "How to reproduce"), and judged by -scale, which
// pairs run i on the large store with run i on the small one and takes
// the median of the pairs' p50 ratios: the host's speed drifts between
// runs, and a pair's two runs share most of it.

// Scale target: the stores' sizes and the largest ratio of the p50s.
const (
	scaleTargetLarge = 10_000_000
	scaleTargetSmall = 10_000
	scaleTargetRatio = 2.0
)

// benchScaleReport is the -scale report (-json).
type benchScaleReport struct {
	Kind  string `json:"kind"` // "scale"
	Pairs int    `json:"pairs"`
	// LargeStore and SmallStore are the customers each side's store held.
	LargeStore int `json:"large_store_subjects"`
	SmallStore int `json:"small_store_subjects"`
	// Primed: every run read its customers once before its steps
	// (-prime); otherwise the runs measured fresh processes.
	Primed bool             `json:"primed"`
	Large  []string         `json:"large_started_at"`
	Small  []string         `json:"small_started_at"`
	Steps  []benchScaleStep `json:"steps"`
	Target *benchVerdict    `json:"target,omitempty"`
	Notes  []string         `json:"notes,omitempty"`
}

// benchScaleStep is one concurrency's read step: each pair's p50 on each
// side and their ratio (large over small), with the ratios' median and
// range, and each side's median throughput and read-cache hits.
type benchScaleStep struct {
	Concurrency     int       `json:"concurrency"`
	LargeP50ms      []float64 `json:"large_p50_ms"`
	SmallP50ms      []float64 `json:"small_p50_ms"`
	Ratios          []float64 `json:"ratios"`
	Ratio           float64   `json:"ratio"`
	RatioMin        float64   `json:"ratio_min"`
	RatioMax        float64   `json:"ratio_max"`
	LargeThroughput float64   `json:"large_throughput"`
	SmallThroughput float64   `json:"small_throughput"`
	LargeCacheHit   float64   `json:"large_read_cache_hit_rate,omitempty"`
}

// benchScale reads pairs of -reuse reports: large[i] on the large store,
// small[i] on the small one.
func benchScale(large, small []string) (*benchScaleReport, error) {
	large, small, err := benchPairPaths("-scale", "-scale-small", "one run on each store", large, small, 1)
	if err != nil {
		return nil, err
	}
	paths := slices.Concat(large, small)
	reps, err := benchLoadReports("-scale", paths)
	if err != nil {
		return nil, err
	}
	for i, r := range reps {
		if r.StoreSubjects == 0 {
			return nil, fmt.Errorf("bench: -scale: %s is not a -reuse run of this build: it does not say how many customers its store held", paths[i])
		}
	}
	n := len(large)
	ls, ss := reps[:n], reps[n:]
	first := reps[0]
	if err := benchSameSettings("-scale", paths, reps); err != nil {
		return nil, err
	}
	for i, r := range reps {
		p := paths[i]
		if err := benchAlike("-scale", paths[0], p, first, r); err != nil {
			return nil, err
		}
		switch {
		case i < n && r.StoreSubjects != ls[0].StoreSubjects:
			return nil, fmt.Errorf("bench: -scale: %s read a store of %d customers, %s one of %d; each side is one store", paths[0], ls[0].StoreSubjects, p, r.StoreSubjects)
		case i >= n && r.StoreSubjects != ss[0].StoreSubjects:
			return nil, fmt.Errorf("bench: -scale-small: %s read a store of %d customers, %s one of %d; each side is one store", small[0], ss[0].StoreSubjects, p, r.StoreSubjects)
		}
	}
	if ls[0].StoreSubjects <= ss[0].StoreSubjects {
		return nil, fmt.Errorf("bench: -scale's store holds %d customers and -scale-small's %d: give the large store's reports to -scale", ls[0].StoreSubjects, ss[0].StoreSubjects)
	}
	out := &benchScaleReport{Kind: "scale", Pairs: n, LargeStore: ls[0].StoreSubjects, SmallStore: ss[0].StoreSubjects,
		Primed: first.PrimeSeconds > 0}
	for i := range n {
		out.Large = append(out.Large, ls[i].StartedAt.UTC().Format("2006-01-02T15:04:05Z"))
		out.Small = append(out.Small, ss[i].StartedAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	readAt := func(r *benchReport, c int) (benchResult, bool) {
		i := slices.IndexFunc(r.Results, func(x benchResult) bool { return x.Workload == "read" && x.Concurrency == c })
		if i < 0 {
			return benchResult{}, false
		}
		return r.Results[i], true
	}
	for _, res := range first.Results {
		if res.Workload != "read" {
			continue
		}
		st := benchScaleStep{Concurrency: res.Concurrency}
		var lt, stp, hits []float64
		for i := range n {
			l, okL := readAt(ls[i], res.Concurrency)
			s, okS := readAt(ss[i], res.Concurrency)
			if !okL || !okS {
				return nil, fmt.Errorf("bench: -scale: pair %d (%s, %s) lacks the read step at c=%d", i+1, large[i], small[i], res.Concurrency)
			}
			if l.P50ms <= 0 || s.P50ms <= 0 {
				return nil, fmt.Errorf("bench: -scale: pair %d (%s, %s) served no read at c=%d", i+1, large[i], small[i], res.Concurrency)
			}
			st.LargeP50ms, st.SmallP50ms = append(st.LargeP50ms, l.P50ms), append(st.SmallP50ms, s.P50ms)
			st.Ratios = append(st.Ratios, l.P50ms/s.P50ms)
			lt, stp, hits = append(lt, l.Throughput), append(stp, s.Throughput), append(hits, l.CacheHitRate)
		}
		sorted := slices.Clone(st.Ratios)
		st.Ratio = benchMedian(sorted)
		st.RatioMin, st.RatioMax = sorted[0], sorted[len(sorted)-1]
		st.LargeThroughput, st.SmallThroughput, st.LargeCacheHit = benchMedian(lt), benchMedian(stp), benchMedian(hits)
		out.Steps = append(out.Steps, st)
	}
	if len(out.Steps) == 0 {
		return nil, fmt.Errorf("bench: -scale: %s has no read step", paths[0])
	}
	i := slices.IndexFunc(out.Steps, func(s benchScaleStep) bool { return s.Concurrency == 16 })
	switch {
	case i < 0:
		out.Notes = append(out.Notes, "the target is judged at c=16, which these runs did not measure")
	case out.LargeStore < scaleTargetLarge || out.SmallStore > scaleTargetSmall:
		out.Notes = append(out.Notes, fmt.Sprintf("the target sets a store of %d customers against one of %d; these stores held %d and %d, so it is not judged",
			scaleTargetLarge, scaleTargetSmall, out.LargeStore, out.SmallStore))
	default:
		s := out.Steps[i]
		variant := "cold: fresh processes' first seconds"
		if out.Primed {
			variant = "primed: each customer read once before the steps"
		}
		out.Target = &benchVerdict{
			Target: fmt.Sprintf("with %s customers, masked read p50 within %g× of a %s-customer store (c=16)",
				benchThousands(scaleTargetLarge), scaleTargetRatio, benchThousands(scaleTargetSmall)),
			Figure: fmt.Sprintf("%.2f× (median of %d pairs, %.2f–%.2f; %s)", s.Ratio, n, s.RatioMin, s.RatioMax, variant),
			Met:    s.Ratio <= scaleTargetRatio,
		}
	}
	return out, nil
}

// benchScaleWrite prints the -scale report and writes it as JSON to
// jsonPath if given.
func benchScaleWrite(sc *benchScaleReport, w io.Writer, jsonPath string) error {
	variant := "cold (no -prime)"
	if sc.Primed {
		variant = "primed"
	}
	fmt.Fprintf(w, "custos bench -scale: %d pairs of read runs, a store of %s customers against one of %s, %s\n",
		sc.Pairs, benchThousands(float64(sc.LargeStore)), benchThousands(float64(sc.SmallStore)), variant)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "c\tlarge p50 ms\tsmall p50 ms\tratios\tmedian\tlarge reads/s\tsmall reads/s\tlarge cache hits\t")
	for _, s := range sc.Steps {
		var ratios []string
		for _, r := range s.Ratios {
			ratios = append(ratios, fmt.Sprintf("%.2f", r))
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%.2f\t%s\t%s\t%.1f %%\t\n", s.Concurrency, benchFloats(s.LargeP50ms), benchFloats(s.SmallP50ms),
			strings.Join(ratios, " "), s.Ratio, benchThousands(s.LargeThroughput), benchThousands(s.SmallThroughput), s.LargeCacheHit*100)
	}
	tw.Flush()
	fmt.Fprintln(w, "target (issue 7):")
	if sc.Target != nil {
		verdict := "missed"
		if sc.Target.Met {
			verdict = "met   "
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", verdict, sc.Target.Target, sc.Target.Figure)
	}
	for _, n := range sc.Notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	if jsonPath == "" {
		return nil
	}
	return benchWriteJSON(jsonPath, sc)
}

// benchFloats writes milliseconds as "1.26 1.47 1.84".
func benchFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(s, " ")
}
