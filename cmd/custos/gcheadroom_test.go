package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"custos/internal/gcheadroom"
)

// TestServeGCHeadroom: serve with --gc-headroom-mib keeps the collector's
// goal that far above a small live heap (its percentage, on /metrics,
// well over Go's 100); by default it picks a headroom of its own from the
// memory limit (on this machine, with gigabytes, the largest, 128 MiB) and
// says so in its "listening" line; with -1 the percentage is Go's
// default. Each node is a process of its own: the setting is the
// process's. The listening line also gives GOMAXPROCS.
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

	// The listening line also gives the Go processors the node runs with,
	// here from GOMAXPROCS in its environment (docs/deploy.md).
	t.Setenv("GOMAXPROCS", "1")
	p = startChild(t, bin, "serve", "100ms", "--data", dir, "--gc-headroom-mib", "-1")
	if pct := metricAt(t, p.url, "custos_go_gc_percent"); pct != 100 {
		t.Errorf("custos_go_gc_percent with --gc-headroom-mib -1: %d, want Go's 100", pct)
	}
	p.terminate(t)
	if log := p.stderr.String(); !strings.Contains(log, " gomaxprocs=1") {
		t.Errorf("serve's listening line does not give GOMAXPROCS=1 from its environment:\n%s", log)
	}
	os.Unsetenv("GOMAXPROCS") // t.Setenv restores it at the end; the next node runs with the default

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

// TestServeUnderCgroupLimit: a node started in a memory cgroup limited to
// 512 MiB picks a headroom of a sixteenth of it (32 MiB) and Go's soft
// memory limit at nine tenths (460 MiB), says so, and keeps its heap goal
// that far above the live heap. It needs a memory cgroup it may make (as
// root on this machine and in CI), and skips saying so otherwise.
func TestServeUnderCgroupLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped under -short")
	}
	procs := memoryCgroup(t, 512<<20)
	bin := scaleBuild(t)
	dir, _ := crashInit(t, bin, nil)
	// The wrapper joins the cgroup, then becomes the node, so that the
	// node starts under the limit.
	wrapper := filepath.Join(t.TempDir(), "in-cgroup")
	script := "#!/bin/sh\necho $$ > " + procs + "\nexec " + bin + ` "$@"` + "\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	p := startChild(t, wrapper, "serve", "100ms", "--data", dir)
	if goal, live := metricAt(t, p.url, "custos_go_heap_goal_bytes"), metricAt(t, p.url, "custos_go_heap_live_bytes"); goal < live+24<<20 || goal > live+max(live, 32<<20)+8<<20 {
		t.Errorf("heap goal %d with %d live, want about 32 MiB above it", goal, live)
	}
	// The log is whole once the node has stopped.
	p.terminate(t)
	want := `gc_headroom="32 MiB (auto: a sixteenth of 512 MiB of cgroup, at most 128 MiB); soft memory limit 460 MiB, nine tenths of the cgroup's"`
	if log := p.stderr.String(); !strings.Contains(log, want) {
		t.Errorf("serve in a 512 MiB cgroup does not log %s:\n%s", want, log)
	}
}

// memoryCgroup makes a memory cgroup under this process's (the first that
// gcheadroom.LimitFiles names), limited to limit bytes, removed at the
// end of the test, and returns its cgroup.procs file; it skips the test
// when it cannot.
func memoryCgroup(t *testing.T, limit int) string {
	t.Helper()
	files := gcheadroom.LimitFiles()
	if len(files) == 0 {
		t.Skip("no memory cgroup found in /proc/self")
	}
	base, file := filepath.Split(files[0])
	dir := filepath.Join(base, fmt.Sprintf("custos-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Skipf("cannot make a memory cgroup under %s (not root, or no memory controller here): %v", base, err)
	}
	t.Cleanup(func() {
		// Once its processes have left: the node has exited by now.
		for range 50 {
			if os.Remove(dir) == nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("cgroup %s left behind", dir)
	})
	if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.Itoa(limit)), 0o644); err != nil {
		t.Skipf("cannot limit the memory cgroup %s: %v", dir, err)
	}
	return filepath.Join(dir, "cgroup.procs")
}
