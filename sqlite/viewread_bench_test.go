package sqlite_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"custos"
	"custos/audit"
	"custos/sqlite"
	"custos/storetest"
)

// BenchmarkViewRead runs what a masked read asks of the store's read
// pool — a View that reads one customer's subject row, data key and
// consents for the read's purposes — from 16 goroutines, over 10,000
// customers with two consents each. With the read cache off (miss) every
// read misses it, as 84–86 % of reads did at 10,000,000 customers (issue
// #7's scale target; BENCHMARKS.md, fifteenth session); with it on (hit)
// every read after the first finds its customer there. It reports the
// process's CPU per read beside ns/op. The lookup cases find the
// customer by a blind-index key first, as a lookup by mobile does.
func BenchmarkViewRead(b *testing.B) {
	b.Run("miss", func(b *testing.B) { benchmarkViewRead(b, -1, false, noCommits, false) })
	b.Run("hit", func(b *testing.B) { benchmarkViewRead(b, 0, false, noCommits, false) })
	b.Run("lookup-miss", func(b *testing.B) { benchmarkViewRead(b, -1, true, noCommits, false) })
	b.Run("lookup-hit", func(b *testing.B) { benchmarkViewRead(b, 0, true, noCommits, false) })
	b.Run("miss-commits", func(b *testing.B) { benchmarkViewRead(b, -1, false, metaCommits, false) })
	b.Run("miss-audit", func(b *testing.B) { benchmarkViewRead(b, -1, false, auditCommits, false) })
	b.Run("glance-miss-audit", func(b *testing.B) { benchmarkViewRead(b, -1, false, auditCommits, true) })
	b.Run("glance-lookup-miss-audit", func(b *testing.B) { benchmarkViewRead(b, -1, true, auditCommits, true) })
}

// What the other goroutine commits every millisecond.
const (
	noCommits = iota
	metaCommits
	// auditCommits: an audit event, as the reads' own under load, which
	// leave a kept snapshot (Glance; kept.go) standing.
	auditCommits
)

// With commits, another goroutine commits a write of that kind every
// millisecond throughout, as the reads' audit events do under load: each
// read transaction then finds the WAL changed, and SQLite empties the
// read connection's page cache, so the read fetches its pages from the
// file again, one pread each (unless, in Glance, a kept snapshot answers).
// Its CPU per read includes the commits'.
func benchmarkViewRead(b *testing.B, cache int, byLookup bool, commits int, glance bool) {
	ctx := b.Context()
	db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "custos.db"), sqlite.Options{Migrate: true, ReadCache: cache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	const n = 10_000
	sealed := storetest.BenchSealed()
	ids := make([]custos.SubjectID, n)
	for lo := 0; lo < n; lo += 500 {
		err := db.Update(ctx, func(tx custos.Tx) error {
			for i := lo; i < lo+500; i++ {
				id := custos.SubjectID(fmt.Sprintf("sub_%026d", i))
				ids[i] = id
				lks := []custos.Lookup{{Field: "mobile", Hash: []byte(id), SubjectID: id}}
				if err := storetest.CreateCustomer(ctx, tx, id, sealed, lks, false); err != nil {
					return err
				}
				for j, p := range []string{"account", "marketing"} {
					err := tx.InsertConsent(ctx, &custos.StoredConsent{ID: fmt.Sprintf("con_%d_%d", i, j), SubjectID: id,
						Purpose: p, Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: tx.Now(),
						Channel: "app", InitiatedBy: "subject", Sealed: bytes.Repeat([]byte{3}, 40)})
					if err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	purposes := []string{"customer-service", "marketing"}
	view := db.View
	if glance {
		view = db.Glance
	}
	read := func(id custos.SubjectID) error {
		return view(ctx, func(tx custos.Tx) error {
			if byLookup {
				if found, err := tx.FindLookup(ctx, "mobile", []byte(id)); err != nil || found != id {
					return fmt.Errorf("FindLookup: %q, %v; want %q", found, err, id)
				}
			}
			if _, err := tx.GetSubject(ctx, id); err != nil {
				return err
			}
			cs, err := tx.ListConsentsFor(ctx, id, purposes)
			if err != nil {
				return err
			}
			if len(cs) != 1 {
				return fmt.Errorf("%d consents for %v, want 1", len(cs), purposes)
			}
			_, err = tx.GetDataKey(ctx, id)
			return err
		})
	}
	for _, id := range ids { // the cache, when on, holds everyone
		if err := read(id); err != nil {
			b.Fatal(err)
		}
	}
	if commits != noCommits {
		stop, done := make(chan struct{}), make(chan struct{})
		wctx := context.WithoutCancel(ctx) // b.Context ends before Cleanup runs
		go func() {
			defer close(done)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				write := func(tx custos.Tx) error { return tx.SetMeta(wctx, "bench", strconv.Itoa(i)) }
				if commits == auditCommits {
					write = func(tx custos.Tx) error {
						seq, head, err := tx.AuditHead(wctx)
						if err != nil {
							return err
						}
						e := &custos.AuditEvent{Time: tx.Now(), ActorID: "prn_bench", Action: custos.AuditSubjectRead,
							SubjectID: ids[i%n], Purposes: []string{"marketing"}, Decision: custos.DecisionAllow}
						audit.Chain(seq, head, e)
						return tx.InsertAuditEvent(wctx, e)
					}
				}
				if err := db.Update(wctx, write); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		b.Cleanup(func() { close(stop); <-done })
	}
	cpu0 := cpuTime()
	b.SetParallelism(8) // 16 goroutines on two cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 5))
		for pb.Next() {
			if err := read(ids[r.IntN(n)]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
}
