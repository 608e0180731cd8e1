package main

import (
	"context"
	"math/rand/v2"
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
