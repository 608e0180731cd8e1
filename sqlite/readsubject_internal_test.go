package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"custos"
)

// TestViewReadsSubjectWhole: a View reads a subject with its data key and
// consent history in one statement (readSubject), and answers GetDataKey
// and ListConsentsFor from it; its answers, with the read cache on and
// off, and again from the cache, are those of a write transaction, which
// reads each apart. Issue #7 (10M scale); U2 (the consents a decision
// sees are exactly those of the purposes asked).
func TestViewReadsSubjectWhole(t *testing.T) {
	for _, cache := range []int{0, -1} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			ctx := context.Background()
			db := openWithCache(t, cache)
			now := time.Now().UTC().Truncate(time.Microsecond)
			err := db.Update(ctx, func(tx custos.Tx) error {
				for _, id := range []custos.SubjectID{"whole", "bare"} {
					if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("n-" + id), "mobile": []byte("m")},
						CreatedAt: now, UpdatedAt: now}); err != nil {
						return err
					}
					if err := tx.InsertLookup(ctx, "mobile", []byte("h-"+id), id); err != nil {
						return err
					}
				}
				if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "whole", Version: 2, KEKVersion: 3, Wrapped: []byte("wrapped"), CreatedAt: now}); err != nil {
					return err
				}
				// Purposes interleaved, so that order and filter both show.
				for i, p := range []string{"marketing", "account", "marketing", "analytics", "account"} {
					action := custos.ConsentGranted
					if i == 2 {
						action = custos.ConsentWithdrawn
					}
					if err := tx.InsertConsent(ctx, &custos.StoredConsent{ID: fmt.Sprintf("c%d", i), SubjectID: "whole", Purpose: p,
						Scope: "purpose", Action: action, NoticeVersion: i + 1, At: now.Add(time.Duration(i) * time.Second),
						Channel: "app", InitiatedBy: "subject", ByGuardian: i == 3, ActorID: "prn_x", Sealed: []byte{byte(i)}}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			type answer struct {
				Subject  *custos.StoredSubject
				Key      *custos.DataKey
				KeyErr   string
				Consents map[string][]*custos.StoredConsent
			}
			lists := [][]string{{"marketing"}, {"account", "analytics"}, {"none"}, {}, {"marketing", "account", "analytics"}}
			read := func(tx custos.Tx, id custos.SubjectID, byLookup bool) (a answer, err error) {
				if byLookup {
					found, err := tx.FindLookup(ctx, "mobile", []byte("h-"+id))
					if err != nil || found != id {
						return a, fmt.Errorf("FindLookup: %q, %v; want %q", found, err, id)
					}
				}
				if a.Subject, err = tx.GetSubject(ctx, id); err != nil {
					return a, err
				}
				a.Consents = map[string][]*custos.StoredConsent{}
				for _, ps := range lists {
					cs, err := tx.ListConsentsFor(ctx, id, ps)
					if err != nil {
						return a, err
					}
					a.Consents[strings.Join(ps, ",")] = cs
				}
				a.Key, err = tx.GetDataKey(ctx, id)
				if err != nil {
					a.KeyErr = custos.ErrorCode(err) + ": " + err.Error()
					return a, nil
				}
				// A second answer of the same transaction is not the first's.
				a.Key.Wrapped[0] = 'X'
				if a.Key, err = tx.GetDataKey(ctx, id); err != nil {
					return a, err
				}
				return a, nil
			}
			for _, id := range []custos.SubjectID{"whole", "bare"} {
				var want answer
				if err := db.Update(ctx, func(tx custos.Tx) (err error) { want, err = read(tx, id, false); return err }); err != nil {
					t.Fatal(err)
				}
				if id == "whole" && (want.Key == nil || len(want.Consents["marketing"]) != 2 || len(want.Consents["account,analytics"]) != 3) {
					t.Fatalf("%s in a write transaction: %+v; the seed is wrong", id, want)
				}
				if id == "bare" && (want.Key != nil || !strings.HasPrefix(want.KeyErr, custos.ENOTFOUND)) {
					t.Fatalf("%s in a write transaction: key %+v, %s; want ENOTFOUND", id, want.Key, want.KeyErr)
				}
				// By lookup first (a miss), then by id and by lookup again
				// (hits when the cache is on).
				for run, byLookup := range []bool{true, false, true} {
					var got answer
					err := db.View(ctx, func(tx custos.Tx) (err error) {
						if got, err = read(tx, id, byLookup); err != nil {
							return err
						}
						// Once cached, a read, by lookup too, runs no SQL
						// (a View begins with its first statement). A
						// subject without a data key asks for it each time:
						// inserting a key invalidates no entry.
						if ran := tx.(*Tx).tx != nil; cache == 0 && run > 0 && id == "whole" && ran {
							t.Errorf("%s, View %d (by lookup %v) ran SQL with everything cached", id, run, byLookup)
						}
						return nil
					})
					if err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s, View %d (by lookup %v):\n got %+v\nwant %+v", id, run, byLookup, got, want)
					}
					// What a View returns is its caller's own.
					got.Subject.Sealed["name"][0] = 'X'
					for _, cs := range got.Consents {
						for _, c := range cs {
							c.Sealed[0], c.Purpose = 'X', "changed"
						}
					}
					if got.Key != nil {
						got.Key.Wrapped[0] = 'X'
					}
				}
			}
			err = db.View(ctx, func(tx custos.Tx) error { _, err := tx.GetSubject(ctx, "missing"); return err })
			if err == nil || custos.ErrorCode(err) != custos.ENOTFOUND || !strings.Contains(err.Error(), "Subject") {
				t.Errorf("View of a missing subject: %v, want ENOTFOUND naming the subject", err)
			}
			err = db.View(ctx, func(tx custos.Tx) error { _, err := tx.FindLookup(ctx, "mobile", []byte("h-missing")); return err })
			if err == nil || custos.ErrorCode(err) != custos.ENOTFOUND || !strings.Contains(err.Error(), "Lookup") {
				t.Errorf("View of a missing lookup key: %v, want ENOTFOUND naming the lookup", err)
			}
			if cache == 0 {
				// The first View by lookup missed and filled the cache,
				// lookup key included: the two later Views of each subject
				// hit (the second by lookup without a statement), and the
				// missing subject missed.
				if st := db.ReadCacheStats(); st.Entries != 2 || st.Hits != 4 || st.Misses != 3 {
					t.Errorf("read cache %+v, want 2 entries, 4 hits and 3 misses", st)
				}
			}
		})
	}
}

// TestSubjectReadPlan: readSubject's statement finds the subject, its key
// and its consents through their indexes, in recorded order, without a
// scan or a sort.
func TestSubjectReadPlan(t *testing.T) {
	db := openInternal(t)
	p := queryPlan(t, db, subjectReadSQL, "sub_x")
	for _, want := range []string{"SEARCH s USING INDEX sqlite_autoindex_subjects_1 (id=?)",
		"SEARCH k USING INDEX sqlite_autoindex_data_keys_1 (subject_id=?)", "SEARCH c USING INDEX consents_subject (subject_id=?)"} {
		if !strings.Contains(p, want) {
			t.Errorf("plan %q: want %q", p, want)
		}
	}
	if strings.Contains(p, "SCAN") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("plan %q scans or sorts", p)
	}
}

// TestLongHistoryNotCached: a customer whose consent history is longer
// than maxCachedHistory is read whole but not kept in the read cache, so
// that an entry stays small.
func TestLongHistoryNotCached(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	seed := func(id custos.SubjectID, consents int) {
		err := db.Update(ctx, func(tx custos.Tx) error {
			if err := tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte("n")}, CreatedAt: now, UpdatedAt: now}); err != nil {
				return err
			}
			for i := range consents {
				action := custos.ConsentGranted
				if i%2 == 1 {
					action = custos.ConsentWithdrawn
				}
				if err := tx.InsertConsent(ctx, &custos.StoredConsent{ID: fmt.Sprintf("%s-%d", id, i), SubjectID: id, Purpose: "marketing",
					Scope: "purpose", Action: action, NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	seed("short", maxCachedHistory)
	seed("long", maxCachedHistory+1)
	for range 2 {
		for id, want := range map[custos.SubjectID]int{"short": maxCachedHistory, "long": maxCachedHistory + 1} {
			err := db.View(ctx, func(tx custos.Tx) error {
				if _, err := tx.GetSubject(ctx, id); err != nil {
					return err
				}
				cs, err := tx.ListConsentsFor(ctx, id, []string{"marketing"})
				if err == nil && len(cs) != want {
					err = fmt.Errorf("%d consents, want %d", len(cs), want)
				}
				return err
			})
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	}
	if st := db.ReadCacheStats(); st.Entries != 1 || st.Hits != 1 || st.Misses != 3 {
		t.Errorf("read cache %+v, want 1 entry (short), 1 hit and 3 misses", st)
	}
}

// openWithCache is openInternal with a read cache of cache customers
// (Options.ReadCache).
func openWithCache(t *testing.T, cache int) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "custos.db"), Options{Migrate: true, ReadCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// queryPlan returns SQLite's plan for query on the read pool, its steps
// joined by "; ".
func queryPlan(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	return poolPlan(t, db.read, query, args...)
}

// poolPlan is query's plan on a connection of pool.
func poolPlan(t *testing.T, pool *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := pool.Query(`EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "; ")
}
