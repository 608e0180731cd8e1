package main

import (
	"bytes"
	"regexp"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

// synthetic builds a CPU profile whose samples have the given stacks
// (leaf first) and values in milliseconds. A stack entry "a|b" is one
// location whose lines are a, inlined into b.
func synthetic(samples map[string]int64) *profile.Profile {
	p := &profile.Profile{
		SampleType:    []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		DurationNanos: int64(time.Second),
	}
	funcs := map[string]*profile.Function{}
	fnOf := func(name string) *profile.Function {
		if f, ok := funcs[name]; ok {
			return f
		}
		f := &profile.Function{ID: uint64(len(funcs) + 1), Name: name}
		funcs[name] = f
		p.Function = append(p.Function, f)
		return f
	}
	for stack, ms := range samples {
		var locs []*profile.Location
		for _, frame := range strings.Split(stack, ";") {
			loc := &profile.Location{ID: uint64(len(p.Location) + 1)}
			for _, name := range strings.Split(frame, "|") {
				loc.Line = append(loc.Line, profile.Line{Function: fnOf(name)})
			}
			p.Location = append(p.Location, loc)
			locs = append(locs, loc)
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locs, Value: []int64{ms, ms * int64(time.Millisecond)}})
	}
	return p
}

// TestClassify: each sample counts once, in the first part that claims a
// frame of its stack (the handler before the server that calls it),
// inlined frames included; within a part, in its first subpart, or its
// rest; what nothing claims is other. The profile goes through its
// encoding and back first, as a file does.
func TestClassify(t *testing.T) {
	const (
		serve   = "net/http.(*conn).serve"
		handler = "custos/http.(*Server).ServeHTTP"
		writer  = "custos/sqlite.(*DB).writer"
		pgw     = "custos/postgres.(*DB).writer;custos/postgres.(*DB).commitGroup"
	)
	p := synthetic(map[string]int64{
		"custos/core.decodeProvenance;custos/core.(*Service).present;" + handler + ";" + serve:                  30,
		"runtime.memmove|custos/core.(*Service).load;" + handler + ";" + serve:                                  7, // load inlined into its caller's location
		"custos/http.(*Server).reply;" + handler + ";" + serve:                                                  4, // a handler phase no subpart names
		"syscall.Syscall;bufio.(*Writer).Flush;" + serve:                                                        20,
		"modernc.org/sqlite/lib._sqlite3VdbeExec;custos/sqlite.(*Tx).flushAudit;" + writer:                      10,
		"syscall.Fsync;custos/sqlite.(*durability).run":                                                         6,
		"modernc.org/sqlite/lib._sqlite3VdbeExec;custos/sqlite.(*DB).fileAuditEvents;custos/sqlite.(*DB).filer": 3,
		"runtime.scanobject;runtime.gcBgMarkWorker":                                                             5,
		"main.somethingElse": 1,
		"github.com/jackc/pgx/v5.(*Conn).SendBatch;custos/postgres.(*Tx).oneTripEnd;custos/postgres.(*DB).runGroup;" + pgw: 8,
		"custos/core.(*Service).insert;custos/postgres.callFn;custos/postgres.(*DB).runGroup;" + pgw:                       2,
		"runtime.growslice;" + pgw:                            1,
		"syscall.Syscall;custos/postgres.(*readBatcher).send": 2,
	})
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Classify(p, Node)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Duration{}
	parent := ""
	for _, r := range s.Rows {
		name := r.Name
		if r.Depth == 0 {
			parent = r.Name
		} else {
			name = parent + " / " + r.Name
		}
		got[name] = r.CPU
	}
	ms := time.Millisecond
	want := map[string]time.Duration{
		"handler (custos/http ServeHTTP)":                                          41 * ms,
		"handler (custos/http ServeHTTP) / present: decrypt, mask":                 30 * ms,
		"handler (custos/http ServeHTTP) / load: the customer, consents, decision": 7 * ms,
		"handler (custos/http ServeHTTP) / rest":                                   4 * ms,
		"HTTP server (net/http, outside the handler)":                              20 * ms,
		"SQLite writer":                        10 * ms,
		"SQLite writer / audit events' insert": 10 * ms,
		"SQLite writer / rest":                 0,
		"syncer (fsync)":                       6 * ms,
		"audit index filer":                    3 * ms,
		"garbage collector":                    5 * ms,
		"other":                                1 * ms,
		"load generator (bench client)":        0,
		"PostgreSQL group writer":              11 * ms,
		"PostgreSQL group writer / the requests' statements":                        2 * ms,
		"PostgreSQL group writer / the group's end (its statements, chain, COMMIT)": 8 * ms,
		"PostgreSQL group writer / rest":                                            1 * ms,
		"PostgreSQL batched reads (the read cache's misses)":                        2 * ms,
	}
	for name, w := range want {
		if g, ok := got[name]; !ok || g != w {
			t.Errorf("%s: got %v (row present: %v), want %v", name, g, ok, w)
		}
	}
	if s.Total != 99*ms {
		t.Errorf("total %v, want 99ms", s.Total)
	}
	var sum time.Duration
	for _, r := range s.Rows {
		if r.Depth == 0 {
			sum += r.CPU
		}
	}
	if sum != s.Total {
		t.Errorf("top-level rows add up to %v, want the total %v", sum, s.Total)
	}
	var out bytes.Buffer
	s.Write(&out, 99)
	if !strings.Contains(out.String(), "99 requests: 1000.0 µs a request") {
		t.Errorf("the header does not give 1000 µs a request over 99 requests:\n%s", out.String())
	}
}

// TestClassifyNotCPU refuses a profile without CPU time, such as a heap
// profile.
func TestClassifyNotCPU(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Classify(p, Node); err == nil || !strings.Contains(err.Error(), "not a CPU profile") {
		t.Fatalf("heap profile: got %v, want a refusal naming it not a CPU profile", err)
	}
}

//go:noinline
func spinForCPUSplit(d time.Duration) int {
	n := 0
	for start := time.Now(); time.Since(start) < d; n++ {
	}
	return n
}

// TestClassifyRealProfile reads a profile the runtime wrote while this
// test spun for 400 ms in a function of its own: a part naming that
// function claims most of the samples.
func TestClassifyRealProfile(t *testing.T) {
	var buf bytes.Buffer
	if err := pprof.StartCPUProfile(&buf); err != nil {
		t.Skipf("CPU profiling unavailable: %v", err)
	}
	spinForCPUSplit(400 * time.Millisecond)
	pprof.StopCPUProfile()
	p, err := profile.Parse(&buf)
	if err != nil {
		t.Fatal(err)
	}
	parts := []Part{{Name: "spin", Match: regexp.MustCompile(`spinForCPUSplit$`)}}
	s, err := Classify(p, parts)
	if err != nil {
		t.Fatal(err)
	}
	if s.Rows[0].CPU < 200*time.Millisecond || s.Rows[0].CPU < s.Total/2 {
		t.Fatalf("the spin got %v of %v of samples, want at least 200ms and half", s.Rows[0].CPU, s.Total)
	}
}
