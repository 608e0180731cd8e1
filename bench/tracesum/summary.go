package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/exp/trace"
)

// Summary is where an execution trace's goroutines spent their time.
type Summary struct {
	Span  time.Duration // from the first event to the last
	Procs int           // GOMAXPROCS, from the trace's metric (0: not recorded)

	// States sums the time goroutines spent in each state, by the site
	// (the first frame outside the runtime and the standard library's
	// plumbing) that blocked or made the system call. Runnable and
	// Running have no site.
	States map[StateSite]time.Duration

	// Held sums, by site, the time a goroutine sat in a system call
	// before any other goroutine began to run on its P: the P ran nothing
	// else. Taken is the rest of the system calls' time: after the runtime
	// had handed the P to another goroutine, or in a call made without
	// one (as the runtime's own blocking waits are).
	Held, Taken map[string]time.Duration

	// Waiting is the time some goroutine was runnable while fewer
	// goroutines ran than there are Ps; WaitingAll the time some goroutine
	// was runnable at all.
	Waiting, WaitingAll time.Duration

	// Idle is the time no goroutine was runnable while fewer ran than
	// there are Ps: a P had nothing to run (one left holding a goroutine
	// in a system call counts as such). IdleProcs is the Ps that ran
	// nothing, summed over that time (P-seconds), and IdleBlocked, by
	// state and site, the goroutines waiting or in a system call, summed
	// over it: over Idle, how many waited there on average while the
	// Ps had nothing to do, which says what the work was waiting for.
	Idle, IdleProcs time.Duration
	IdleBlocked     map[StateSite]time.Duration
}

// StateSite is a goroutine state and, for waiting and system calls, the
// site.
type StateSite struct {
	State string // "running", "runnable", "waiting", "syscall"
	Site  string
}

// Summarize reads a trace (runtime/trace, `custos bench -trace`) to its end.
func Summarize(r io.Reader) (*Summary, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	s := &Summary{States: map[StateSite]time.Duration{}, Held: map[string]time.Duration{}, Taken: map[string]time.Duration{},
		IdleBlocked: map[StateSite]time.Duration{}}
	type gstate struct {
		state StateSite
		since trace.Time
		// In a system call: the P it entered it on, and when another
		// goroutine began to run on that P (0: none yet).
		proc  trace.ProcID
		taken trace.Time
	}
	var (
		gs            = map[trace.GoID]*gstate{}
		holding       = map[trace.ProcID]*gstate{} // the goroutine in a system call each P was left with
		runnable, run int
		blocked       = map[StateSite]int{} // goroutines waiting or in a system call now, by state and site
		first, last   trace.Time
		seen          bool
	)
	// syscall counts g's system call up to t: held until another
	// goroutine began to run on its P, taken from then on.
	syscall := func(g *gstate, t trace.Time) {
		switch {
		case g.proc == trace.NoProc:
			s.Taken[g.state.Site] += time.Duration(t - g.since)
		case g.taken != 0:
			s.Held[g.state.Site] += time.Duration(g.taken - g.since)
			s.Taken[g.state.Site] += time.Duration(t - g.taken)
		default:
			s.Held[g.state.Site] += time.Duration(t - g.since)
		}
		if holding[g.proc] == g {
			delete(holding, g.proc)
		}
	}
	// end counts g's state up to t.
	end := func(g *gstate, t trace.Time) {
		s.States[g.state] += time.Duration(t - g.since)
		if g.state.State == "syscall" {
			syscall(g, t)
		}
	}
	for {
		ev, err := tr.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t := ev.Time()
		if !seen {
			first, seen = t, true
		}
		if t > last {
			if runnable > 0 {
				s.WaitingAll += time.Duration(t - last)
				if s.Procs > 0 && run < s.Procs {
					s.Waiting += time.Duration(t - last)
				}
			} else if s.Procs > 0 && run < s.Procs {
				d := time.Duration(t - last)
				s.Idle += d
				s.IdleProcs += d * time.Duration(s.Procs-run)
				for k, n := range blocked {
					s.IdleBlocked[k] += d * time.Duration(n)
				}
			}
			last = t
		}
		switch ev.Kind() {
		case trace.EventMetric:
			if m := ev.Metric(); m.Name == "/sched/gomaxprocs:threads" {
				s.Procs = int(m.Value.Uint64())
			}
			continue
		case trace.EventStateTransition:
		default:
			continue
		}
		st := ev.StateTransition()
		if st.Resource.Kind != trace.ResourceGoroutine {
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		if from == to && gs[id] != nil {
			// A state stated again where a trace's generation begins.
			continue
		}
		if g := gs[id]; g != nil {
			end(g, t)
			switch g.state.State {
			case "runnable":
				runnable--
			case "running":
				run--
			default:
				if blocked[g.state]--; blocked[g.state] == 0 {
					delete(blocked, g.state)
				}
			}
		}
		next := &gstate{since: t, proc: ev.Proc()}
		switch to {
		case trace.GoRunnable:
			next.state.State = "runnable"
			runnable++
		case trace.GoRunning:
			next.state.State = "running"
			run++
			// Another goroutine on a P left with one in a system call (a
			// goroutine's own return was counted above, and let go of it).
			if h := holding[ev.Proc()]; h != nil && h.taken == 0 {
				h.taken = t
			}
		case trace.GoWaiting:
			next.state = StateSite{"waiting", site(st.Stack, ev.Stack())}
		case trace.GoSyscall:
			next.state = StateSite{"syscall", site(st.Stack, ev.Stack())}
			if next.proc != trace.NoProc {
				holding[next.proc] = next
			}
		default: // not existing, or undetermined
			delete(gs, id)
			continue
		}
		if to == trace.GoWaiting || to == trace.GoSyscall {
			blocked[next.state]++
		}
		gs[id] = next
	}
	// What is still going on at the end counts up to the last event.
	for _, g := range gs {
		end(g, last)
	}
	s.Span = time.Duration(last - first)
	return s, nil
}

// plumbing are the packages whose frames do not name a site: the
// runtime's, system calls', and the locks and I/O layers every blocking
// call goes through.
var plumbing = []string{"runtime.", "internal/", "syscall.", "sync.", "os.", "net.", "bufio.", "io.", "golang.org/x/sys/", "modernc.org/libc."}

// site names the first frame of stack (or of alt, if stack is empty) that
// is not plumbing; the leaf frame if all are.
func site(stack, alt trace.Stack) string {
	name, leaf := "", ""
	walk := func(s trace.Stack) {
		for f := range s.Frames() {
			if leaf == "" {
				leaf = f.Func
			}
			if !slices.ContainsFunc(plumbing, func(p string) bool { return strings.HasPrefix(f.Func, p) }) {
				name = f.Func
				return
			}
		}
	}
	walk(stack)
	if name == "" && leaf == "" {
		walk(alt)
	}
	return cmp.Or(name, leaf, "?")
}

// Write prints s: the states as goroutines on average over the span, the
// system calls' held and taken time, and the time goroutines waited for
// a P. top limits each list.
func (s *Summary) Write(w io.Writer, top int) {
	span := s.Span.Seconds()
	if span <= 0 {
		fmt.Fprintln(w, "empty trace")
		return
	}
	fmt.Fprintf(w, "span %.3f s", span)
	if s.Procs > 0 {
		fmt.Fprintf(w, ", GOMAXPROCS %d", s.Procs)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "goroutines on average\tstate\tsite\t")
	for _, e := range sorted(s.States, top) {
		fmt.Fprintf(tw, "%.2f\t%s\t%s\t\n", e.d.Seconds()/span, e.k.State, e.k.Site)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "P held in a system call, s\tPs on average\ttaken by the runtime, s\tsite\t")
	for _, e := range sorted(s.Held, top) {
		fmt.Fprintf(tw, "%.3f\t%.2f\t%.3f\t%s\t\n", e.d.Seconds(), e.d.Seconds()/span, s.Taken[e.k].Seconds(), e.k)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintf(w, "some goroutine waited for a P %.1f %% of the time", 100*s.WaitingAll.Seconds()/span)
	if s.Procs > 0 {
		fmt.Fprintf(w, "; while fewer than %d goroutines ran, %.1f %%", s.Procs, 100*s.Waiting.Seconds()/span)
	}
	fmt.Fprintln(w)
	if s.Procs > 0 && s.Idle > 0 {
		idle := s.Idle.Seconds()
		fmt.Fprintf(w, "\nno goroutine was runnable while a P ran nothing %.1f %% of the time (%.2f of %d Ps idle on average then); meanwhile:\n",
			100*idle/span, s.IdleProcs.Seconds()/idle, s.Procs)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "goroutines on average\tstate\tsite\t")
		for _, e := range sorted(s.IdleBlocked, top) {
			fmt.Fprintf(tw, "%.2f\t%s\t%s\t\n", e.d.Seconds()/idle, e.k.State, e.k.Site)
		}
		tw.Flush()
	}
}

type entry[K comparable] struct {
	k K
	d time.Duration
}

// sorted returns m's entries, longest first, at most top of them.
func sorted[K comparable](m map[K]time.Duration, top int) []entry[K] {
	es := make([]entry[K], 0, len(m))
	for k, d := range m {
		es = append(es, entry[K]{k, d})
	}
	slices.SortFunc(es, func(a, b entry[K]) int { return cmp.Compare(b.d, a.d) })
	if top > 0 && len(es) > top {
		es = es[:top]
	}
	return es
}
