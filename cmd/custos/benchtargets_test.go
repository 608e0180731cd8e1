package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestBenchVerdicts: each of issue 7's targets that a run measured is
// judged from its step, at the target's own boundary, on the store's
// create target; errors after the window count; a target whose step did
// not run is left out; and the table prints the verdicts with the host's
// speed against the reference machine.
func TestBenchVerdicts(t *testing.T) {
	rep := &benchReport{Store: "sqlite (fresh)", Results: []benchResult{
		{Workload: "ceiling", Concurrency: 16, Throughput: 31200, Ratio: 1},
		{Workload: "read", Concurrency: 16, Throughput: 15600, CeilingRPS: 31200, Ratio: 0.50},
		{Workload: "read", Concurrency: 64, P99ms: 20},
		{Workload: "lookup", Concurrency: 16, Throughput: 12449, CeilingRPS: 31200, Ratio: 0.399},
		{Workload: "create", Concurrency: 16, Throughput: 4999.4},
		{Workload: "create", Concurrency: 256, LateErrors: 1},
	}}
	got := benchVerdicts(rep)
	want := []struct {
		prefix string
		met    bool
		figure string
	}{
		{"masked read by id ≥ 50 %", true, "50.0 % (15,600/s of 31,200/s)"},
		{"lookup by mobile ≥ 40 %", false, "39.9 % (12,449/s of 31,200/s)"},
		{"durable creates ≥ 5,000/s", false, "4,999/s"},
		{"masked read p99 ≤ 20 ms", true, "20.00 ms"},
		{"zero errors", false, "1 in 5 steps at c=16,64,256"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d verdicts, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i].Target, w.prefix) || got[i].Met != w.met || got[i].Figure != w.figure {
			t.Errorf("verdict %d = %+v, want target %q…, met %v, figure %q", i, got[i], w.prefix, w.met, w.figure)
		}
	}
	if !strings.HasSuffix(got[4].Target, "(the target is every one from 1 to 256; not run: c=1)") {
		t.Errorf("errors judged without c=1: target %q, want it to name c=1 as not run", got[4].Target)
	}
	if !got[2].Absolute || !got[3].Absolute || got[0].Absolute || got[4].Absolute {
		t.Errorf("only the create and p99 targets are absolute: %+v", got)
	}
	if s := benchHostSpeed(rep); s != 0.8 {
		t.Errorf("host speed %v, want 0.8 (31,200 of 39,000)", s)
	}

	// PostgreSQL's create target is 3,000/s; nothing else ran, so the
	// read targets and the host's speed are left out.
	pg := &benchReport{Store: "postgres://***@127.0.0.1:5432/b", Results: []benchResult{
		{Workload: "create", Concurrency: 16, Throughput: 3000},
	}}
	got = benchVerdicts(pg)
	if len(got) != 2 || !strings.Contains(got[0].Target, "3,000/s") || !got[0].Met || !got[1].Met ||
		!strings.HasSuffix(got[1].Target, "not run: c=1,64,256)") {
		t.Errorf("PostgreSQL at 3,000 creates/s: %+v", got)
	}
	// A run of every concurrency from 1 to 256 (and more) states the
	// issue's target as it is.
	var all []benchResult
	for _, c := range []int{1, 16, 64, 256, 512} {
		all = append(all, benchResult{Workload: "update", Concurrency: c})
	}
	if got := benchVerdicts(&benchReport{Results: all}); len(got) != 1 || got[0].Target != "zero errors at every concurrency from 1 to 256" || !got[0].Met {
		t.Errorf("errors at c=1…512: %+v", got)
	}
	if s := benchHostSpeed(pg); s != 0 {
		t.Errorf("host speed without a ceiling step: %v, want 0", s)
	}
	if got := benchVerdicts(&benchReport{Results: []benchResult{{Workload: "ceiling", Concurrency: 16}}}); len(got) != 0 {
		t.Errorf("a run of the ceiling alone has no targets: %+v", got)
	}

	rep.Targets, rep.HostSpeed = benchVerdicts(rep), benchHostSpeed(rep)
	var buf bytes.Buffer
	benchTable(&buf, rep)
	out := buf.String()
	for _, line := range []string{
		"targets (issue 7):\n",
		"  met     masked read by id ≥ 50 % of the ceiling at c=16: 50.0 % (15,600/s of 31,200/s)\n",
		"  missed  durable creates ≥ 5,000/s at c=16 on this store: 4,999/s\n",
		"  the ceiling at c=16 ran at 80 % of the reference machine's 39,000/s",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("table lacks %q:\n%s", line, out)
		}
	}

	// A run that answered reads before their audit event was on disk
	// says so beside each read figure and above the table.
	rep.ReadAuditDurability = "committed"
	rep.Targets = benchVerdicts(rep)
	for i := range 2 {
		if !strings.HasSuffix(rep.Targets[i].Figure, ", with read_audit_durability committed") {
			t.Errorf("verdict %d with read_audit_durability committed: figure %q does not say so", i, rep.Targets[i].Figure)
		}
	}
	buf.Reset()
	benchTable(&buf, rep)
	if !strings.Contains(buf.String(), "read_audit_durability committed: reads, lookups and denials were answered once their audit event was committed") {
		t.Errorf("table of a run with read_audit_durability committed does not say so:\n%s", buf.String())
	}
}

func TestBenchThousands(t *testing.T) {
	for x, want := range map[float64]string{0: "0", 999: "999", 1000: "1,000", 39000: "39,000", 1234567.4: "1,234,567", 999.5: "1,000", -5: "0"} {
		if got := benchThousands(x); got != want {
			t.Errorf("benchThousands(%v) = %q, want %q", x, got, want)
		}
	}
}
