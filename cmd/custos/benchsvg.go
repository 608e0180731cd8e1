package main

import (
	"cmp"
	"fmt"
	"html"
	"io"
	"strings"
)

// benchTargets are issue 7's targets for the workloads that have one: a
// share of the bare handler's throughput (reads), or creates per second
// by store.
var benchTargets = map[string]float64{"read": 0.50, "lookup": 0.40}

func benchCreateTarget(store string) float64 {
	if benchStoreKind(store) == "postgres" {
		return 3000
	}
	return 5000
}

// benchSVG draws the run as an SVG picture: one bar per workload and
// concurrency for its throughput as a share of the bare handler's in the
// same run (the yardstick), with the target marked where the
// workload has one, and a second panel for creates per second against the
// store's target. Labels carry req/s, p50 and p99, and errors if any.
func benchSVG(w io.Writer, rep *benchReport) error {
	const (
		width  = 960
		left   = 150 // label column
		right  = 300 // value column
		barH   = 18
		gap    = 6
		top    = 58
		panelH = 30
	)
	plot := float64(width - left - right)
	var rows, creates []benchResult
	for _, r := range rep.Results {
		if r.Workload == "ceiling" {
			continue
		}
		rows = append(rows, r)
		if r.Workload == "create" {
			creates = append(creates, r)
		}
	}
	height := top + len(rows)*(barH+gap) + 40
	if len(creates) > 0 {
		height += panelH + len(creates)*(barH+gap) + 30
	}
	var b strings.Builder
	esc := html.EscapeString
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="15" font-weight="bold">custos bench: throughput as a share of a bare net/http handler (same run)</text>`+"\n")
	when := rep.StartedAt.UTC().Format("2006-01-02 15:04 UTC")
	if rep.Rounds > 0 {
		when = fmt.Sprintf("median of %d runs from %s", rep.Rounds, when)
	}
	fmt.Fprintf(&b, `<text x="10" y="38" fill="#555">%s · %d subjects · %d CPU (%s) · %s per step · %s</text>`+"\n",
		esc(rep.Store), rep.Subjects, rep.NumCPU, esc(cmp.Or(rep.CPUModel, "unknown CPU")),
		esc(fmt.Sprintf("%gs", rep.DurationSec)), esc(when))
	// Axis: 0, 25, 50, 75, 100 % of the ceiling.
	axisBottom := top + len(rows)*(barH+gap)
	for _, pct := range []float64{0, 0.25, 0.5, 0.75, 1} {
		x := float64(left) + pct*plot
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top-6, x, axisBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#777">%.0f %%</text>`+"\n", x, axisBottom+14, pct*100)
	}
	y := top
	for _, r := range rows {
		ratio := min(max(r.Ratio, 0), 1)
		fill := "#4a7bb7"
		if r.Errors+r.LateErrors > 0 {
			fill = "#c0392b"
		}
		fmt.Fprintf(&b, `<g><title>%s c=%d: %.0f req/s, %.1f %% of the ceiling</title>`+"\n", esc(r.Workload), r.Concurrency, r.Throughput, r.Ratio*100)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s c=%d</text>`+"\n", left-8, y+barH-5, esc(r.Workload), r.Concurrency)
		fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", left, y, ratio*plot, barH, fill)
		if t, ok := benchTargets[r.Workload]; ok {
			x := float64(left) + t*plot
			fmt.Fprintf(&b, `<line class="target" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e67e22" stroke-width="3"/>`+"\n", x, y-2, x, y+barH+2)
		}
		label := benchSVGLabel(r)
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text></g>`+"\n", width-right+8, y+barH-5, esc(label))
		y += barH + gap
	}
	y = axisBottom + 30
	fmt.Fprintf(&b, `<text x="10" y="%d" fill="#555"><tspan fill="#e67e22">▮</tspan> target (issue 7): read 50 %%, lookup 40 %% of the ceiling; red bar: errors</text>`+"\n", y)
	if len(creates) > 0 {
		target := benchCreateTarget(rep.Store)
		scale := target * 1.25
		for _, r := range creates {
			scale = max(scale, r.Throughput*1.05)
		}
		y += panelH
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">durable creates per second, target %.0f/s on this store</text>`+"\n", y-8, target)
		y0 := y
		for _, r := range creates {
			fmt.Fprintf(&b, `<g><title>create c=%d: %.0f/s</title>`+"\n", r.Concurrency, r.Throughput)
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">create c=%d</text>`+"\n", left-8, y+barH-5, r.Concurrency)
			fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%.1f" height="%d" fill="#27ae60"/>`+"\n", left, y, r.Throughput/scale*plot, barH)
			fmt.Fprintf(&b, `<text x="%d" y="%d">%.0f/s · p99 %s ms</text></g>`+"\n", width-right+8, y+barH-5, r.Throughput, benchMs(r.P99ms))
			y += barH + gap
		}
		x := float64(left) + target/scale*plot
		fmt.Fprintf(&b, `<line class="target" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e67e22" stroke-width="3"/>`+"\n", x, y0-4, x, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#e67e22">%.0f/s</text>`+"\n", x, y+14, target)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// benchSVGLabel is the text beside a step's bar. An import step's share of
// the ceiling counts batches, so its label gives the rows stored a second
// instead, with the batches still in flight at the window's end when some
// were (RowsPerSecDrained); a read-batch step's gives the customers read a
// second.
func benchSVGLabel(r benchResult) string {
	rate := fmt.Sprintf("%.1f %% · %.0f/s", r.Ratio*100, r.Throughput)
	if r.Workload == "import" {
		rows := r.RowsPerSec
		if r.RowsPerSecDrained > 0 {
			rows = r.RowsPerSecDrained
		}
		rate = fmt.Sprintf("%.0f rows/s · %.0f batches/s", rows, r.Throughput)
	}
	if r.Workload == "read-batch" {
		rate = fmt.Sprintf("%.0f customers/s · %.0f req/s", r.RowsPerSec, r.Throughput)
	}
	label := fmt.Sprintf("%s · p50 %s p99 %s ms", rate, benchMs(r.P50ms), benchMs(r.P99ms))
	if r.Errors > 0 {
		label += fmt.Sprintf(" · %d errors", r.Errors)
	}
	if r.LateErrors > 0 {
		label += fmt.Sprintf(" · %d after the window", r.LateErrors)
	}
	return label
}
