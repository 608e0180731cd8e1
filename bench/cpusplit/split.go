package main

import (
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// A Part is one part of a custos node, or of the load generator beside it,
// that a CPU sample can belong to: the sample's stack holds a frame whose
// function Match matches. A sample belongs to the first part in a list
// that claims it; within a part, to the first of its Parts that does, or
// to the part's rest.
type Part struct {
	Name  string
	Match *regexp.Regexp
	Parts []Part
}

// Node is how custos bench's CPU profiles split, in the order the parts
// claim samples: the handler before the HTTP server that calls it, the
// SQLite writer's phases before the writer's rest. A SQLite node's
// goroutines and a PostgreSQL node's have parts of their own (the
// sixty-fifth session named PostgreSQL's, which until then fell in
// other); a node's reads on either store show in the handler.
var Node = []Part{
	{Name: "handler (custos/http ServeHTTP)", Match: fn(`custos/http.(*Server).ServeHTTP`), Parts: []Part{
		{Name: "load: the customer, consents, decision", Match: fn(`custos/core.(*Service).load`)},
		{Name: "present: decrypt, mask", Match: fn(`custos/core.(*Service).present`)},
		{Name: "create: validate, seal, blind index", Match: fn(`custos/core.(*Service).CreateSubject`)},
		{Name: "the request body's JSON", Match: fn(`custos/http.decode`)},
		{Name: "the answer's JSON and write", Match: fn(`custos/http.(*Server).encode`)},
		{Name: "access log line", Match: fn(`log/slog.(*Logger).Info`)},
		{Name: "authentication", Match: fn(`custos/core.(*Service).Authenticate`)},
		{Name: "handing the audit event to the writer", Match: fn(`custos/sqlite.(*DB).Update`)},
	}},
	{Name: "HTTP server (net/http, outside the handler)", Match: regexp.MustCompile(`^net/http\.\(\*(conn\)\.serve|connReader\)\.backgroundRead)$`)},
	{Name: "SQLite writer", Match: fn(`custos/sqlite.(*DB).writer`), Parts: []Part{
		{Name: "BEGIN", Match: fn(`database/sql.(*Conn).BeginTx`)},
		{Name: "the requests' statements", Match: fn(`custos/sqlite.runMembers`)},
		{Name: "audit events' insert", Match: fn(`custos/sqlite.(*Tx).flushAudit`)},
		{Name: "COMMIT (WAL frames)", Match: fn(`custos/sqlite.(*DB).commit`)},
		{Name: "filing the audit index", Match: fn(`custos/sqlite.(*DB).fileAuditEvents`)},
		{Name: "WAL restart", Match: fn(`custos/sqlite.(*DB).resetWAL`)},
	}},
	// Since the fifty-eighth session the audit index is filed by a
	// goroutine of its own beside the writer, in a file of its own; the
	// writer's row above keeps profiles from before that.
	{Name: "audit index filer", Match: fn(`custos/sqlite.(*DB).filer`)},
	{Name: "syncer (fsync)", Match: fn(`custos/sqlite.(*durability).run`)},
	{Name: "checkpointer", Match: fn(`custos/sqlite.(*DB).checkpointer`)},
	{Name: "PostgreSQL group writer", Match: fn(`custos/postgres.(*DB).writer`), Parts: []Part{
		{Name: "the requests' statements", Match: fn(`custos/postgres.callFn`)},
		{Name: "the group's end (its statements, chain, COMMIT)", Match: fn(`custos/postgres.(*Tx).oneTripEnd`)},
	}},
	{Name: "PostgreSQL batched reads (the read cache's misses)", Match: fn(`custos/postgres.(*readBatcher).send`)},
	{Name: "load generator (bench client)", Match: regexp.MustCompile(`^(main\.benchStep\b|main\.\(\*bench(Worker|Bodies)\)|net/http\.\(\*persistConn\)\.(readLoop|writeLoop)$)`)},
	{Name: "garbage collector", Match: regexp.MustCompile(`^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)$`)},
	{Name: "scheduler", Match: regexp.MustCompile(`^runtime\.(schedule|findRunnable|park_m|goexit0|sysmon|mcall)$`)},
}

// fn matches exactly the function named name.
func fn(name string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `$`)
}

// A Split is a profile's CPU time by part.
type Split struct {
	Total    time.Duration // all samples
	Duration time.Duration // the profile's wall time
	Rows     []Row         // Node's parts in order, each followed by its own parts, then "other"
}

// A Row is one part's CPU time; Depth 1 is a part of the row above it
// at depth 0.
type Row struct {
	Name  string
	Depth int
	CPU   time.Duration
}

// Classify splits p's CPU samples by parts. Each sample counts once, in
// the first part (and subpart) that claims it; what no part claims is
// "other", and what a part's own parts leave is its "rest".
func Classify(p *profile.Profile, parts []Part) (Split, error) {
	cpu := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			cpu = i
		}
	}
	if cpu < 0 {
		return Split{}, fmt.Errorf("not a CPU profile: no cpu/nanoseconds sample type")
	}
	top := make([]time.Duration, len(parts)+1) // last: other
	sub := make([][]time.Duration, len(parts)) // last of each: rest
	for i, pt := range parts {
		sub[i] = make([]time.Duration, len(pt.Parts)+1)
	}
	var total time.Duration
	for _, s := range p.Sample {
		v := time.Duration(s.Value[cpu])
		total += v
		names := frames(s)
		i := claim(parts, names)
		top[i] += v
		if i < len(parts) {
			sub[i][claim(parts[i].Parts, names)] += v
		}
	}
	out := Split{Total: total, Duration: time.Duration(p.DurationNanos)}
	for i, pt := range parts {
		out.Rows = append(out.Rows, Row{Name: pt.Name, CPU: top[i]})
		if len(pt.Parts) == 0 {
			continue
		}
		for j, sp := range pt.Parts {
			out.Rows = append(out.Rows, Row{Name: sp.Name, Depth: 1, CPU: sub[i][j]})
		}
		out.Rows = append(out.Rows, Row{Name: "rest", Depth: 1, CPU: sub[i][len(pt.Parts)]})
	}
	out.Rows = append(out.Rows, Row{Name: "other", CPU: top[len(parts)]})
	return out, nil
}

// frames are the function names on s's stack, inlined ones included.
func frames(s *profile.Sample) []string {
	var names []string
	for _, loc := range s.Location {
		for _, l := range loc.Line {
			if l.Function != nil {
				names = append(names, l.Function.Name)
			}
		}
	}
	return names
}

// claim returns the index of the first part one of names matches, or
// len(parts).
func claim(parts []Part, names []string) int {
	for i, pt := range parts {
		for _, n := range names {
			if pt.Match.MatchString(n) {
				return i
			}
		}
	}
	return len(parts)
}

// Write prints s as a table: each row's CPU seconds, its share of all
// samples and, when requests is positive, its µs per request.
func (s Split) Write(w io.Writer, requests float64) {
	fmt.Fprintf(w, "%.2f s of CPU samples over %.2f s (%.2f CPUs)", s.Total.Seconds(), s.Duration.Seconds(), s.Total.Seconds()/max(s.Duration.Seconds(), 1e-9))
	if requests > 0 {
		fmt.Fprintf(w, ", %.0f requests: %.1f µs a request", requests, float64(s.Total.Microseconds())/requests)
	}
	fmt.Fprintln(w)
	width := len("part")
	for _, r := range s.Rows {
		width = max(width, 4*r.Depth+len(r.Name))
	}
	fmt.Fprintf(w, "%-*s  %7s  %6s", width, "part", "CPU s", "share")
	if requests > 0 {
		fmt.Fprintf(w, "  %12s", "µs a request")
	}
	fmt.Fprintln(w)
	for _, r := range s.Rows {
		fmt.Fprintf(w, "%-*s  %7.2f  %5.1f%%", width, strings.Repeat("    ", r.Depth)+r.Name, r.CPU.Seconds(), 100*r.CPU.Seconds()/max(s.Total.Seconds(), 1e-9))
		if requests > 0 {
			fmt.Fprintf(w, "  %12.1f", float64(r.CPU.Microseconds())/requests)
		}
		fmt.Fprintln(w)
	}
}
