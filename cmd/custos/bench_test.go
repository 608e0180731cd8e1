package main

import (
	"context"
	"math/rand/v2"
	"runtime"
	"runtime/metrics"
	"slices"
	"testing"

	"custos"
	"custos/seed"
)

// The HTTP benchmarks measure one request at a time through the real
// server and the Go client, as an application would make it: JSON, TLS-free
// loopback HTTP, authentication, the access decision, sealing or opening,
// SQLite and the audit event in the same transaction.

// benchServer starts a server in a temporary directory with its logs
// discarded and returns the app principal's client.
func benchServer(b *testing.B) *testServer {
	b.Helper()
	return startServer(b, b.TempDir(), "--log-level", "error")
}

// BenchmarkCreateHTTP creates one seeded customer (about 11 fields, 4 of
// them lookup keys) per iteration.
func BenchmarkCreateHTTP(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	ps := createPrincipals(b, srv, srv.client(srv.AdminKey))
	gen := seed.New(rand.New(rand.NewPCG(101, 1)))
	// Subjects are generated outside the timed loop, unique each.
	var in []custos.NewSubject
	next := func() custos.NewSubject {
		if len(in) == 0 {
			for range 1024 {
				in = append(in, gen.Subject())
			}
		}
		s := in[0]
		in = in[1:]
		return s
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		s := next()
		b.StartTimer()
		if _, err := ps.App.CreateSubject(ctx, seedPurposes, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadHTTP reads one customer in plain per iteration.
func BenchmarkReadHTTP(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	ps := createPrincipals(b, srv, srv.client(srv.AdminKey))
	gen := seed.New(rand.New(rand.NewPCG(102, 1)))
	s, err := ps.App.CreateSubject(ctx, seedPurposes, gen.Subject())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := ps.App.FindSubjectByID(ctx, seedPurposes, s.ID)
		if err != nil {
			b.Fatal(err)
		}
		if got.Fields["mobile"] == "" {
			b.Fatal("read returned no mobile")
		}
	}
}

// BenchmarkReadMaskedHTTP reads one customer as `custos bench`'s read
// workload does: as marketing, for marketing, so that name, mobile, e-mail
// and birth date come back masked and the other fields denied. Its B/op
// and allocs/op are the server's and the Go client's together.
func BenchmarkReadMaskedHTTP(b *testing.B) {
	ctx := context.Background()
	srv := benchServer(b)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(b, srv, admin)
	cat, err := admin.Catalog(ctx)
	if err != nil {
		b.Fatal(err)
	}
	n := publishNotice(b, admin, syntheticNoticeContent(cat))
	in := seed.New(rand.New(rand.NewPCG(103, 1))).Subject()
	in.Consent = syntheticConsent(n, cat)
	s, err := ps.App.CreateSubject(ctx, seedPurposes, in)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, s.ID)
		if err != nil {
			b.Fatal(err)
		}
		if got.Decisions["mobile"].Outcome != custos.Masked {
			b.Fatalf("mobile: got %q, want masked", got.Decisions["mobile"].Outcome)
		}
	}
}

// TestBenchPick: reads and lookups draw their customer uniformly, or with
// -zipf by Zipf's law, which favours the first ones as a shop's active
// customers are favoured; every draw is one of the n.
func TestBenchPick(t *testing.T) {
	const n, draws = 1000, 100_000
	share := func(zipf float64) float64 {
		e := &benchEnv{zipf: zipf}
		w := &benchWorker{rng: rand.New(rand.NewPCG(1, 2))}
		top := 0
		for range draws {
			i := e.pick(w, n)
			if i < 0 || i >= n {
				t.Fatalf("-zipf %g: drew %d of %d", zipf, i, n)
			}
			if i < n/100 {
				top++
			}
		}
		return float64(top) / draws
	}
	if got := share(0); got < 0.005 || got > 0.015 {
		t.Errorf("uniform: the first 1 %% of customers drew %.3f of the reads, want about 0.01", got)
	}
	if got := share(1.1); got < 0.3 {
		t.Errorf("-zipf 1.1: the first 1 %% of customers drew %.3f of the reads, want over 0.3 (about 0.48)", got)
	}
	// A worker's law follows the number it draws from.
	e, w := &benchEnv{zipf: 1.5}, &benchWorker{rng: rand.New(rand.NewPCG(3, 4))}
	e.pick(w, 1000)
	for range 1000 {
		if i := e.pick(w, 3); i < 0 || i >= 3 {
			t.Fatalf("drew %d of 3 after drawing of 1000", i)
		}
	}
}

// TestBenchDrawSeed: the workers' draws follow -draw-seed, not -seed, so
// that runs on one sample of customers (-reuse, same -seed) can read them
// in different orders: a run after a -warm run must not find its first
// reads in the list that run left just because it drew the same
// customers first.
func TestBenchDrawSeed(t *testing.T) {
	first := func(e *benchEnv) []int {
		w := &benchWorker{rng: e.workerRNG(3, 16)}
		var out []int
		for range 20 {
			out = append(out, e.pick(w, 100_000))
		}
		return out
	}
	a := first(&benchEnv{seed: 11, draws: 101})
	if b := first(&benchEnv{seed: 12, draws: 101}); !slices.Equal(a, b) {
		t.Errorf("one draw seed, two seeds: draws %v and %v, want the same", a, b)
	}
	if b := first(&benchEnv{seed: 11, draws: 102}); slices.Equal(a, b) {
		t.Errorf("two draw seeds: the same draws %v", a)
	}
}

// TestBenchReadGC: the collector's counters a step reports move with a
// collection (fifty-ninth session: its marking set PostgreSQL's read p99),
// and every metric they read is one this Go has.
func TestBenchReadGC(t *testing.T) {
	var live []byte
	for range 64 {
		live = append(live, make([]byte, 1<<16)...) // some heap to mark
	}
	g0 := benchReadGC()
	runtime.GC()
	g1 := benchReadGC()
	if g1.cycles < g0.cycles+1 {
		t.Errorf("cycles %d, then %d after runtime.GC; want at least one more", g0.cycles, g1.cycles)
	}
	if g1.markCPU <= g0.markCPU {
		t.Errorf("marking CPU %.6f s, then %.6f s after a collection; want more", g0.markCPU, g1.markCPU)
	}
	if g1.live < uint64(len(live)) {
		t.Errorf("live heap %d bytes after a collection, want at least the %d kept", g1.live, len(live))
	}
	runtime.KeepAlive(live)
	samples := make([]metrics.Sample, len(benchGCMetrics))
	for i, name := range benchGCMetrics {
		samples[i].Name = name
	}
	metrics.Read(samples)
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindBad {
			t.Errorf("runtime/metrics has no %s", s.Name)
		}
	}
}
