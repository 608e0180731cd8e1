package postgres_test

import (
	"bytes"
	"fmt"
	"slices"
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
// here has one.
func TestOneTripCheckpointDue(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{Migrate: true})
	const every = 3
	appendSigned := func(db *postgres.DB, req string) {
		t.Helper()
		err := db.Update(t.Context(), func(tx custos.Tx) error {
			if err := tx.SetMeta(t.Context(), req, "done"); err != nil {
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
	wantWritesKept(t, a, want)
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
