// Package gcheadroom keeps the garbage collector's heap goal a fixed
// headroom above the live heap, where Go's default would keep it only as
// far above as the live heap is large.
//
// With GOGC=100 the collector runs each time the heap has grown by as
// much as was live after the last cycle. A custos node's live heap is
// small (tens of MiB with a read cache of 10,000 customers) and every
// request allocates about 40 KB, so it collected several times a second,
// and each cycle's marking and write barriers slowed the requests under
// way. GOGC=400 gave reads 10–17 % and creates up to 14 % in interleaved
// pairs (BENCHMARKS.md, eighth and forty-eighth sessions), but it lets the
// heap grow to five times the live heap, which doubles the memory of a
// node with a large read cache: the reason it never became the default.
//
// A headroom bounds the price instead: after each cycle the percentage is
// set so that the next goal is the live heap plus the larger of the
// headroom and the live heap itself. A small heap gets the headroom, a
// heap larger than the headroom Go's default. The
// process then holds at most the headroom more than with the default,
// whatever the read cache's size. A node's default headroom (Auto) is a
// sixteenth of the memory it may use, at most 128 MiB (limit.go), so a
// small container gives up little.
package gcheadroom

import (
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"

	"custos/internal/promtext"
)

// minLive is the live heap below which the percentage is figured as for
// this one: Go's own minimum heap goal is 4 MiB times the percentage over
// 100, so a smaller live heap would not move the goal further.
const minLive = 4 << 20

// Pacer adjusts the collector's percentage after each cycle (Start).
type Pacer struct {
	headroom uint64
	stopped  atomic.Bool
	mu       sync.Mutex
	samples  []metrics.Sample
	percent  int
}

// Start keeps the heap goal at least headroom bytes above the live heap
// until Stop. It returns nil, and changes nothing, when headroom is 0 or
// GOGC is set in the environment: the operator's setting stands.
// GOMEMLIMIT still caps the heap as always.
func Start(headroom uint64) *Pacer {
	if headroom == 0 || os.Getenv("GOGC") != "" {
		return nil
	}
	p := &Pacer{headroom: headroom, percent: 100,
		samples: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	p.adjust()
	p.arm()
	return p
}

// Stop ends the adjustments and puts Go's default back.
func (p *Pacer) Stop() {
	if p == nil || p.stopped.Swap(true) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	debug.SetGCPercent(100)
	p.percent = 100
}

// sentinel is an object nothing refers to: its cleanup runs after the
// cycle that found it unreachable, and arms the next one.
type sentinel struct{ _ [64]byte }

// arm has adjust run after the next collection.
func (p *Pacer) arm() {
	runtime.AddCleanup(new(sentinel), func(p *Pacer) {
		if p.stopped.Load() {
			return
		}
		p.adjust()
		p.arm()
	}, p)
}

// adjust sets the percentage for the live heap the last cycle found.
func (p *Pacer) adjust() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return
	}
	metrics.Read(p.samples)
	var live uint64
	if v := p.samples[0].Value; v.Kind() == metrics.KindUint64 {
		live = v.Uint64()
	}
	if want := Percent(live, p.headroom); want != p.percent {
		debug.SetGCPercent(want)
		p.percent = want
	}
}

// Percent is the collector's percentage that puts the heap goal headroom
// above a live heap of live bytes (at least minLive): at least Go's
// default of 100.
func Percent(live, headroom uint64) int {
	return int(max(headroom*100/max(live, minLive), 100))
}

// WriteMetrics writes the collector's state in Prometheus' text format,
// for /metrics: its percentage (100 unless GOGC, or a pacer, set it), the
// heap goal, the live heap the last cycle found, and the cycles so far.
func WriteMetrics(w io.Writer) {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	v := func(i int) string {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return strconv.FormatUint(s[i].Value.Uint64(), 10)
		}
		return "0"
	}
	promtext.WriteGauges(w, []promtext.Counter{
		{Name: "custos_go_gc_percent", Help: "The garbage collector's percentage (GOGC; set after each cycle with --gc-headroom-mib).", Value: v(0)},
		{Name: "custos_go_heap_goal_bytes", Help: "The heap size at which the garbage collector next collects.", Value: v(1)},
		{Name: "custos_go_heap_live_bytes", Help: "The live heap the last collection found.", Value: v(2)},
	})
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_go_gc_cycles_total", Help: "Garbage collections since the process started.", Value: v(3)},
	})
}
