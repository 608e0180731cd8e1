package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"custos"
	"custos/seed"
)

// TestSoak drives a bounded mixed load (80 % masked reads, 10 % lookups,
// 10 % creates and corrections) against a real server on a loopback port
// and records the error count and the live heap over time: errors must
// stay at zero and memory flat. CI runs it for 15 s; a longer run is
// CUSTOS_SOAK_DURATION=10m go test -run TestSoak ./cmd/custos, with
// CUSTOS_SOAK_OUT=FILE to keep the series (seconds, live heap, requests).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: skipped with -short")
	}
	duration := 15 * time.Second
	if v := os.Getenv("CUSTOS_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CUSTOS_SOAK_DURATION: %v", err)
		}
		duration = d
	}
	// Request logs go to an in-memory buffer in tests; at warn level they
	// stay out of it, so the heap measured is the server's own.
	s := startServer(t, t.TempDir(), "--log-level", "warn")
	ps := createPrincipals(t, s, s.client(s.AdminKey))
	ctx := context.Background()

	var (
		mu     sync.Mutex
		gen    = seed.New(rand.New(rand.NewPCG(7, 7)))
		ids    []custos.SubjectID
		mobile = map[custos.SubjectID]string{}
	)
	create := func() error {
		mu.Lock()
		in := gen.Subject()
		mu.Unlock()
		in.Fields = map[string]string{"name": in.Fields["name"], "mobile": in.Fields["mobile"], "email": in.Fields["email"], "address": in.Fields["address"]}
		sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, in)
		if err != nil {
			return err
		}
		mu.Lock()
		ids = append(ids, sub.ID)
		mobile[sub.ID] = in.Fields["mobile"]
		mu.Unlock()
		return nil
	}
	for range 200 {
		if err := create(); err != nil {
			t.Fatal(err)
		}
	}
	pick := func(r *rand.Rand) custos.SubjectID {
		mu.Lock()
		defer mu.Unlock()
		return ids[r.IntN(len(ids))]
	}

	var requests, failures atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch n := r.IntN(10); {
				case n < 8:
					_, err = ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, pick(r))
				case n == 8:
					id := pick(r)
					mu.Lock()
					m := mobile[id]
					mu.Unlock()
					_, err = ps.CS.FindSubjectByLookup(ctx, []string{"customer-service"}, "mobile", m)
				default:
					if r.IntN(2) == 0 {
						err = create()
					} else {
						name := []string{"王芳", "李娜", "张伟", "刘洋", "陈静"}[r.IntN(5)]
						_, err = ps.App.UpdateSubject(ctx, []string{"account"}, pick(r),
							custos.SubjectUpdate{Fields: map[string]*string{"name": &name}, Provenance: custos.Provenance{Collector: "soak", Channel: "test", Source: "customer"}})
					}
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}()
	}

	type sample struct {
		at       time.Duration
		heap     uint64
		requests int64
	}
	var samples []sample
	start := time.Now()
	tick := time.NewTicker(time.Second)
	for time.Since(start) < duration {
		<-tick.C
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		samples = append(samples, sample{time.Since(start).Round(time.Second), m.HeapAlloc, requests.Load()})
	}
	tick.Stop()
	close(stop)
	wg.Wait()

	var series strings.Builder
	for _, sm := range samples {
		fmt.Fprintf(&series, "%s\t%.1f MiB\t%d\n", sm.at, float64(sm.heap)/(1<<20), sm.requests)
	}
	t.Logf("soak %v: %d requests, %d errors\n%s", duration, requests.Load(), failures.Load(), series.String())
	if out := os.Getenv("CUSTOS_SOAK_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(series.String()), 0o600); err != nil {
			t.Error(err)
		}
	}
	if n := failures.Load(); n != 0 {
		t.Errorf("%d of %d requests failed; first: %v", n, requests.Load(), firstErr.Load())
	}
	if requests.Load() == 0 {
		t.Fatal("no requests were made")
	}
	// Flat memory: the live heap of the last third stays within 1.5× the
	// first third's (plus slack for the subjects created meanwhile).
	third := len(samples) / 3
	if third == 0 {
		t.Fatalf("too few samples: %d", len(samples))
	}
	peak := func(ss []sample) uint64 {
		var m uint64
		for _, s := range ss {
			m = max(m, s.heap)
		}
		return m
	}
	early, late := peak(samples[:third]), peak(samples[len(samples)-third:])
	if float64(late) > 1.5*float64(early)+16<<20 {
		t.Errorf("live heap grew from %.1f MiB to %.1f MiB", float64(early)/(1<<20), float64(late)/(1<<20))
	}
}
