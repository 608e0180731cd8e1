package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestBenchHarnessJSON runs a tiny `custos bench` end to end and checks the
// JSON report: every requested workload ran, without errors, against a
// measured ceiling.
func TestBenchHarnessJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("bench harness: skipped with -short")
	}
	file := filepath.Join(t.TempDir(), "bench.json")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	args := []string{"bench", "-subjects", "200", "-c", "2", "-duration", "300ms", "-workloads", "create,read,lookup,mixed", "-json", file}
	if code := run(ctx, args, &stdout, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("custos bench: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep benchReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("bench JSON: %v", err)
	}
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
	for _, name := range []string{"create", "read", "lookup", "mixed"} {
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
	if len(rep.Results) != 5 {
		t.Errorf("results: got %d rows, want 5 (ceiling + 4 workloads)", len(rep.Results))
	}
	if !bytes.Contains(stdout.Bytes(), []byte("vs ceiling")) {
		t.Errorf("stdout has no results table:\n%s", stdout.String())
	}
}
