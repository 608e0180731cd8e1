package core

import "sync"

// An import batch's write transaction must answer a row whose lookup key
// (mobile, e-mail, …) a stored customer already has as a duplicate of
// that customer. It can learn of such keys two ways:
//
//   - probe first: look up the owners of all the batch's keys
//     (FindLookups), then insert the keys no one has;
//   - insert first: insert every key; the insert skips a key someone has
//     (ON CONFLICT DO NOTHING) and its row count falls short, and the
//     batch is then rolled back and run again, probing first.
//
// Both descend to the same random leaves of the lookups index, so
// probing first costs a batch without stored keys a second walk to each
// (about a fifth of the writer's time in a 1M seed; BENCHMARKS.md,
// twenty-first session), while inserting first costs a batch with one
// its whole write again (and on SQLite makes its commit group run again
// with savepoints). Probing first pays when more than about p/(1+p) of a
// job's batches, p the probe's share, have a stored key: a sixth.
//
// importProbes keeps, per job on this node, a moving average of the
// share of its batches that had a stored key (each batch weighs
// probeWeight), and a batch probes first when it is at least
// probeAbove. A job of new customers never probes; one that re-sends
// stored customers probes from its third batch on; one with a stored
// customer in every eleventh batch or fewer never probes, and between
// the two some batches probe.
type importProbes struct {
	mu   sync.Mutex
	jobs map[string]float64
}

const (
	probeAbove  = 1.0 / 6
	probeWeight = 1.0 / 8
	// probeForget: a job whose share falls below it is forgotten (as
	// if new), which keeps the map small.
	probeForget = 1.0 / 1024
	// maxProbeJobs bounds the jobs remembered; past it all are
	// forgotten (each then costs at most two batches written twice).
	maxProbeJobs = 1024
)

// first reports whether job's next batch should probe first.
func (p *importProbes) first(job string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jobs[job] >= probeAbove
}

// seen records that a committed batch of job had a stored key or not
// (found by its probe, or by its insert falling short).
func (p *importProbes) seen(job string, stored bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	share, known := p.jobs[job]
	if !known && !stored {
		return
	}
	x := 0.0
	if stored {
		x = 1
	}
	share += (x - share) * probeWeight
	switch {
	case share < probeForget:
		delete(p.jobs, job)
	case known:
		p.jobs[job] = share
	default:
		if p.jobs == nil || len(p.jobs) >= maxProbeJobs {
			p.jobs = map[string]float64{}
		}
		p.jobs[job] = share
	}
}
