package core_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/ledger"
	"custos/postgres"
)

// TestErasureWritesLedger (S7): an erasure is recorded in the shred ledger
// file outside the store, with ids, time and reason only.
func TestErasureWritesLedger(t *testing.T) {
	e := newEnv(t)
	l, err := ledger.Open(filepath.Join(t.TempDir(), ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Ledger = l
	id := e.create(t, map[string]string{"name": "周芷若", "email": "zhou.ledger@example.com"})
	rc, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, id, "customer request")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ledger.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	// Counted net of voids: a store that runs the erasure's transaction
	// again voids the first attempt's entry (CUSTOS_TEST_REPEAT).
	erased := ledger.Erasures(r)
	if len(erased) != 1 {
		t.Fatalf("ledger has %d erasures, want 1", len(erased))
	}
	got := erased[0]
	if got.Kind != ledger.KindErase || got.SubjectID != string(id) || got.Reason != "customer request" ||
		got.ActorID != "prn_admin" || !got.Time.Equal(rc.ErasedAt) {
		t.Errorf("ledger entry %+v, receipt %+v", got, rc)
	}
	// A refused erasure (unknown subject) writes nothing.
	if _, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, "sub_unknown", ""); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("erase unknown: %v", err)
	}
	if r, err := ledger.ReadFile(l.Path()); err != nil || len(ledger.Erasures(r)) != 1 {
		t.Fatalf("after a refused erasure: %v, %v", r, err)
	}
}

// TestErasureFailsWithoutLedger (S7): when the ledger cannot be written
// the erasure fails as a whole: the customer, the data key and the lookups
// are all still there, and the store records no shred.
func TestErasureFailsWithoutLedger(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), ledger.DefaultName)
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Ledger = l
	id := e.create(t, map[string]string{"name": "张无忌", "email": "zhang.ledger@example.com"})
	// The ledger becomes unwritable: its path is now a directory.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, id, "customer request"); custos.ErrorCode(err) != custos.EINTERNAL {
		t.Fatalf("erase with a broken ledger: got %v, want EINTERNAL", err)
	}
	got, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "email", "zhang.ledger@example.com")
	if err != nil || got.ID != id || got.Fields["name"] != "张无忌" {
		t.Fatalf("after the failed erasure the customer reads %v, %v", got, err)
	}
	if err := e.db.View(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetDataKey(ctx, id); err != nil {
			return err
		}
		shreds, err := tx.ListShreds(ctx, 0)
		if err != nil {
			return err
		}
		if len(shreds) != 0 {
			t.Errorf("the store records %d shreds after a failed erasure", len(shreds))
		}
		return nil
	}); err != nil {
		t.Fatalf("after the failed erasure: %v", err)
	}
}

// syncFails is a ledger whose entries are written but never reach the
// disk: every Sync fails.
type syncFails struct{ *ledger.File }

func (syncFails) Sync() error {
	return &custos.Error{Code: custos.EINTERNAL, Message: "The shred ledger cannot be written."}
}

// TestErasureFailsWhenLedgerSyncFails (S7): an erasure whose ledger entry
// was written but could not be synced before the commit fails as a whole,
// commits nothing, and its entry is voided.
func TestErasureFailsWhenLedgerSyncFails(t *testing.T) {
	e := newEnv(t)
	l, err := ledger.Open(filepath.Join(t.TempDir(), ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Ledger = syncFails{l}
	id := e.create(t, map[string]string{"name": "赵敏", "email": "zhao.ledger@example.com"})
	if _, err := e.svc.EraseSubject(e.admin, []string{"customer-service"}, id, "customer request"); custos.ErrorCode(err) != custos.EINTERNAL {
		t.Fatalf("erase with a ledger that cannot sync: got %v, want EINTERNAL", err)
	}
	got, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "email", "zhao.ledger@example.com")
	if err != nil || got.ID != id || got.Fields["name"] != "赵敏" {
		t.Fatalf("after the failed erasure the customer reads %v, %v", got, err)
	}
	if shreds := storeShreds(t, e.db); len(shreds) != 0 {
		t.Errorf("the store records %d shreds after a failed erasure", len(shreds))
	}
	r, err := ledger.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if es := ledger.Erasures(r); len(es) != 0 {
		t.Errorf("the ledger keeps %d erasures of an erasure that did not commit, want 0 (voided)", len(es))
	}
}

// TestRetentionBatchSyncsLedgerOnce (S7): a retention batch that
// crypto-shreds twenty customers writes each one's ledger entry and syncs
// the ledger before the batch commits, once for all of them instead of
// once an erasure.
func TestRetentionBatchSyncsLedgerOnce(t *testing.T) {
	t.Setenv("CUSTOS_BENCH_RETENTION_PER_SUBJECT", "1")
	e := newRetEnvWith(t, "")
	l, err := ledger.Open(filepath.Join(t.TempDir(), ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Ledger = l
	const customers = 20
	seedBulk(t, e, customers)
	e.at(years(4))
	if _, err := e.svc.SweepRetention(e.admin, core.RetentionOptions{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	r, err := ledger.ReadFile(l.Path())
	if err != nil {
		t.Fatal(err)
	}
	if got := len(ledger.Erasures(r)); got != customers {
		t.Fatalf("the ledger records %d erasures, want %d", got, customers)
	}
	// A store that runs transactions again (CUSTOS_TEST_REPEAT) syncs
	// once more, and writes each void on its own.
	voids := 0
	for _, e := range r.Entries {
		if e.Kind == ledger.KindVoid {
			voids++
		}
	}
	if got := l.Syncs(); got > int64(2+voids) {
		t.Errorf("%d fsyncs of the ledger for %d erasures in one batch (%d voids), want at most %d", got, customers, voids, 2+voids)
	}
}

// TestConcurrentErasuresLedger (S7): erasures made at once, which the
// store runs in shared commit groups with one ledger sync each, all
// reach the ledger, in one unbroken chain, each once (net of the voids
// of attempts that ran again, CUSTOS_TEST_REPEAT), and the store records
// each. On SQLite, and on PostgreSQL, where the store's entry takes the
// append lock at the transaction's end.
func TestConcurrentErasuresLedger(t *testing.T) { onBothStores(t, concurrentErasures) }

// onBothStores runs test on a service over SQLite and, in a subtest that
// skips without CUSTOS_TEST_POSTGRES, over PostgreSQL.
func onBothStores(t *testing.T, test func(t *testing.T, svc *core.Service, admin context.Context, store custos.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		e := newEnv(t)
		test(t, e.svc, e.admin, e.db)
	})
	t.Run("postgres", func(t *testing.T) {
		db, err := postgres.Open(t.Context(), pgSchemaURL(t), postgres.Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		svc, admin, _, _ := newService(t, db)
		test(t, svc, admin, db)
	})
}

// createCustomers creates n customers named name, with the e-mail
// addresses emailFormat gives their numbers, and returns their ids.
func createCustomers(t *testing.T, svc *core.Service, admin context.Context, n int, name, emailFormat string) []custos.SubjectID {
	t.Helper()
	ids := make([]custos.SubjectID, n)
	for i := range ids {
		s, err := svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{Provenance: prov,
			Fields: map[string]string{"name": name, "email": fmt.Sprintf(emailFormat, i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = s.ID
	}
	return ids
}

func concurrentErasures(t *testing.T, svc *core.Service, admin context.Context, store custos.Store) {
	l, err := ledger.Open(filepath.Join(t.TempDir(), ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	svc.Ledger = l
	const n = 24
	ids := createCustomers(t, svc, admin, n, "杨过", "yang%d.ledger@example.com")
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			if _, err := svc.EraseSubject(admin, []string{"customer-service"}, id, "customer request"); err != nil {
				t.Errorf("erase %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	r, err := ledger.ReadFile(l.Path()) // checks the chain
	if err != nil {
		t.Fatal(err)
	}
	erased := map[string]int{}
	for _, en := range ledger.Erasures(r) {
		erased[en.SubjectID]++
	}
	for _, id := range ids {
		if erased[string(id)] != 1 {
			t.Errorf("%s: %d ledger erasures, want 1", id, erased[string(id)])
		}
	}
	if len(erased) != n {
		t.Errorf("the ledger names %d customers, want %d", len(erased), n)
	}
	shreds := storeShreds(t, store)
	seen := map[custos.SubjectID]bool{}
	for i, sh := range shreds {
		seen[sh.SubjectID] = true
		if i > 0 && sh.Seq <= shreds[i-1].Seq {
			t.Errorf("shred %d: seq %d after %d, want increasing", i, sh.Seq, shreds[i-1].Seq)
		}
	}
	if len(shreds) != n || len(seen) != n {
		t.Errorf("the store records %d shreds of %d customers, want %d of %d", len(shreds), len(seen), n, n)
	}
	t.Logf("%d erasures, %d fsyncs of the ledger", n, l.Syncs())
}

// storeShreds returns the store's own shred entries, in seq order.
func storeShreds(t *testing.T, store custos.Store) []*custos.ShredEntry {
	t.Helper()
	ctx := context.Background()
	var shreds []*custos.ShredEntry
	if err := store.View(ctx, func(tx custos.Tx) (err error) {
		shreds, err = tx.ListShreds(ctx, 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return shreds
}

// TestErasureRacesRecordAppends erases customers while other requests
// append records to them, on both stores. Every erasure succeeds; every
// append either succeeds before its customer's erasure or finds the
// customer gone (ENOTFOUND), never an internal error such as a foreign
// key the erasure's delete tripped over; and nothing of an erased
// customer is left (a record appended just before the erasure went with
// it). On PostgreSQL the erasure locks the customer before its delete
// takes its snapshot (EraseSubjectRows), which is what this checks.
func TestErasureRacesRecordAppends(t *testing.T) { onBothStores(t, erasuresRaceAppends) }

func erasuresRaceAppends(t *testing.T, svc *core.Service, admin context.Context, store custos.Store) {
	const n, appenders = 8, 3
	ids := createCustomers(t, svc, admin, n, "郭靖", "guo%d.race@example.com")
	var wg sync.WaitGroup
	for _, id := range ids {
		erased := make(chan struct{})
		for range appenders {
			wg.Go(func() {
				for {
					_, err := svc.CreateRecord(admin, []string{"fulfilment"}, id, custos.NewRecord{Type: "order",
						OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Data: map[string]any{"n": 1}, Provenance: prov})
					if custos.ErrorCode(err) == custos.ENOTFOUND {
						return // erased
					}
					if err != nil {
						t.Errorf("append to %s: %v", id, err)
						return
					}
					select {
					case <-erased: // the erasure failed, or this append came after it
						return
					default:
					}
				}
			})
		}
		wg.Go(func() {
			defer close(erased)
			time.Sleep(5 * time.Millisecond) // let some appends in first
			if _, err := svc.EraseSubject(admin, []string{"customer-service"}, id, "customer request"); err != nil {
				t.Errorf("erase %s: %v", id, err)
			}
		})
	}
	wg.Wait()
	err := store.View(t.Context(), func(tx custos.Tx) error {
		for _, id := range ids {
			if _, err := tx.GetSubject(t.Context(), id); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("%s after its erasure: got %v, want ENOTFOUND", id, err)
			}
			recs, err := tx.ListRecords(t.Context(), id, "")
			if err != nil {
				return err
			}
			if len(recs) != 0 {
				t.Errorf("%s: %d records left after its erasure", id, len(recs))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
