package main

import (
	"runtime/debug"
	"strings"
	"testing"

	"custos/internal/gcheadroom"
)

// TestServeGCHeadroom: serve with --gc-headroom-mib keeps the collector's
// goal that far above a small live heap (its percentage, on /metrics,
// well over Go's 100); by default it picks a headroom of its own from the
// memory limit (on this machine, with gigabytes, the largest, 128 MiB) and
// says so in its "listening" line; with -1 the percentage is Go's
// default. Each node is a process of its own: the setting is the
// process's.
func TestServeGCHeadroom(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped under -short")
	}
	bin := scaleBuild(t)
	dir, _ := crashInit(t, bin, nil)
	p := startChild(t, bin, "serve", "100ms", "--data", dir, "--gc-headroom-mib", "512")
	// A live heap of tens of MiB under a headroom of 512: the percentage
	// puts the goal 512 MiB above it, at least several hundred.
	if pct := metricAt(t, p.url, "custos_go_gc_percent"); pct < 500 {
		t.Errorf("custos_go_gc_percent with --gc-headroom-mib 512: %d, want at least 500", pct)
	}
	if goal, live := metricAt(t, p.url, "custos_go_heap_goal_bytes"), metricAt(t, p.url, "custos_go_heap_live_bytes"); goal < live+400<<20 {
		t.Errorf("heap goal %d with %d live, want at least 400 MiB above it", goal, live)
	}
	p.terminate(t)

	p = startChild(t, bin, "serve", "100ms", "--data", dir, "--gc-headroom-mib", "-1")
	if pct := metricAt(t, p.url, "custos_go_gc_percent"); pct != 100 {
		t.Errorf("custos_go_gc_percent with --gc-headroom-mib -1: %d, want Go's 100", pct)
	}
	p.terminate(t)

	if l := gcheadroom.MemoryLimit(); l.Bytes < 2<<30 {
		t.Skipf("the default headroom's check wants a machine with 2 GiB or more to give: %v", l)
	}
	p = startChild(t, bin, "serve", "100ms", "--data", dir)
	if goal, live := metricAt(t, p.url, "custos_go_heap_goal_bytes"), metricAt(t, p.url, "custos_go_heap_live_bytes"); goal < live+100<<20 {
		t.Errorf("by default: heap goal %d with %d live, want about 128 MiB above it", goal, live)
	}
	p.terminate(t)
	if log := p.stderr.String(); !strings.Contains(log, `gc_headroom="128 MiB (auto: a sixteenth of`) {
		t.Errorf("serve's log does not say how it chose the default headroom:\n%s", log)
	}
}

// TestStartGCSmallLimit: under a memory limit whose sixteenth is below
// Go's own 4 MiB goal, the default starts no pacer and says why.
func TestStartGCSmallLimit(t *testing.T) {
	old := debug.SetMemoryLimit(32 << 20)
	defer debug.SetMemoryLimit(old)
	gc, how := startGC(Config{})
	defer gc.Stop()
	if gc != nil || !strings.HasPrefix(how, "off (auto: a sixteenth of 32 MiB of GOMEMLIMIT") {
		t.Errorf("startGC under a 32 MiB GOMEMLIMIT: pacer %v, %q; want none, saying why", gc != nil, how)
	}
}
