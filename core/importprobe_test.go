package core

import (
	"fmt"
	"testing"
)

// TestImportProbes: a job inserts first until a miss; it then probes
// first for a run of batches that doubles with each miss up to
// maxProbeRun, restarts while its batches find stored keys, and counts
// down on batches that find none. Jobs are remembered apart, and at most
// maxProbeJobs of them.
func TestImportProbes(t *testing.T) {
	var p importProbes
	if p.first("a") {
		t.Fatal("a new job probes first")
	}
	p.probed("a", true) // a job never missed keeps no state
	if p.first("a") {
		t.Fatal("a job that never missed probes first")
	}
	// probesFor counts the batches a job probes before inserting first
	// again, when none of them finds a stored key.
	probesFor := func(job string) int {
		n := 0
		for p.first(job) {
			if n++; n > 2*maxProbeRun {
				t.Fatalf("%s still probing after %d batches", job, n)
			}
			p.probed(job, false)
		}
		return n
	}
	want := 1
	for miss := 1; miss <= 9; miss++ {
		p.missed("a")
		if got := probesFor("a"); got != want {
			t.Fatalf("after miss %d: %d batches probed, want %d", miss, got, want)
		}
		want = min(2*want, maxProbeRun)
	}
	if p.first("b") {
		t.Fatal("job b probes first after job a's misses")
	}
	p.missed("b")
	p.probed("b", false)
	p.missed("b") // run 2
	p.probed("b", false)
	p.probed("b", true) // found: the run starts again
	if got := probesFor("b"); got != 2 {
		t.Fatalf("after a probe that found a key: %d batches probed, want 2", got)
	}
	for i := range maxProbeJobs + 1 {
		p.missed(fmt.Sprint("job-", i))
	}
	if n := len(p.jobs); n > maxProbeJobs {
		t.Fatalf("%d jobs remembered, want at most %d", n, maxProbeJobs)
	}
	if !p.first(fmt.Sprint("job-", maxProbeJobs)) {
		t.Fatal("the job that missed last was forgotten")
	}
}
