package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// benchCompare reads the JSON reports of interleaved pairs of runs: run
// i of the change (A, -compare) and run i of the base (B, -base), made one
// after the other, alternating which goes first. It reports, step by
// step, the median of the pairs' A/B throughput ratios, their range, how
// many pairs A won, and a sign test of that count; and each side's
// median p99 with how many pairs A's p99 was lower in.
//
// Pairs, not medians of each side: this host's speed drifts by 10–20 %
// within minutes, and a pair's two runs share most of that drift. The
// sign test says only whether this series' pairs lean one way beyond
// chance. A series can lean because of the hour it ran in: in the
// thirty-second session, two series of four pairs had a build win all 16
// of its create pairs by 8–14 %, and three later series of the same two
// builds gave 0.99–1.05 (BENCHMARKS.md). So the table's last line asks
// for a second series at another time before a change is kept.
func benchCompare(aPaths, bPaths []string) (*benchComparison, error) {
	aPaths, bPaths, err := benchPairPaths("-compare", "-base", "one run of each", aPaths, bPaths, 2)
	if err != nil {
		return nil, err
	}
	paths := slices.Concat(aPaths, bPaths)
	reps, err := benchLoadReports("-compare", paths)
	if err != nil {
		return nil, err
	}
	steps, err := benchSameRuns("-compare", paths, reps)
	if err != nil {
		return nil, err
	}
	n := len(aPaths)
	if err := benchSameSettings("-compare", aPaths, reps[:n]); err != nil {
		return nil, err
	}
	if err := benchSameSettings("-compare", bPaths, reps[n:]); err != nil {
		return nil, err
	}
	as, bs := reps[:n], reps[n:]
	out := &benchComparison{Pairs: n}
	for i := range n {
		out.A = append(out.A, as[i].StartedAt.UTC().Format("2006-01-02T15:04:05Z"))
		out.B = append(out.B, bs[i].StartedAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	for s, step := range steps {
		pick := func(rs []*benchReport, f func(benchResult) float64) []float64 {
			v := make([]float64, n)
			for i, r := range rs {
				v[i] = f(r.Results[s])
			}
			return v
		}
		med := func(rs []*benchReport, f func(benchResult) float64) float64 { return benchMedian(pick(rs, f)) }
		ta, tb := pick(as, benchThroughput), pick(bs, benchThroughput)
		c := benchCompared{Step: step, Workload: as[0].Results[s].Workload, Concurrency: as[0].Results[s].Concurrency,
			AThroughput: benchMedian(slices.Clone(ta)), BThroughput: benchMedian(slices.Clone(tb)),
			ACPU:      med(as, func(r benchResult) float64 { return r.CPUPerRequestUS }),
			BCPU:      med(bs, func(r benchResult) float64 { return r.CPUPerRequestUS }),
			AP99:      med(as, func(r benchResult) float64 { return r.P99ms }),
			BP99:      med(bs, func(r benchResult) float64 { return r.P99ms }),
			AWriterUS: med(as, benchWriterUS), BWriterUS: med(bs, benchWriterUS)}
		var ratios, shares []float64
		for i := range n {
			if pa, pb := as[i].Results[s].P99ms, bs[i].Results[s].P99ms; pa > 0 && pb > 0 {
				c.P99Pairs++
				if pa < pb {
					c.AP99Lower++
				}
			}
			if ta[i] <= 0 || tb[i] <= 0 {
				continue // a step that served nothing has no ratio
			}
			r := ta[i] / tb[i]
			ratios = append(ratios, r)
			switch {
			case r > 1:
				c.AWins++
			case r == 1:
				c.Ties++
			}
			ra, rb := as[i].Results[s].Ratio, bs[i].Results[s].Ratio
			if ra > 0 && rb > 0 && as[i].Results[s].Workload != "ceiling" {
				shares = append(shares, ra/rb)
			}
		}
		c.Counted = len(ratios)
		if len(ratios) > 0 {
			c.Ratio = benchMedian(ratios) // sorts ratios
			c.RatioMin, c.RatioMax = ratios[0], ratios[len(ratios)-1]
			c.SignP = benchSignTest(c.Counted-c.Ties, c.AWins)
		}
		if len(shares) > 0 {
			c.ShareRatio = benchMedian(shares)
		}
		out.Steps = append(out.Steps, c)
	}
	return out, nil
}

// benchComparison is the -compare report (-json).
type benchComparison struct {
	Pairs int `json:"pairs"`
	// A and B are when each pair's runs started (UTC).
	A     []string        `json:"a_started_at"`
	B     []string        `json:"b_started_at"`
	Steps []benchCompared `json:"steps"`
}

// benchCompared is one step of a comparison. Throughputs, CPU, p99 and
// the writer's time are each side's medians; Ratio is the median of the
// pairs' A/B throughput ratios, and ShareRatio of the pairs' ratios of
// their shares of their own run's ceiling, which cancels what the host's
// speed did between the two runs of a pair as far as the ceiling saw it.
type benchCompared struct {
	Step        string  `json:"step"`
	Workload    string  `json:"workload"`
	Concurrency int     `json:"concurrency"`
	AThroughput float64 `json:"a_throughput"`
	BThroughput float64 `json:"b_throughput"`
	Ratio       float64 `json:"ratio"`
	RatioMin    float64 `json:"ratio_min"`
	RatioMax    float64 `json:"ratio_max"`
	ShareRatio  float64 `json:"share_ratio,omitempty"`
	// AWins is how many of the Counted pairs A served more in (pairs in
	// which either run served nothing are not counted); SignP is the
	// two-sided sign test's chance of a lean at least this large if
	// neither build were faster (ties left out).
	AWins   int     `json:"a_faster"`
	Ties    int     `json:"ties,omitempty"`
	Counted int     `json:"pairs_counted"`
	SignP   float64 `json:"sign_test_p"`
	ACPU    float64 `json:"a_cpu_us_per_request"`
	BCPU    float64 `json:"b_cpu_us_per_request"`
	AP99    float64 `json:"a_p99_ms"`
	BP99    float64 `json:"b_p99_ms"`
	// AP99Lower is in how many of the P99Pairs pairs (both runs with a
	// p99) A's p99 was lower: the medians alone cannot say whether a
	// change lowered the p99 in a series or in one pair of it.
	AP99Lower int `json:"a_p99_lower"`
	P99Pairs  int `json:"p99_pairs"`
	// AWriterUS and BWriterUS are the SQLite writer's busy time per
	// request, in µs: what bounds a write step while the one writer is
	// busy (0 where the run reports no writer).
	AWriterUS float64 `json:"a_writer_us_per_request,omitempty"`
	BWriterUS float64 `json:"b_writer_us_per_request,omitempty"`
}

func benchThroughput(r benchResult) float64 { return r.Throughput }

// benchPairPaths drops empty entries from the two comma-separated lists
// of reports of a paired mode (opt and its other flag, other) and checks
// that they pair up, at least least (one or two) pairs of them; pair
// says what a pair is.
func benchPairPaths(opt, other, pair string, a, b []string, least int) ([]string, []string, error) {
	a = slices.DeleteFunc(a, func(p string) bool { return strings.TrimSpace(p) == "" })
	b = slices.DeleteFunc(b, func(p string) bool { return strings.TrimSpace(p) == "" })
	switch {
	case len(a) != len(b):
		return nil, nil, fmt.Errorf("bench: %s has %d reports and %s %d; a pair is %s, so give as many", opt, len(a), other, len(b), pair)
	case len(a) < least:
		many := "one or more pairs"
		if least == 2 {
			many = "two or more pairs"
		}
		return nil, nil, fmt.Errorf("bench: %s needs %s of runs (%s A1.json,A2.json %s B1.json,B2.json)", opt, many, opt, other)
	}
	return a, b, nil
}

// benchWriterUS is the writer's busy time per request of r, in µs.
func benchWriterUS(r benchResult) float64 {
	if r.Throughput <= 0 {
		return 0
	}
	return r.WriterBusy / r.Throughput * 1e6
}

// benchSignTest is the two-sided sign test's p for k wins in n pairs:
// the chance, if each pair were a fair coin, of a count at least as far
// from n/2 as k. 1 for n = 0.
func benchSignTest(n, k int) float64 {
	if n <= 0 {
		return 1
	}
	far := max(k, n-k)
	tail := 0.0
	lc, _ := math.Lgamma(float64(n + 1))
	for i := far; i <= n; i++ {
		li, _ := math.Lgamma(float64(i + 1))
		lr, _ := math.Lgamma(float64(n - i + 1))
		tail += math.Exp(lc - li - lr - float64(n)*math.Ln2)
	}
	return min(1, 2*tail)
}

// benchCeilingLean is how far a ceiling step's median A/B ratio may be
// from 1 before -compare warns: the ceiling is the same bare handler in
// both builds, so a lean there is the host's, and it moves every other
// step of the series alike.
const benchCeilingLean = 0.03

// benchCeilingLeans returns a warning for each ceiling step of c that
// leaned: its median ratio more than benchCeilingLean from 1, or every
// pair that was not a tie (four or more) one way.
func benchCeilingLeans(c *benchComparison) []string {
	var out []string
	for _, s := range c.Steps {
		if s.Workload != "ceiling" || s.Counted == 0 {
			continue
		}
		decided := s.Counted - s.Ties
		oneWay := decided >= 4 && (s.AWins == 0 || s.AWins == decided)
		if math.Abs(s.Ratio-1) > benchCeilingLean || oneWay {
			out = append(out, fmt.Sprintf("warning: the ceiling at c=%d: A/B %.3f, A faster in %d of %d pairs. It is the same bare handler in both builds, so the host, not the build, moved it, and this series' other steps moved with it: repeat the series.",
				s.Concurrency, s.Ratio, s.AWins, s.Counted))
		}
	}
	return out
}

// benchCompareWrite prints the comparison as a table and, with jsonOut,
// writes it as JSON.
func benchCompareWrite(c *benchComparison, stdout io.Writer, jsonOut string) error {
	fmt.Fprintf(stdout, "custos bench -compare: %d pairs, A (-compare) against B (-base); A's runs started %s … %s\n",
		c.Pairs, c.A[0], c.A[len(c.A)-1])
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tc\tA req/s\tB req/s\tA/B\trange\tA faster\tsign p\tA/B of ceiling shares\tCPU µs/req A\tB\tp99 ms A\tB\tA's p99 lower\twriter µs/req A\tB\t")
	for _, s := range c.Steps {
		share, writerA, writerB := "", "", ""
		if s.ShareRatio > 0 {
			share = fmt.Sprintf("%.3f", s.ShareRatio)
		}
		if s.AWriterUS > 0 || s.BWriterUS > 0 {
			writerA, writerB = fmt.Sprintf("%.0f", s.AWriterUS), fmt.Sprintf("%.0f", s.BWriterUS)
		}
		ratio, span, wins, p, lower := "-", "-", "no pair served", "-", "-"
		if s.P99Pairs > 0 {
			lower = fmt.Sprintf("%d of %d", s.AP99Lower, s.P99Pairs)
		}
		if s.Counted > 0 {
			ratio, span = fmt.Sprintf("%.3f", s.Ratio), fmt.Sprintf("%.2f–%.2f", s.RatioMin, s.RatioMax)
			wins, p = fmt.Sprintf("%d of %d", s.AWins, s.Counted), fmt.Sprintf("%.3g", s.SignP)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Workload, s.Concurrency, benchThousands(s.AThroughput), benchThousands(s.BThroughput),
			ratio, span, wins, p, share,
			s.ACPU, s.BCPU, benchMs(s.AP99), benchMs(s.BP99), lower, writerA, writerB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, w := range benchCeilingLeans(c) {
		fmt.Fprintln(stdout, w)
	}
	fmt.Fprintln(stdout, "A pair is one run of each build, one after the other. A sign p under 0.05 says this series' pairs lean one way beyond chance, not that the build made them: repeat the series at another time before keeping a change (BENCHMARKS.md, thirty-second session).")
	if jsonOut != "" {
		return benchWriteJSON(jsonOut, c)
	}
	return nil
}
