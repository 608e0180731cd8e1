package postgres_test

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"custos"
	"custos/audit"
	"custos/postgres"
)

// appendAs runs one Update on db whose member writes meta req and appends
// an audit event for req at the end (writeAndAudit).
func appendAs(t *testing.T, db *postgres.DB, req string) {
	t.Helper()
	if err := db.Update(t.Context(), func(tx custos.Tx) error { return writeAndAudit(t, tx, req) }); err != nil {
		t.Fatalf("Update %s: %v", req, err)
	}
}

// TestOneTripEnds: a node alone ends every group in one round trip, the
// events chained on the server hash as audit.Hash does (checkChain
// recomputes every hash), and the callers' events carry the seqs and
// hashes stored.
func TestOneTripEnds(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	var (
		want   []string
		events []*custos.AuditEvent
	)
	for i := range 6 {
		req := fmt.Sprintf("r%d", i)
		err := db.Update(t.Context(), func(tx custos.Tx) error {
			if err := tx.SetMeta(t.Context(), req, "done"); err != nil {
				return err
			}
			events = append(events, appendAtEnd(t, tx, req))
			return nil
		})
		if err != nil {
			t.Fatalf("Update %s: %v", req, err)
		}
		want = append(want, req)
	}
	if st := db.GroupStats(); st.OneTrip != 6 || st.OneTripFellBack != 0 {
		t.Errorf("ends in one round trip %d, fell back %d; want 6 and 0", st.OneTrip, st.OneTripFellBack)
	}
	if got := checkChain(t, db); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	prev := audit.Genesis
	for i, e := range events {
		if e.Seq != int64(i+1) || !bytes.Equal(e.PrevHash, prev) || !bytes.Equal(e.Hash, audit.Hash(prev, e)) {
			t.Errorf("caller's event %d: seq %d, prev %x, hash %x; want the stored ones", i, e.Seq, e.PrevHash, e.Hash)
		}
		prev = e.Hash
	}
}

// TestOneTripEndsTwoNodes: two nodes append in turn, so each node's hint
// is behind the head; the server chains from the head it reads under the
// lock all the same, so every end goes in one round trip and the chain
// is one, with every member's write.
func TestOneTripEndsTwoNodes(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{Migrate: true})
	var want []string
	for i := range 3 {
		for _, n := range []struct {
			db   *postgres.DB
			name string
		}{{a, "a"}, {b, "b"}} {
			req := fmt.Sprintf("%s%d", n.name, i)
			appendAs(t, n.db, req)
			want = append(want, req)
		}
	}
	for name, db := range map[string]*postgres.DB{"a": a, "b": b} {
		if st := db.GroupStats(); st.OneTrip != 3 || st.OneTripFellBack != 0 {
			t.Errorf("node %s: ends in one round trip %d, fell back %d; want 3 and 0", name, st.OneTrip, st.OneTripFellBack)
		}
	}
	if got := checkChain(t, a); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	wantWritesKept(t, a, want)
}

// wantWritesKept wants the meta write of every member in reqs stored
// (writeAndAudit).
func wantWritesKept(t *testing.T, db *postgres.DB, reqs []string) {
	t.Helper()
	err := db.View(t.Context(), func(tx custos.Tx) error {
		for _, req := range reqs {
			if v, err := tx.GetMeta(t.Context(), req); err != nil || v != "done" {
				t.Errorf("member %s's write: %q, %v", req, v, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOneTripCheckpointDue: when core's interval puts a checkpoint at a
// seq the server gives, the chaining statement fails, the end rolls back
// to its savepoint (keeping the member's write) and goes the usual way,
// where the checkpoint is made; where the hint already puts it in the
// group, the end goes the usual way without sending. Every third event
// here has one. The members write a meta row, or create a subject, whose
// insert is deferred and goes before the savepoint in the one-trip batch
// (fiftieth session), so that the rollback to it keeps the insert too.
func TestOneTripCheckpointDue(t *testing.T) {
	t.Run("meta", func(t *testing.T) {
		testOneTripCheckpointDue(t, func(tx custos.Tx, req string) error { return tx.SetMeta(t.Context(), req, "done") },
			func(db *postgres.DB, reqs []string) { wantWritesKept(t, db, reqs) })
	})
	t.Run("create", func(t *testing.T) {
		testOneTripCheckpointDue(t, func(tx custos.Tx, req string) error { return insertNew(t, tx, "sub_"+req, "e_"+req) },
			func(db *postgres.DB, reqs []string) {
				for _, req := range reqs {
					if !subjectStored(t, db, "sub_"+req) {
						t.Errorf("member %s's subject not stored", req)
					}
				}
			})
	})
}

func testOneTripCheckpointDue(t *testing.T, write func(tx custos.Tx, req string) error, wantKept func(db *postgres.DB, reqs []string)) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{Migrate: true})
	const every = 3
	appendSigned := func(db *postgres.DB, req string) {
		t.Helper()
		err := db.Update(t.Context(), func(tx custos.Tx) error {
			if err := write(tx, req); err != nil {
				return err
			}
			tx.(interface{ NoteCheckpointEvery(int64) }).NoteCheckpointEvery(every)
			appendSignedAtEnd(t, tx, req, every)
			return nil
		})
		if err != nil {
			t.Fatalf("Update %s: %v", req, err)
		}
	}
	// a's hint stays behind while b appends, so a's end at seq 6 finds
	// the checkpoint only on the server.
	var want []string
	for _, s := range []struct {
		db  *postgres.DB
		req string
	}{{a, "1"}, {a, "2"}, {a, "3"}, {b, "4"}, {b, "5"}, {a, "6"}, {a, "7"}} {
		appendSigned(s.db, s.req)
		want = append(want, s.req)
	}
	if got := checkChain(t, a); !slices.Equal(got, want) {
		t.Errorf("chain %v, want %v", got, want)
	}
	seqs := checkpointSeqs(t, a)
	wantKept(a, want)
	if !slices.Equal(seqs, []int64{3, 6}) {
		t.Errorf("checkpoints at %v, want [3 6]", seqs)
	}
	if st := a.GroupStats(); st.OneTripFellBack != 1 {
		t.Errorf("node a: %d ends fell back, want 1 (seq 6, which its hint put at 4)", st.OneTripFellBack)
	}
}

// checkpointSeqs returns the seqs of the signed checkpoints stored, in
// order.
func checkpointSeqs(t *testing.T, db *postgres.DB) []int64 {
	t.Helper()
	var seqs []int64
	err := db.View(t.Context(), func(tx custos.Tx) error {
		cps, err := tx.ListCheckpoints(t.Context())
		for _, c := range cps {
			seqs = append(seqs, c.Seq)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestOneTripEndsWithCreates: a group of creates, whose inserts are
// deferred, ends in one round trip with them (BENCHMARKS.md, fiftieth
// session). A lookup key taken already is refused by PostgreSQL inside
// that batch (insertNewSubjectStrict), so its COMMIT rolls back: nothing
// of the group is stored, no subject without its lookup keys above all,
// and the group runs again without deferring, where only the duplicate's
// member fails, naming the key.
func TestOneTripEndsWithCreates(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	before := db.GroupStats()
	errs := groupMembers(t, db, 4, func(i int, req string, tx custos.Tx) error {
		if err := insertNew(t, tx, "sub_"+req, "e_"+req, "m_"+req); err != nil {
			return err
		}
		appendAtEnd(t, tx, req)
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	st := db.GroupStats()
	if got := st.OneTrip - before.OneTrip; got != 2 { // the blocking Update's group, and the creates'
		t.Errorf("ends in one round trip: %d, want 2", got)
	}
	if st.Deferred-before.Deferred != 4 || st.Undeferred != before.Undeferred {
		t.Errorf("deferred %d, run again %d; want 4 and 0", st.Deferred-before.Deferred, st.Undeferred-before.Undeferred)
	}

	const duplicate = 2 // its mobile is req_0's
	before = db.GroupStats()
	errs = groupMembers(t, db, 4, func(i int, req string, tx custos.Tx) error {
		mobile := "m_d" + req
		if i == duplicate {
			mobile = "m_req_0"
		}
		if err := insertNew(t, tx, "sub_d"+req, "e_d"+req, mobile); err != nil {
			return err
		}
		appendAtEnd(t, tx, "d"+req)
		return nil
	})
	for i, err := range errs {
		e := custos.AsError(err)
		if i == duplicate && (e == nil || e.Code != custos.ECONFLICT || e.Message != "Lookup already exists.") {
			t.Errorf("member %d: %v, want ECONFLICT Lookup already exists.", i, err)
		}
		if i != duplicate && err != nil {
			t.Errorf("member %d: %v", i, err)
		}
		if id := fmt.Sprintf("sub_dreq_%d", i); subjectStored(t, db, id) != (i != duplicate) {
			t.Errorf("%s stored: %v, want %v", id, i == duplicate, i != duplicate)
		}
	}
	st = db.GroupStats()
	if st.Undeferred-before.Undeferred != 1 {
		t.Errorf("groups run again without deferring: %d, want 1", st.Undeferred-before.Undeferred)
	}
	if st.OneTrip-before.OneTrip < 2 {
		t.Errorf("ends sent in one round trip: %d, want the deferred one and its run again", st.OneTrip-before.OneTrip)
	}
	// The members of a group queue in any order.
	want := []string{"block", "block", "dreq_0", "dreq_1", "dreq_3", "req_0", "req_1", "req_2", "req_3"}
	if got := checkChain(t, db); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Errorf("chain %v, want %v in some order", got, want)
	}
}

// TestOneTripCreatesRace: four nodes create customers at once, a fifth of
// them racing for a few mobile numbers, so that inserts of one group wait
// for another group's on another node and fail inside one-trip batches.
// Every create must end stored whole (its data key, row and both lookup
// keys) with one audit event, or refused with ECONFLICT and nothing
// stored; each contended number ends with exactly one owner.
func TestOneTripCreatesRace(t *testing.T) {
	url := MustCreateSchema(t)
	nodes := []*postgres.DB{MustOpen(t, url, postgres.Options{Migrate: true, Writers: 2})}
	for range 3 {
		nodes = append(nodes, MustOpen(t, url, postgres.Options{Writers: 2}))
	}
	const workers, perWorker, contended = 6, 15, 4
	type outcome struct {
		req, mobile string
		err         error
	}
	out := make(chan outcome, len(nodes)*workers*perWorker)
	var wg sync.WaitGroup
	for n, db := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					req := fmt.Sprintf("r%d_%d_%d", n, w, i)
					mobile := "m_" + req
					if i%5 == 0 {
						mobile = fmt.Sprintf("m_shared_%d", (w+i)%contended)
					}
					err := db.Update(t.Context(), func(tx custos.Tx) error {
						if err := insertNew(t, tx, "sub_"+req, "e_"+req, mobile); err != nil {
							return err
						}
						appendAtEnd(t, tx, req)
						return nil
					})
					out <- outcome{req, mobile, err}
				}
			})
		}
	}
	wg.Wait()
	close(out)

	var stored []string
	owners := map[string]int{}
	for o := range out {
		switch e := custos.AsError(o.err); {
		case o.err == nil:
			stored = append(stored, o.req)
			owners[o.mobile]++
		case e != nil && e.Code == custos.ECONFLICT && strings.HasPrefix(o.mobile, "m_shared_"):
			if subjectStored(t, nodes[0], "sub_"+o.req) {
				t.Errorf("%s: refused (%v) but stored", o.req, o.err)
			}
		default:
			t.Errorf("%s: %v", o.req, o.err)
		}
	}
	for k := range contended {
		if m := fmt.Sprintf("m_shared_%d", k); owners[m] != 1 {
			t.Errorf("%s: %d owners, want 1", m, owners[m])
		}
	}
	// Nothing half-stored: every customer row has its data key and both
	// lookup keys, and there are as many as creates that succeeded.
	var subjects, whole int
	err := nodes[0].Pool().QueryRowContext(t.Context(), `SELECT
		(SELECT count(*) FROM subjects),
		(SELECT count(*) FROM subjects s WHERE EXISTS (SELECT 1 FROM data_keys k WHERE k.subject_id = s.id)
			AND (SELECT count(*) FROM lookups l WHERE l.subject_id = s.id) = 2)`).Scan(&subjects, &whole)
	if err != nil {
		t.Fatal(err)
	}
	if subjects != len(stored) || whole != subjects {
		t.Errorf("%d customer rows, %d of them whole; %d creates succeeded", subjects, whole, len(stored))
	}
	if got := checkChain(t, nodes[0]); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(stored))) {
		t.Errorf("chain holds %d events, want one for each of the %d creates stored", len(got), len(stored))
	}
	var oneTrip, undeferred int64
	for _, db := range nodes {
		st := db.GroupStats()
		oneTrip, undeferred = oneTrip+st.OneTrip, undeferred+st.Undeferred
	}
	if oneTrip == 0 || undeferred == 0 {
		t.Errorf("ends in one round trip %d, groups run again without deferring %d: want both", oneTrip, undeferred)
	}
	t.Logf("%d stored, %d refused; %d ends in one round trip, %d groups run again", len(stored), len(nodes)*workers*perWorker-len(stored), oneTrip, undeferred)
}
