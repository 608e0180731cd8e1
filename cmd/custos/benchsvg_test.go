package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"
)

// TestBenchSVG: the chart is well-formed SVG with one bar per measured
// step, bars as long as their share of the ceiling, the read and lookup
// targets marked, a creates panel, and errors shown.
func TestBenchSVG(t *testing.T) {
	rep := &benchReport{Store: "sqlite (fresh)", Subjects: 100, NumCPU: 2, DurationSec: 1, StartedAt: time.Unix(0, 0),
		Results: []benchResult{
			{Workload: "ceiling", Concurrency: 16, Throughput: 20000, Ratio: 1},
			{Workload: "read", Concurrency: 16, Throughput: 5000, Ratio: 0.25, P50ms: 3, P99ms: 9},
			{Workload: "lookup", Concurrency: 16, Throughput: 10000, Ratio: 0.5},
			{Workload: "create", Concurrency: 16, Throughput: 2500, Ratio: 0.125, Errors: 3},
			{Workload: "mixed", Concurrency: 16, Throughput: 4000, Ratio: 1.7}, // clipped to the plot
		}}
	var buf bytes.Buffer
	if err := benchSVG(&buf, rep); err != nil {
		t.Fatal(err)
	}
	svg := buf.String()
	type rect struct {
		Class string  `xml:"class,attr"`
		Width float64 `xml:"width,attr"`
		Fill  string  `xml:"fill,attr"`
	}
	var bars []rect
	targets := 0
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		var class string
		for _, a := range se.Attr {
			if a.Name.Local == "class" {
				class = a.Value
			}
		}
		switch {
		case se.Name.Local == "rect" && class == "bar":
			var r rect
			if err := dec.DecodeElement(&r, &se); err != nil {
				t.Fatal(err)
			}
			bars = append(bars, r)
		case se.Name.Local == "line" && class == "target":
			targets++
		}
	}
	// 4 share bars (no ceiling bar) + 1 create bar.
	if len(bars) != 5 {
		t.Fatalf("got %d bars, want 5: %+v", len(bars), bars)
	}
	const plot = 960 - 150 - 300
	for i, want := range []float64{0.25, 0.5, 0.125, 1} {
		if got := bars[i].Width / plot; got < want-0.001 || got > want+0.001 {
			t.Errorf("bar %d: %.3f of the plot, want %.3f", i, got, want)
		}
	}
	if bars[2].Fill != "#c0392b" {
		t.Errorf("the step with errors is drawn %s, want red", bars[2].Fill)
	}
	// read and lookup targets, and the creates target.
	if targets != 3 {
		t.Errorf("got %d target marks, want 3", targets)
	}
	for _, s := range []string{"5000/s", "3 errors", "25.0 %"} {
		if !strings.Contains(svg, s) {
			t.Errorf("chart has no %q", s)
		}
	}
}

// TestBenchSVGLabel: an import step is labelled with the rows it stored a
// second, counting its drain when it had one, not with its batches'
// share of the ceiling; errors after the window are named.
func TestBenchSVGLabel(t *testing.T) {
	for _, tt := range []struct {
		r    benchResult
		want []string
		not  []string
	}{
		{benchResult{Workload: "read", Throughput: 5000, Ratio: 0.25, P50ms: 3, P99ms: 9}, []string{"25.0 %", "5000/s"}, []string{"rows/s", "errors"}},
		{benchResult{Workload: "import", Throughput: 13, Ratio: 0.0003, RowsPerSec: 6500}, []string{"6500 rows/s", "13 batches/s"}, []string{"%"}},
		{benchResult{Workload: "import", Throughput: 11, RowsPerSec: 1200, RowsPerSecDrained: 6170, LateErrors: 2}, []string{"6170 rows/s", "2 after the window"}, []string{"1200"}},
		{benchResult{Workload: "read-batch", Throughput: 700, Ratio: 0.02, RowsPerSec: 14000}, []string{"14000 customers/s", "700 req/s"}, []string{"%", "rows"}},
	} {
		got := benchSVGLabel(tt.r)
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s label %q lacks %q", tt.r.Workload, got, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(got, n) {
				t.Errorf("%s label %q has %q", tt.r.Workload, got, n)
			}
		}
	}
}
