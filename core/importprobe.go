package core

import (
	"fmt"
	"io"
	"sync"

	"custos/internal/promtext"
)

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
// its whole write again, and on SQLite makes its commit group (other
// batches of the import among its members) run again with savepoints,
// so one miss costs more than a batch's probes save.
//
// importProbes remembers, per job on this node, which to do: a job
// inserts first until a batch falls short, then probes first for a run
// of batches that doubles with every miss (up to maxProbeRun), and a run
// restarts while its batches find stored keys. A job of new customers
// thus never probes, one re-sending stored customers probes from its
// second batch on, and one with stored customers far apart wastes about
// one batch per maxProbeRun. A policy that probed only while more than
// a sixth of recent batches had stored keys (the break-even if a miss
// cost one batch) misses on every tenth batch of a job with a stored
// customer in each; it was tried and dropped for this one, whose worst
// case is milder (BENCHMARKS.md, twenty-second session).
type importProbes struct {
	mu   sync.Mutex
	jobs map[string]*probeState
}

// probeState is one job's: left batches still to probe first; run, the
// length of the next probing run after a miss.
type probeState struct{ left, run int }

const (
	maxProbeRun = 64
	// maxProbeJobs bounds the jobs remembered; past it the memory is
	// dropped (each job then costs at most one wasted batch again).
	maxProbeJobs = 1024
)

// first reports whether job's next batch should probe first.
func (p *importProbes) first(job string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.jobs[job]
	return st != nil && st.left > 0
}

// missed records that a batch of job inserted first and fell short: the
// job probes first for its next run, twice as long as the last.
func (p *importProbes) missed(job string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.jobs[job]
	if st == nil {
		if len(p.jobs) >= maxProbeJobs || p.jobs == nil {
			p.jobs = map[string]*probeState{}
		}
		st = &probeState{}
		p.jobs[job] = st
	}
	st.run = min(max(2*st.run, 1), maxProbeRun)
	st.left = st.run
}

// probed records that a batch of job probed first and was committed,
// having found a stored key or not.
func (p *importProbes) probed(job string, found bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.jobs[job]
	switch {
	case st == nil:
	case found:
		st.left = st.run
	case st.left > 0:
		st.left--
	}
}

// ImportStats are this node's import batches since it started: those
// committed, those of them that probed for stored keys first, and those
// written twice because inserting first found a key taken (importProbes).
type ImportStats struct {
	Batches, Probed, Rerun int64
}

// ImportStats returns the counters.
func (s *Service) ImportStats() ImportStats {
	return ImportStats{Batches: s.importBatches.Load(), Probed: s.importProbed.Load(), Rerun: s.importRerun.Load()}
}

// WriteMetrics writes the import counters in the Prometheus text format.
func (s *Service) WriteMetrics(w io.Writer) {
	st := s.ImportStats()
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_import_batches_total", Help: "Import batches committed (this node).", Value: fmt.Sprint(st.Batches)},
		{Name: "custos_import_batches_probed_total", Help: "Import batches that looked for stored customers before inserting (this node).", Value: fmt.Sprint(st.Probed)},
		{Name: "custos_import_batches_rerun_total", Help: "Import batches written twice because inserting first found a stored customer (this node).", Value: fmt.Sprint(st.Rerun)},
	})
}
