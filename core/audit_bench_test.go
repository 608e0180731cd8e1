package core

import (
	"context"
	"path/filepath"
	"testing"

	"custos"
	"custos/audit"
	"custos/keys"
	"custos/sqlite"
)

// BenchmarkAppendAudit appends one audit event per op the way every
// operation on personal data does (S5; STYLE §5): a durable write
// transaction on SQLite (WAL, synchronous=FULL, single writer with group
// commit) reading the chain head, chaining the event and inserting it, with
// a signed checkpoint every DefaultCheckpointEvery events. "serial" is one
// caller, so each op waits for its own fsync; "parallel" is
// GOMAXPROCS×8 callers whose transactions share commits. Afterwards the
// whole log must verify.
func BenchmarkAppendAudit(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			ring, err := keys.NewKeyring(nil)
			if err != nil {
				b.Fatal(err)
			}
			signer, err := keys.NewSigner(nil)
			if err != nil {
				b.Fatal(err)
			}
			s := New(db, custos.DefaultCatalog(), ring, signer, nil)
			actx := custos.NewContextWithActor(ctx, &custos.Principal{ID: "prn_bench", Roles: []string{"marketing"}})
			appendOne := func() error {
				e := event(actx, custos.AuditSubjectRead, "sub_bench0000000000000000000000", []string{"marketing"},
					[]string{"name", "mobile", "email", "birth_date"})
				return db.Update(actx, func(tx custos.Tx) error { return s.appendAudit(actx, tx, e) })
			}
			b.ReportAllocs()
			if mode == "serial" {
				for b.Loop() {
					if err := appendOne(); err != nil {
						b.Fatal(err)
					}
				}
			} else {
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := appendOne(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			b.StopTimer()
			var events []*custos.AuditEvent
			var cps []*custos.AuditCheckpoint
			if err := db.View(ctx, func(tx custos.Tx) (err error) {
				if events, err = tx.FindAuditEvents(ctx, custos.AuditFilter{}); err != nil {
					return err
				}
				cps, err = tx.ListCheckpoints(ctx)
				return err
			}); err != nil {
				b.Fatal(err)
			}
			if r := audit.Verify(func(yield func(*custos.AuditEvent, error) bool) {
				for _, e := range events {
					if !yield(e, nil) {
						return
					}
				}
			}, cps, signer.Public()); !r.OK {
				b.Fatalf("audit chain does not verify: %+v", r.Problem)
			}
		})
	}
}
