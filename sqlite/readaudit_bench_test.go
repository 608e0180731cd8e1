package sqlite_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"custos"
	"custos/audit"
)

// BenchmarkReadAuditGroup runs what a masked read asks of the writer —
// one audit event about a customer drawn at random from 10,000 — from 64
// goroutines, so that reads share commit groups as they do at c=64 (issue
// #7's read targets). The log holds 100,000 events first. It reports the
// writer's busy time and the pages written per read, which the audit
// indexes dominated while they were kept per event (BENCHMARKS.md,
// thirteenth session).
func BenchmarkReadAuditGroup(b *testing.B) {
	db := MustOpenDB(b, nil)
	ctx := b.Context()
	appendEvents := func(r *rand.Rand, n int) error {
		return db.Update(ctx, func(tx custos.Tx) error {
			seq, head, err := tx.AuditHead(ctx)
			if err != nil {
				return err
			}
			for range n {
				e := &custos.AuditEvent{Time: tx.Now(), ActorID: "prn_bench", Action: custos.AuditSubjectRead,
					SubjectID: custos.SubjectID(fmt.Sprintf("sub_%026d", r.IntN(10_000))),
					Fields:    []string{"name", "mobile"}, Purposes: []string{"customer-service"}, Decision: custos.DecisionAllow}
				audit.Chain(seq, head, e)
				if err := tx.InsertAuditEvent(ctx, e); err != nil {
					return err
				}
				seq, head = e.Seq, e.Hash
			}
			return nil
		})
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		if err := appendEvents(r, 1000); err != nil {
			b.Fatal(err)
		}
	}
	before, cpu0 := db.WriterStats(), cpuTime()
	b.SetParallelism(32) // 64 goroutines on two cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 3))
		for pb.Next() {
			if err := appendEvents(r, 1); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportWriter(b, db, before, cpu0)
}
