package sqlite_test

import (
	"crypto/rand"
	"syscall"
	"testing"
	"time"

	"custos"
	"custos/sqlite"
	"custos/storetest"
)

// BenchmarkCreateGroup runs what a customer create asks of the store —
// data key, subject row, four blind-index keys and an audit event left
// for the group's end — from 32 goroutines, so that creates share commit
// groups as they do under load (issue #7's create target). Besides ns/op
// (the inverse of throughput) it reports the process's CPU per create and
// the writer's busy time per create, the figure that bounds throughput
// while the single writer is busy (BENCHMARKS.md).
func BenchmarkCreateGroup(b *testing.B) {
	db := MustOpenDB(b, nil)
	ctx := b.Context()
	sealed := storetest.BenchSealed()
	fields := []string{"email", "id_number", "member_no", "mobile"}
	create := func() error {
		id := custos.SubjectID(custos.NewID("sub"))
		lks := make([]custos.Lookup, len(fields))
		for i, f := range fields {
			lks[i] = custos.Lookup{Field: f, Hash: make([]byte, 32), SubjectID: id}
			_, _ = rand.Read(lks[i].Hash)
		}
		return db.Update(ctx, func(tx custos.Tx) error {
			return storetest.CreateCustomer(ctx, tx, id, sealed, lks, true)
		})
	}
	// A store of some size, so that blind-index keys land on pages of a
	// tree deeper than one leaf.
	for range 2000 {
		if err := create(); err != nil {
			b.Fatal(err)
		}
	}
	before, cpu0 := db.WriterStats(), cpuTime()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := create(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	reportWriter(b, db, before, cpu0)
}

// reportWriter reports, per write since before and cpu0, the process's
// CPU, the writer's busy time and pages, and the writes per commit.
func reportWriter(b *testing.B, db *sqlite.DB, before sqlite.WriterStats, cpu0 time.Duration) {
	after := db.WriterStats()
	n := float64(after.Members - before.Members)
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/n, "cpu-µs/op")
	b.ReportMetric(float64((after.Busy-before.Busy).Microseconds())/n, "writer-µs/op")
	b.ReportMetric(n/float64(after.Groups-before.Groups), "writes/commit")
	b.ReportMetric(float64(after.Pages-before.Pages)/n, "pages/op")
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
