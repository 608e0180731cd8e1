package main

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// benchReferenceCeiling is the bare handler's throughput at c=16 on the
// machine issue 7's targets were set for ("a bare net/http handler serves
// about 39,000 requests/s"). The read targets are shares of the ceiling
// and so hold on any machine; the create and latency targets are
// absolute, so a run on a slower host misses them more easily. The
// host's speed says only part of it: four runs of one build within 40
// minutes created 4,176–5,127 customers a second at c=16, and two of
// them with the ceiling at 40,764 and 40,338/s created 5,127 and 4,622
// (BENCHMARKS.md, twenty-seventh session).
const benchReferenceCeiling = 39000

// benchVerdict is one of issue 7's targets as this run measured it.
type benchVerdict struct {
	Target string `json:"target"` // as the issue states it
	Figure string `json:"figure"` // what this run measured
	Met    bool   `json:"met"`
	// Absolute: the target is a rate or a latency, not a share of the
	// ceiling, so it depends on the host's speed (benchReport.HostSpeed).
	Absolute bool `json:"absolute,omitempty"`
}

// benchVerdicts judges the targets of issue 7 that this run measured: a
// read by id and a lookup at c=16 as shares of the ceiling, durable
// creates a second at c=16 on this store, the read's p99 at c=64, and no
// errors in any step (errors after the window included). A target whose
// step did not run is left out.
func benchVerdicts(rep *benchReport) []benchVerdict {
	step := func(workload string, c int) (benchResult, bool) {
		i := slices.IndexFunc(rep.Results, func(r benchResult) bool { return r.Workload == workload && r.Concurrency == c })
		if i < 0 {
			return benchResult{}, false
		}
		return rep.Results[i], true
	}
	var out []benchVerdict
	for _, t := range []struct {
		workload, what string
		share          float64
	}{
		{"read", "masked read by id", benchTargets["read"]},
		{"lookup", "lookup by mobile", benchTargets["lookup"]},
	} {
		if r, ok := step(t.workload, 16); ok {
			figure := fmt.Sprintf("%.1f %% (%s/s of %s/s)", r.Ratio*100, benchThousands(r.Throughput), benchThousands(r.CeilingRPS))
			if rep.ReadAuditDurability != "" {
				// Not the default: say so wherever the figure goes.
				figure += fmt.Sprintf(", with read_audit_durability %s", rep.ReadAuditDurability)
			}
			out = append(out, benchVerdict{
				Target: fmt.Sprintf("%s ≥ %.0f %% of the ceiling at c=16", t.what, t.share*100),
				Figure: figure,
				Met:    r.Ratio >= t.share,
			})
		}
	}
	if r, ok := step("create", 16); ok {
		target := benchCreateTarget(rep.Store)
		out = append(out, benchVerdict{
			Target:   fmt.Sprintf("durable creates ≥ %s/s at c=16 on this store", benchThousands(target)),
			Figure:   benchThousands(r.Throughput) + "/s",
			Met:      r.Throughput >= target,
			Absolute: true,
		})
	}
	if r, ok := step("read", 64); ok {
		out = append(out, benchVerdict{
			Target:   "masked read p99 ≤ 20 ms at c=64",
			Figure:   benchMs(r.P99ms) + " ms",
			Met:      r.P99ms <= 20,
			Absolute: true,
		})
	}
	var steps int
	var errs int64
	var cs []int
	for _, r := range rep.Results {
		if r.Workload == "ceiling" {
			continue
		}
		steps++
		errs += r.Errors + r.LateErrors
		if !slices.Contains(cs, r.Concurrency) {
			cs = append(cs, r.Concurrency)
		}
	}
	if steps > 0 {
		slices.Sort(cs)
		figure := fmt.Sprintf("%d in %d steps at c=%s", errs, steps, benchCList(cs))
		if rep.Rounds > 1 {
			figure = fmt.Sprintf("%d in %d runs of %d steps at c=%s", errs, rep.Rounds, steps, benchCList(cs))
		}
		// The issue asks for every concurrency from 1 to 256; a run that
		// left some out can only speak for the ones it ran.
		target := "zero errors at every concurrency from 1 to 256"
		if missing := benchErrorsUncovered(cs); len(missing) > 0 {
			target = "zero errors at the concurrencies this run measured (the target is every one from 1 to 256; not run: c=" + benchCList(missing) + ")"
		}
		out = append(out, benchVerdict{
			Target: target,
			Figure: figure,
			Met:    errs == 0,
		})
	}
	return out
}

// benchErrorConcurrencies are the concurrencies a run must cover to speak
// for issue 7's "zero errors at every concurrency from 1 to 256": the
// range's ends and the two the other targets are measured at. (The
// default -c, 1,16,64, leaves out 256; the full runs in BENCHMARKS.md
// name all four.)
var benchErrorConcurrencies = []int{1, 16, 64, 256}

// benchErrorsUncovered lists those of benchErrorConcurrencies that cs
// lacks.
func benchErrorsUncovered(cs []int) []int {
	var out []int
	for _, c := range benchErrorConcurrencies {
		if !slices.Contains(cs, c) {
			out = append(out, c)
		}
	}
	return out
}

// benchCList writes concurrencies as "1,16,64".
func benchCList(cs []int) string {
	list := make([]string, len(cs))
	for i, c := range cs {
		list[i] = strconv.Itoa(c)
	}
	return strings.Join(list, ",")
}

// benchHostSpeed is this run's ceiling at c=16 over the reference
// machine's, or 0 if the ceiling did not run at c=16.
func benchHostSpeed(rep *benchReport) float64 {
	for _, r := range rep.Results {
		if r.Workload == "ceiling" && r.Concurrency == 16 {
			return r.Throughput / benchReferenceCeiling
		}
	}
	return 0
}

// benchTargetLines prints the verdicts under the table.
func benchTargetLines(w io.Writer, rep *benchReport) {
	if len(rep.Targets) == 0 {
		return
	}
	fmt.Fprintln(w, "targets (issue 7):")
	for _, v := range rep.Targets {
		verdict := "missed"
		if v.Met {
			verdict = "met   "
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", verdict, v.Target, v.Figure)
	}
	if rep.HostSpeed > 0 {
		fmt.Fprintf(w, "  the ceiling at c=16 ran at %.0f %% of the reference machine's %s/s; the creates and p99 targets are absolute, so they read worse on a slower host and better on a faster one\n",
			rep.HostSpeed*100, benchThousands(benchReferenceCeiling))
	}
}

// benchThousands formats a rate (not negative) as a whole number with
// thousands separated by commas, as BENCHMARKS.md writes them.
func benchThousands(x float64) string {
	s := strconv.FormatFloat(max(x, 0), 'f', 0, 64)
	var b strings.Builder
	for i, d := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	return b.String()
}
