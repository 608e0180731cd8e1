package core

import (
	"fmt"
	"testing"
)

// TestImportProbes: the share of a job's batches with a stored key
// decides whether its next batch probes first (importProbes): never for
// a job of new customers; from the third batch of a job whose every
// batch has one; never for a job with one in every eleventh batch, and
// always for one with one in every fourth (break-even is about a sixth).
// Jobs are remembered apart, forgotten once their share falls low, and
// at most maxProbeJobs are kept.
func TestImportProbes(t *testing.T) {
	// run feeds job n batches, every k-th with a stored key (k = 0:
	// none), and returns how many probed first.
	run := func(p *importProbes, job string, n, k int) (probed int) {
		for i := 1; i <= n; i++ {
			if p.first(job) {
				probed++
			}
			p.seen(job, k > 0 && i%k == 0)
		}
		return probed
	}
	var p importProbes
	if got := run(&p, "new", 1000, 0); got != 0 || len(p.jobs) != 0 {
		t.Errorf("a job of new customers: %d batches probed, %d jobs kept; want 0 and 0", got, len(p.jobs))
	}
	if p.first("all") {
		t.Fatal("a job probes first before any batch of it")
	}
	p.seen("all", true)
	if p.first("all") {
		t.Error("a job probes first after one batch with a stored key")
	}
	p.seen("all", true)
	if !p.first("all") {
		t.Error("a job does not probe first after two batches with stored keys")
	}
	if got := run(&p, "all", 100, 1); got != 100 {
		t.Errorf("stored keys in every batch: %d of 100 probed, want all", got)
	}
	if got := run(&p, "sparse", 1000, 11); got != 0 {
		t.Errorf("a stored key every 11th batch: %d of 1000 probed, want 0", got)
	}
	if got := run(&p, "dense", 1000, 4); got < 980 {
		t.Errorf("a stored key every 4th batch: %d of 1000 probed, want all but the first few", got)
	}
	// A job that stops finding stored keys goes back to inserting first,
	// and is forgotten.
	probed := run(&p, "all", 100, 0)
	if probed == 0 || probed > 20 || p.first("all") {
		t.Errorf("after stored keys stop: %d batches probed, probing now %v; want a few, then none", probed, p.first("all"))
	}
	if _, kept := p.jobs["all"]; kept {
		t.Error("a job back to new customers is still remembered")
	}
	for i := range maxProbeJobs + 1 {
		p.seen(fmt.Sprint("job-", i), true)
	}
	if n := len(p.jobs); n > maxProbeJobs || n == 0 {
		t.Fatalf("%d jobs remembered, want 1 to %d", n, maxProbeJobs)
	}
	if _, kept := p.jobs[fmt.Sprint("job-", maxProbeJobs)]; !kept {
		t.Fatal("the job seen last was forgotten")
	}
}
