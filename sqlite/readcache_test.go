package sqlite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"custos"
	"custos/sqlite"
)

// seedCached stores a subject with a data key, one consent and one
// lookup, and reads them once in a View so that the read cache holds
// them.
func seedCached(t *testing.T, db *sqlite.DB, id custos.SubjectID) {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("v0")}, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte("wrapped"), CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertLookup(ctx, "mobile", []byte("h-"+string(id)), id); err != nil {
			return err
		}
		return tx.InsertConsent(ctx, &custos.StoredConsent{ID: "c-" + string(id), SubjectID: id, Purpose: "marketing",
			Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"})
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := readAll(db, id); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot is what a read fetches of one subject.
type snapshot struct {
	sealed     []byte
	restricted time.Time
	key        *custos.DataKey
	consents   int
	lookup     custos.SubjectID
}

func readAll(db *sqlite.DB, id custos.SubjectID) (snapshot, error) {
	ctx := context.Background()
	var s snapshot
	err := db.View(ctx, func(tx custos.Tx) error {
		lid, err := tx.FindLookup(ctx, "mobile", []byte("h-"+string(id)))
		if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			return err
		}
		s.lookup = lid
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		s.sealed, s.restricted = st.Sealed["name"], st.RestrictedUntil
		if s.key, err = tx.GetDataKey(ctx, id); err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			return err
		}
		cs, err := tx.ListConsentsFor(ctx, id, []string{"marketing"})
		s.consents = len(cs)
		return err
	})
	return s, err
}

// TestReadCacheCoherent: every kind of write to a cached customer is seen
// by the next read, while reads of unchanged customers stay cached.
func TestReadCacheCoherent(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t, nil)
	seedCached(t, db, "s1")
	seedCached(t, db, "s2")
	before := db.ReadCacheStats()
	if before.Entries != 2 || before.Hits == 0 {
		t.Fatalf("after two reads of each of two subjects: %+v, want 2 entries and hits", before)
	}
	// Reading again is answered by the cache.
	if _, err := readAll(db, "s1"); err != nil {
		t.Fatal(err)
	}
	if st := db.ReadCacheStats(); st.Hits != before.Hits+1 || st.Misses != before.Misses {
		t.Fatalf("cached read: %+v after %+v, want one more hit and no miss", st, before)
	}

	// What a read gets is its own: changing it leaves the cache as it was.
	err := db.View(ctx, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, "s2")
		if err != nil {
			return err
		}
		st.Sealed["name"][0] = 'X'
		st.Sealed["other"] = []byte("y")
		k, err := tx.GetDataKey(ctx, "s2")
		if err != nil {
			return err
		}
		k.Wrapped[0] = 'X'
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := readAll(db, "s2"); err != nil || string(s.sealed) != "v0" || string(s.key.Wrapped) != "wrapped" {
		t.Fatalf("after a caller changed its copy: sealed %q, key %q, err %v; want v0 and wrapped", s.sealed, s.key.Wrapped, err)
	}

	now := time.Now().UTC().Truncate(time.Microsecond)
	steps := []struct {
		name  string
		write func(tx custos.Tx) error
		check func(s snapshot, err error) error
	}{
		{"correction", func(tx custos.Tx) error {
			return tx.UpdateSubject(ctx, &custos.StoredSubject{ID: "s1", Sealed: map[string][]byte{"name": []byte("v1")}, UpdatedAt: now})
		}, func(s snapshot, err error) error {
			if err != nil || string(s.sealed) != "v1" {
				return fmt.Errorf("sealed %q, err %v; want v1", s.sealed, err)
			}
			return nil
		}},
		{"restriction", func(tx custos.Tx) error {
			return tx.(custos.RetentionTx).RestrictSubject(ctx, "s1", now.Add(time.Hour))
		}, func(s snapshot, err error) error {
			if err != nil || !s.restricted.Equal(now.Add(time.Hour)) {
				return fmt.Errorf("restricted until %v, err %v; want %v", s.restricted, err, now.Add(time.Hour))
			}
			return nil
		}},
		{"consent", func(tx custos.Tx) error {
			return tx.InsertConsent(ctx, &custos.StoredConsent{ID: "c2", SubjectID: "s1", Purpose: "marketing", Scope: "purpose",
				Action: custos.ConsentWithdrawn, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"})
		}, func(s snapshot, err error) error {
			if err != nil || s.consents != 2 {
				return fmt.Errorf("%d consents, err %v; want 2", s.consents, err)
			}
			return nil
		}},
		{"consents in a batch", func(tx custos.Tx) error {
			// s1's consent after another customer's two: the batch
			// names each customer once, not only its first.
			return tx.InsertConsents(ctx, []*custos.StoredConsent{
				{ID: "c4", SubjectID: "s9", Purpose: "marketing", Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"},
				{ID: "c5", SubjectID: "s9", Purpose: "analytics", Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"},
				{ID: "c3", SubjectID: "s1", Purpose: "marketing", Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"},
			})
		}, func(s snapshot, err error) error {
			if err != nil || s.consents != 3 {
				return fmt.Errorf("%d consents, err %v; want 3", s.consents, err)
			}
			return nil
		}},
		{"key rewrap", func(tx custos.Tx) error {
			return tx.UpdateDataKey(ctx, &custos.DataKey{SubjectID: "s1", Version: 2, KEKVersion: 2, Wrapped: []byte("rewrapped"), CreatedAt: now})
		}, func(s snapshot, err error) error {
			if err != nil || s.key == nil || s.key.Version != 2 || !bytes.Equal(s.key.Wrapped, []byte("rewrapped")) {
				return fmt.Errorf("key %+v, err %v; want version 2", s.key, err)
			}
			return nil
		}},
		{"lookup deleted", func(tx custos.Tx) error {
			return tx.DeleteLookups(ctx, "s1", "")
		}, func(s snapshot, err error) error {
			if err != nil || s.lookup != "" {
				return fmt.Errorf("lookup %q, err %v; want none", s.lookup, err)
			}
			return nil
		}},
		{"shredded", func(tx custos.Tx) error {
			if _, err := tx.DeleteConsents(ctx, "s1"); err != nil {
				return err
			}
			if err := tx.DeleteDataKey(ctx, "s1"); err != nil {
				return err
			}
			return tx.DeleteSubject(ctx, "s1")
		}, func(s snapshot, err error) error {
			if custos.ErrorCode(err) != custos.ENOTFOUND {
				return fmt.Errorf("read after erasure: %+v, err %v; want ENOTFOUND", s, err)
			}
			return nil
		}},
	}
	for _, step := range steps {
		if err := db.Update(ctx, step.write); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if err := step.check(readAll(db, "s1")); err != nil {
			t.Errorf("%s: %v", step.name, err)
		}
	}
	// None of these emptied the cache: s2 is still answered from it.
	st := db.ReadCacheStats()
	if st.Flushes != before.Flushes {
		t.Errorf("flushes %d → %d: writes naming their customer must not empty the cache", before.Flushes, st.Flushes)
	}
	if _, err := readAll(db, "s2"); err != nil {
		t.Fatal(err)
	}
	if after := db.ReadCacheStats(); after.Hits != st.Hits+1 {
		t.Errorf("s2 read after writes to s1: hits %d → %d, want a hit", st.Hits, after.Hits)
	}
}

// TestReadCacheUntrackedWrite: a statement that changes a cached table
// without naming its customer (here raw SQL through the store's write
// pool inside a group would bypass Tx; the dump loader is such a writer)
// empties the whole cache.
func TestReadCacheUntrackedWrite(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t, nil)
	seedCached(t, db, "s1")
	before := db.ReadCacheStats()
	// RestrictRecords goes through the shared statements, which do not
	// name a customer for subjects; records are not cached, so this must
	// not flush. A subject UPDATE without a customer must.
	err := db.Update(ctx, func(tx custos.Tx) error {
		_, err := tx.(custos.RetentionTx).RestrictRecords(ctx, []custos.RecordID{"nope"}, time.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := db.ReadCacheStats(); st.Flushes != before.Flushes {
		t.Fatalf("a write to records flushed the cache: %+v", st)
	}
	if err := db.Update(ctx, func(tx custos.Tx) error {
		return sqlite.ExecUntracked(ctx, tx, `UPDATE subjects SET updated_at = updated_at + 1`)
	}); err != nil {
		t.Fatal(err)
	}
	if st := db.ReadCacheStats(); st.Flushes != before.Flushes+1 || st.Entries != 0 {
		t.Fatalf("after an untracked subjects UPDATE: %+v, want one flush and no entries", st)
	}
}

// TestReadCacheAcrossProcesses: two stores on one file stand for two
// processes (serve and a command such as custos retention run); an
// erasure committed by one is seen by the next read of the other.
func TestReadCacheAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	a, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err := sqlite.Open(ctx, path, sqlite.Options{Migrate: true, ReadCache: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	seedCached(t, a, "s1")
	if st := a.ReadCacheStats(); st.Entries != 1 {
		t.Fatalf("a: %+v, want the subject cached", st)
	}
	// b, with its own cache off, still tells a.
	err = b.Update(ctx, func(tx custos.Tx) error {
		if err := tx.DeleteDataKey(ctx, "s1"); err != nil {
			return err
		}
		return tx.UpdateSubject(ctx, &custos.StoredSubject{ID: "s1", Sealed: map[string][]byte{"name": []byte("other")}, UpdatedAt: time.Now()})
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := readAll(a, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s.key != nil || string(s.sealed) != "other" {
		t.Fatalf("a read after b's erasure of the key: key %+v, sealed %q; want no key and the new row", s.key, s.sealed)
	}
	// a's own writes do not make a empty itself.
	seedCached(t, a, "s2")
	before := a.ReadCacheStats()
	if err := a.Update(ctx, func(tx custos.Tx) error { return tx.DeleteLookups(ctx, "s1", "") }); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(a, "s2"); err != nil {
		t.Fatal(err)
	}
	if st := a.ReadCacheStats(); st.Flushes != before.Flushes || st.Hits != before.Hits+1 {
		t.Fatalf("a's own write: %+v after %+v, want no flush and a hit", st, before)
	}
}

// TestReadCacheLinearizable: while readers keep the cache busy, every
// value a write commits is the one the next read sees, never an older
// one a racing reader put back.
func TestReadCacheLinearizable(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t, nil)
	seedCached(t, db, "s1")
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := readAll(db, "s1"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 1; i <= 300; i++ {
		want := fmt.Sprintf("v%d", i)
		err := db.Update(ctx, func(tx custos.Tx) error {
			return tx.UpdateSubject(ctx, &custos.StoredSubject{ID: "s1", Sealed: map[string][]byte{"name": []byte(want)}, UpdatedAt: time.Now()})
		})
		if err != nil {
			t.Fatal(err)
		}
		s, err := readAll(db, "s1")
		if err != nil {
			t.Fatal(err)
		}
		if string(s.sealed) != want {
			stop.Store(true)
			t.Fatalf("write %d committed %q, next read saw %q", i, want, s.sealed)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := db.ReadCacheStats(); st.Hits == 0 {
		t.Fatalf("%+v: the readers never hit the cache, so the test proved nothing", st)
	}
}

// TestAtEndGroup: in a commit group, a failing member's end work never
// runs, the others' runs once after every member, and a failing end fails
// the whole group.
func TestAtEndGroup(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t, nil)
	var mu sync.Mutex
	var ran []string
	member := func(name string, fail bool) func(tx custos.Tx) error {
		return func(tx custos.Tx) error {
			tx.(custos.AtEnder).AtEnd(func(custos.Tx) error {
				mu.Lock()
				ran = append(ran, name)
				mu.Unlock()
				return nil
			})
			if fail {
				return custos.Errorf(custos.EINVALID, "refused")
			}
			return nil
		}
	}
	var wg sync.WaitGroup
	results := make([]error, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = db.Update(ctx, member(fmt.Sprint(i), i%2 == 1))
		}()
	}
	wg.Wait()
	for i, err := range results {
		if (i%2 == 1) != (err != nil) {
			t.Errorf("member %d: %v", i, err)
		}
	}
	mu.Lock()
	got := fmt.Sprint(ran)
	mu.Unlock()
	for _, bad := range []string{"1", "3", "5"} {
		if bytes.Contains([]byte(got), []byte(bad)) {
			t.Errorf("end work ran for failed member %s: %s", bad, got)
		}
	}
	if len(ran) != 3 {
		t.Errorf("end work ran %v, want once for each of the 3 members that succeeded", ran)
	}
	// A failing end fails the transaction: nothing of it is committed.
	err := db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.SetMeta(ctx, "k", "v"); err != nil {
			return err
		}
		tx.(custos.AtEnder).AtEnd(func(custos.Tx) error { return errors.New("end failed") })
		return nil
	})
	if err == nil {
		t.Fatal("a failing end work was not reported")
	}
	err = db.View(ctx, func(tx custos.Tx) error {
		_, err := tx.GetMeta(ctx, "k")
		return err
	})
	if custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("meta written by a transaction whose end failed: %v", err)
	}
}

// TestReadCacheLookupsConcurrent: readers look customers up by key and
// read them on many goroutines while their keys change (a corrected
// mobile number). Nobody deadlocks, and after each change the old key
// finds nobody and the new one finds the customer.
func TestReadCacheLookupsConcurrent(t *testing.T) {
	ctx := context.Background()
	// A cache far smaller than the customers read keeps evicting and
	// filling entries, as a busy node does.
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{Migrate: true, ReadCache: 24})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const n = 48
	ids := make([]custos.SubjectID, n)
	keys := make([]atomic.Value, n) // current lookup hash per subject
	for i := range ids {
		ids[i] = custos.SubjectID(fmt.Sprintf("s%02d", i))
		seedCached(t, db, ids[i])
		keys[i].Store("h-" + string(ids[i]))
	}
	find := func(hash string) (custos.SubjectID, error) {
		var id custos.SubjectID
		err := db.View(ctx, func(tx custos.Tx) error {
			var err error
			if id, err = tx.FindLookup(ctx, "mobile", []byte(hash)); err != nil {
				return err
			}
			_, err = tx.GetSubject(ctx, id)
			return err
		})
		return id, err
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i = (i*7 + 3) % n {
				select {
				case <-done:
					return
				default:
				}
				hash := keys[i].Load().(string)
				if _, err := find(hash); err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
					errs <- err
					return
				}
			}
		}()
	}
	watchdog := time.AfterFunc(60*time.Second, func() { panic("TestReadCacheLookupsConcurrent: no progress in 60 s (deadlock?)") })
	defer watchdog.Stop()
	for round := range 400 {
		i := round % n
		old := keys[i].Load().(string)
		fresh := fmt.Sprintf("h-%s-%d", ids[i], round)
		err = db.Update(ctx, func(tx custos.Tx) error {
			if err := tx.DeleteLookups(ctx, ids[i], "mobile"); err != nil {
				return err
			}
			return tx.InsertLookup(ctx, "mobile", []byte(fresh), ids[i])
		})
		if err != nil {
			t.Fatal(err)
		}
		keys[i].Store(fresh)
		if id, err := find(old); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Fatalf("round %d: the corrected-away key still finds %q (err %v)", round, id, err)
		}
		// Twice: the first may fill the cache, the second is answered by it.
		for range 2 {
			if id, err := find(fresh); err != nil || id != ids[i] {
				t.Fatalf("round %d: the new key finds %q, err %v; want %s", round, id, err, ids[i])
			}
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestReadCacheKeptByCreates: creating customers, through the multi-row
// inserts a commit group and an import use (INSERT OR FAIL), adds rows and
// changes none, so the customers already cached stay cached: a node that
// takes creates beside its reads must not have its read cache emptied by
// each create, as it had from the twenty-first session to the
// twenty-ninth.
func TestReadCacheKeptByCreates(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t, nil)
	seedCached(t, db, "s1")
	before := db.ReadCacheStats()
	now := time.Now().UTC().Truncate(time.Microsecond)
	err := db.Update(ctx, func(tx custos.Tx) error {
		var (
			subjects []*custos.StoredSubject
			keys     []*custos.DataKey
			lookups  []custos.Lookup
		)
		for _, id := range []custos.SubjectID{"n1", "n2", "n3"} {
			subjects = append(subjects, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("v")}, CreatedAt: now, UpdatedAt: now})
			keys = append(keys, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: now})
			lookups = append(lookups, custos.Lookup{Field: "mobile", Hash: []byte("h-" + string(id)), SubjectID: id})
		}
		if err := tx.InsertSubjects(ctx, subjects); err != nil {
			return err
		}
		if err := tx.InsertDataKeys(ctx, keys); err != nil {
			return err
		}
		return tx.InsertLookups(ctx, lookups)
	})
	if err != nil {
		t.Fatal(err)
	}
	// A create as core's on this store: key, row, then its lookup keys in
	// one statement, and a consent of its own.
	err = db.Update(ctx, func(tx custos.Tx) error {
		if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "n4", Version: 1, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: "n4", Sealed: map[string][]byte{"name": []byte("v")}, CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		if err := tx.InsertLookups(ctx, []custos.Lookup{{Field: "mobile", Hash: []byte("h-n4"), SubjectID: "n4"}, {Field: "email", Hash: []byte("e-n4"), SubjectID: "n4"}}); err != nil {
			return err
		}
		return tx.InsertConsent(ctx, &custos.StoredConsent{ID: "c-n4", SubjectID: "n4", Purpose: "marketing",
			Scope: "purpose", Action: custos.ConsentGranted, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(db, "s1"); err != nil {
		t.Fatal(err)
	}
	st := db.ReadCacheStats()
	if st.Flushes != before.Flushes || st.Entries != before.Entries || st.Hits != before.Hits+1 || st.Misses != before.Misses {
		t.Fatalf("read cache after creating four customers and reading a cached one: %+v, before %+v; want no flush, the same entries and one more hit", st, before)
	}
}
