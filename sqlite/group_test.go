package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
)

// TestOptimisticGroup checks the commit group's two ways of running its
// members: without savepoints while every member succeeds or fails before
// writing, and again from the start, each member in its own savepoint,
// once a member fails after writing — which must still undo that
// member's writes alone (nothing lost, nothing half-written).
func TestOptimisticGroup(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	refused := custos.Errorf(custos.EINVALID, "refused")

	runs := map[string]int{}
	// put writes key and counts its runs; fail makes it fail after (or,
	// with early, before) writing.
	put := func(key string, fail, early bool) func(tx custos.Tx) error {
		return func(tx custos.Tx) error {
			runs[key]++
			if fail && early {
				return refused
			}
			if err := tx.SetMeta(ctx, key, "v"); err != nil {
				return err
			}
			if fail {
				return refused
			}
			return nil
		}
	}
	stored := func(key string) bool {
		t.Helper()
		err := db.View(ctx, func(tx custos.Tx) error {
			_, err := tx.GetMeta(ctx, key)
			return err
		})
		if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Fatal(err)
		}
		return err == nil
	}
	type want struct {
		key    string
		ok     bool
		runs   int
		stored bool
	}
	for _, tc := range []struct {
		name    string
		members []func(tx custos.Tx) error
		want    []want
	}{
		{"all succeed: one run each",
			[]func(tx custos.Tx) error{put("a1", false, false), put("b1", false, false), put("c1", false, false)},
			[]want{{"a1", true, 1, true}, {"b1", true, 1, true}, {"c1", true, 1, true}}},
		{"a member fails before writing: no second run",
			[]func(tx custos.Tx) error{put("a2", false, false), put("b2", true, true), put("c2", false, false)},
			[]want{{"a2", true, 1, true}, {"b2", false, 1, false}, {"c2", true, 1, true}}},
		{"a member fails after writing: the group runs again with savepoints",
			[]func(tx custos.Tx) error{put("a3", false, false), put("b3", true, false), put("c3", false, false)},
			// c3 never ran in the first run: it stopped at b3.
			[]want{{"a3", true, 2, true}, {"b3", false, 2, false}, {"c3", true, 1, true}}},
		{"two members fail after writing",
			[]func(tx custos.Tx) error{put("a4", true, false), put("b4", false, false), put("c4", true, false), put("d4", false, false)},
			[]want{{"a4", false, 2, false}, {"b4", true, 1, true}, {"c4", false, 1, false}, {"d4", true, 1, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := runGroup(t, db, tc.members...)
			for i, w := range tc.want {
				if ok := errs[i] == nil; ok != w.ok {
					t.Errorf("%s: error %v, want success %v", w.key, errs[i], w.ok)
				}
				if !w.ok && !errors.Is(errs[i], refused) && custos.ErrorCode(errs[i]) != custos.EINVALID {
					t.Errorf("%s: error %v, want its own refusal", w.key, errs[i])
				}
				if runs[w.key] != w.runs {
					t.Errorf("%s ran %d times, want %d", w.key, runs[w.key], w.runs)
				}
				if got := stored(w.key); got != w.stored {
					t.Errorf("%s stored %v, want %v", w.key, got, w.stored)
				}
			}
		})
	}

	// A member that panics after writing is undone alone too.
	errs := runGroup(t, db,
		put("a5", false, false),
		func(tx custos.Tx) error {
			if err := tx.SetMeta(ctx, "b5", "v"); err != nil {
				return err
			}
			panic("bad request")
		},
		put("c5", false, false))
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("panicking member: errors %v", errs)
	}
	if !stored("a5") || stored("b5") || !stored("c5") {
		t.Errorf("panicking member: stored a5 %v b5 %v c5 %v, want true false true", stored("a5"), stored("b5"), stored("c5"))
	}
}

// TestEndAuditInsertFails checks the end work's audit insert (one
// single-row statement per event): when one fails half way through the
// group's events, every member of the group is answered with an error,
// nothing of the group is stored, and the write connection serves the
// next group.
func TestEndAuditInsertFails(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	if errs := runGroup(t, db, func(tx custos.Tx) error { return appendEvent(ctx, tx, 1) }); errs[0] != nil {
		t.Fatal(errs[0])
	}
	// Each member writes a key and leaves two audit events for the end:
	// a good one (seq 2, 3) and, for the last member, one reusing seq 1.
	member := func(key string, n int, dup bool) func(tx custos.Tx) error {
		return func(tx custos.Tx) error {
			if err := tx.SetMeta(ctx, key, "v"); err != nil {
				return err
			}
			tx.(custos.AtEnder).AtEnd(func(tx custos.Tx) error {
				if err := appendEvent(ctx, tx, n); err != nil {
					return err
				}
				if !dup {
					return nil
				}
				e := &custos.AuditEvent{Seq: 1, Time: tx.Now(), ActorID: "prn_test", Action: custos.AuditSubjectRead, Decision: custos.DecisionAllow, Hash: []byte("x")}
				return tx.InsertAuditEvent(ctx, e)
			})
			return nil
		}
	}
	errs := runGroup(t, db, member("e1", 2, false), member("e2", 3, true))
	for i, err := range errs {
		if err == nil {
			t.Errorf("member %d: no error, want the group's failure", i)
		}
	}
	for _, key := range []string{"e1", "e2"} {
		err := db.View(ctx, func(tx custos.Tx) error {
			_, err := tx.GetMeta(ctx, key)
			return err
		})
		if custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Errorf("%s after the failed group: %v, want not found", key, err)
		}
	}
	checkChain(t, db, 1)
	// The connection is usable: the next group commits and chains on.
	errs = runGroup(t, db, member("f1", 2, false), member("f2", 3, false))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d of the next group: %v", i, err)
		}
	}
	checkChain(t, db, 3)
}

// TestMemberTimesOut checks a member whose statement runs past the query
// timeout. SQLite then rolls the whole transaction back itself (an
// interrupted write ends its transaction), so the group's ROLLBACK finds
// none. The member gets its own error; the others of its group run again
// without it and are stored; the slow member's rows are not; and the
// write connection serves the next group. Before, the other members were
// answered "cannot rollback - no transaction is active" (a 10M seed failed
// that way when its process was paused past the timeout).
func TestMemberTimesOut(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "custos.db"), Options{Migrate: true, QueryTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	put := func(key string) func(tx custos.Tx) error {
		return func(tx custos.Tx) error { return tx.SetMeta(ctx, key, "v") }
	}
	// Inserts rows until the query timeout interrupts it.
	slow := func(prefix string) func(tx custos.Tx) error {
		return func(tx custos.Tx) error {
			_, err := tx.(*Tx).exec(ctx, `INSERT INTO meta (key, value)
				WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000)
				SELECT ? || x, 'v' FROM c`, prefix)
			return err
		}
	}
	count := func(prefix string) int {
		t.Helper()
		var n int
		if err := db.read.QueryRowContext(ctx, `SELECT count(*) FROM meta WHERE key LIKE ? || '%'`, prefix).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, tc := range []struct {
		name    string
		members []func(tx custos.Tx) error
		ok      []bool
	}{
		{"alone", []func(tx custos.Tx) error{slow("s1-")}, []bool{false}},
		{"first of three", []func(tx custos.Tx) error{slow("s2-"), put("a2"), put("b2")}, []bool{false, true, true}},
		{"between two", []func(tx custos.Tx) error{put("a3"), slow("s3-"), put("b3")}, []bool{true, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := runGroup(t, db, tc.members...)
			for i, ok := range tc.ok {
				if (errs[i] == nil) != ok {
					t.Errorf("member %d: error %v, want success %v", i, errs[i], ok)
				}
				if errs[i] != nil && strings.Contains(errs[i].Error(), "no transaction is active") {
					t.Errorf("member %d: %v: the ROLLBACK's failure, not the member's own", i, errs[i])
				}
			}
		})
	}
	for _, key := range []string{"a2", "b2", "a3", "b3"} {
		if count(key) != 1 {
			t.Errorf("%s not stored", key)
		}
	}
	for _, prefix := range []string{"s1-", "s2-", "s3-"} {
		if n := count(prefix); n != 0 {
			t.Errorf("the slow member's rows %s*: %d stored, want none", prefix, n)
		}
	}
	if errs := runGroup(t, db, put("after")); errs[0] != nil || count("after") != 1 {
		t.Errorf("the next group: %v", errs[0])
	}
}

// TestGatherYield checks that the writer lets requests that are ready to
// run queue their writes before it begins a group, so that they share its
// commit instead of waiting it out (gatherYields). On one processor, ten
// writers started at once are runnable when the first of them wakes the
// writer, but have not sent yet: without the yield they mostly go one
// group each; with it, mostly all in one. The scheduler is not strictly
// deterministic (it looks at its global queue now and then), so the test
// counts the groups of 20 such rounds.
func TestGatherYield(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	defer func(n int) { gatherYields = n }(gatherYields)
	groups := map[int]uint64{}
	for _, yields := range []int{0, 1} {
		gatherYields = yields
		before := db.WriterStats()
		for round := range 20 {
			var wg sync.WaitGroup
			errs := make([]error, 10)
			for i := range errs {
				wg.Go(func() {
					errs[i] = db.Update(ctx, func(tx custos.Tx) error {
						return tx.SetMeta(ctx, fmt.Sprintf("yield-%d-%d-%d", yields, round, i), "v")
					})
				})
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
		}
		after := db.WriterStats()
		if members := after.Members - before.Members; members != 200 {
			t.Fatalf("gatherYields=%d: %d members, want 200", yields, members)
		}
		groups[yields] = after.Groups - before.Groups
	}
	t.Logf("200 writes in 20 rounds of 10: %d groups without the yield, %d with", groups[0], groups[1])
	// Without the yield, most runs take 191–200 groups and some 40–49;
	// with it, 20–30.
	if groups[1] > 40 {
		t.Errorf("with the yield 200 writes took %d groups, want at most 40 (%d without)", groups[1], groups[0])
	}
}
