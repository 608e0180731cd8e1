package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/audit"
	"custos/postgres"
)

// appendAtEnd registers, as core's appendAudit does, the append of one
// audit event for request req at the end of tx, and returns the event.
func appendAtEnd(t testing.TB, tx custos.Tx, req string) *custos.AuditEvent {
	t.Helper()
	return appendSignedAtEnd(t, tx, req, 0)
}

// appendSignedAtEnd is appendAtEnd, which also inserts a checkpoint (with
// a dummy signature) when the event's seq is a multiple of every, as
// core's chainAudit does; 0: none.
func appendSignedAtEnd(t testing.TB, tx custos.Tx, req string, every int64) *custos.AuditEvent {
	t.Helper()
	at, ok := tx.(custos.AtEnder)
	if !ok {
		t.Fatalf("the PostgreSQL Tx does not offer AtEnd")
	}
	e := &custos.AuditEvent{ActorID: "prn_a", Action: custos.AuditSubjectRead, Decision: custos.DecisionAllow, RequestID: req}
	at.AtEnd(func(tx custos.Tx) error {
		ctx := context.Background()
		seq, head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		e.Time = tx.Now()
		audit.Chain(seq, head, e)
		if err := tx.InsertAuditEvent(ctx, e); err != nil || every == 0 || e.Seq%every != 0 {
			return err
		}
		return tx.InsertCheckpoint(ctx, &custos.AuditCheckpoint{Seq: e.Seq, Hash: e.Hash, Time: tx.Now(), KeyID: "k", Signature: []byte("sig")})
	})
	return e
}

// checkChain reads the whole audit log through db and wants one chain:
// seqs 1..n without a gap, each event linked to and hashed over the one
// before. It returns the request ids in chain order.
func checkChain(t *testing.T, db *postgres.DB) []string {
	t.Helper()
	var events []*custos.AuditEvent
	err := db.View(t.Context(), func(tx custos.Tx) (err error) {
		events, err = tx.FindAuditEvents(t.Context(), custos.AuditFilter{})
		return err
	})
	if err != nil {
		t.Fatalf("FindAuditEvents: %v", err)
	}
	var (
		prev []byte
		reqs []string
	)
	for i, e := range events {
		if i == 0 {
			prev = e.PrevHash // the genesis hash
		}
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d: got seq %d, want %d (gap or fork)", i, e.Seq, i+1)
		}
		if !bytes.Equal(e.PrevHash, prev) {
			t.Fatalf("event %d: prev hash %x, want %x (fork)", e.Seq, e.PrevHash, prev)
		}
		if want := audit.Hash(prev, e); !bytes.Equal(e.Hash, want) {
			t.Fatalf("event %d: hash %x, want %x", e.Seq, e.Hash, want)
		}
		prev = e.Hash
		reqs = append(reqs, e.RequestID)
	}
	return reqs
}

// blockWriter occupies db's only writer with an Update that waits for the
// returned release function, so that the Updates started meanwhile queue
// and the writer then takes them as one group.
func blockWriter(t *testing.T, db *postgres.DB, req string) (release func() error) {
	t.Helper()
	running, unblock, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.Update(t.Context(), func(tx custos.Tx) error {
			appendAtEnd(t, tx, req)
			close(running)
			<-unblock
			return nil
		})
	}()
	<-running
	return func() error {
		close(unblock)
		return <-done
	}
}

// waitQueued waits until n Update calls wait for db's writers: counted
// by db.Queued, and at least n goroutines of the process parked in
// queue.Hand's select. Update counts itself before it reaches that
// select, so a writer released on the count alone could gather a group
// before the last caller had handed its request over, and run it in the
// next group (a CI run saw TestGroupCommitFlushed's group of 4 run as 3).
// The parked goroutines are counted for the whole process: with two
// stores in one test, the second store's wait is no stricter than its
// count.
func waitQueued(t *testing.T, db *postgres.DB, n int64) {
	t.Helper()
	for db.Queued() < n || parkedInHand() < n {
		if t.Context().Err() != nil {
			t.Fatalf("waiting for %d queued updates: %v", n, t.Context().Err())
		}
		time.Sleep(time.Millisecond)
	}
}

// parkedInHand counts the goroutines blocked in queue.Hand's select,
// waiting for a writer to take their request.
func parkedInHand() int64 {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var count int64
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(" [select")) && bytes.Contains(g, []byte("custos/internal/queue.Hand[")) {
			count++
		}
	}
	return count
}

// groupMembers blocks db's only writer, queues members Updates behind it,
// each running member(i, "req_i", tx), releases the writer, checks that
// the members shared one group, and returns their errors.
func groupMembers(t *testing.T, db *postgres.DB, members int64, member func(i int, req string, tx custos.Tx) error) []error {
	t.Helper()
	release := blockWriter(t, db, "block")
	errs := make([]error, members)
	var wg sync.WaitGroup
	for i := range int(members) {
		wg.Go(func() {
			req := fmt.Sprintf("req_%d", i)
			errs[i] = db.Update(t.Context(), func(tx custos.Tx) error { return member(i, req, tx) })
		})
	}
	waitQueued(t, db, members)
	if err := release(); err != nil {
		t.Fatalf("blocking Update: %v", err)
	}
	wg.Wait()
	if got := db.LargestGroup(); got < members {
		t.Fatalf("largest group %d members, want %d: the members did not share a transaction", got, members)
	}
	return errs
}

// TestGroupedAppendsTwoNodes appends audit events at the end of commit
// groups from two nodes on one database — first one forced group of
// several members on each node at once, then free concurrent load with
// several writers per node — and wants one chain with no gap and no fork
// that holds every committed request exactly once.
func TestGroupedAppendsTwoNodes(t *testing.T) {
	url := MustCreateSchema(t)
	nodes := []*postgres.DB{
		MustOpen(t, url, postgres.Options{Migrate: true, Writers: 1}),
		MustOpen(t, url, postgres.Options{Writers: 1}),
	}
	const members = 12
	want := map[string]bool{}
	update := func(db *postgres.DB, req string) error {
		return db.Update(t.Context(), func(tx custos.Tx) error {
			if err := tx.SetMeta(t.Context(), req, "done"); err != nil {
				return err
			}
			appendAtEnd(t, tx, req)
			return nil
		})
	}

	// One group of `members` on each node, both ending at once.
	var releases []func() error
	errs := make(chan error, len(nodes)*members)
	var wg sync.WaitGroup
	for n, db := range nodes {
		blocker := fmt.Sprintf("block_%d", n)
		want[blocker] = true
		releases = append(releases, blockWriter(t, db, blocker))
		for i := range members {
			req := fmt.Sprintf("group_%d_%d", n, i)
			want[req] = true
			wg.Go(func() { errs <- update(db, req) })
		}
		waitQueued(t, db, members)
	}
	for n, release := range releases {
		if err := release(); err != nil {
			t.Fatalf("node %d: blocking Update: %v", n, err)
		}
	}
	wg.Wait()
	for n, db := range nodes {
		if got := db.LargestGroup(); got < members {
			t.Errorf("node %d: largest group %d members, want %d", n, got, members)
		}
	}

	// Free concurrent load, four writers per node.
	nodes = append(nodes,
		MustOpen(t, url, postgres.Options{Writers: 4}),
		MustOpen(t, url, postgres.Options{Writers: 4}))
	const workers, perWorker = 8, 10
	errs2 := make(chan error, 2*workers*perWorker)
	for n, db := range nodes[2:] {
		for w := range workers {
			for i := range perWorker {
				want[fmt.Sprintf("load_%d_%d_%d", n, w, i)] = true
			}
			wg.Go(func() {
				for i := range perWorker {
					errs2 <- update(db, fmt.Sprintf("load_%d_%d_%d", n, w, i))
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	close(errs2)
	for err := range errs {
		if err != nil {
			t.Errorf("Update in a group: %v", err)
		}
	}
	for err := range errs2 {
		if err != nil {
			t.Errorf("Update under load: %v", err)
		}
	}

	reqs := checkChain(t, nodes[0])
	seen := map[string]int{}
	for _, r := range reqs {
		seen[r]++
	}
	for r := range want {
		if seen[r] != 1 {
			t.Errorf("request %s: %d events, want 1", r, seen[r])
		}
	}
	if len(reqs) != len(want) {
		t.Errorf("events: got %d, want %d", len(reqs), len(want))
	}
}

// TestGroupMemberFailure checks that a member of a commit group whose
// function fails leaves neither its writes nor the audit event it
// registered, while the other members of its group commit theirs. Members
// that run no statement (only an audit append, as a read's separate
// append does) take part too, failing and not.
func TestGroupMemberFailure(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	errBoom := errors.New("boom")
	const members = 12
	// Member i writes a meta row unless i%4 >= 2, and fails if i is odd.
	writes := func(i int) bool { return i%4 < 2 }
	fails := func(i int) bool { return i%2 == 1 }
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		if writes(i) {
			if err := tx.SetMeta(t.Context(), req, "done"); err != nil {
				return err
			}
		}
		appendAtEnd(t, tx, req)
		if fails(i) {
			return errBoom
		}
		return nil
	})
	for i, err := range errs {
		if fails(i) && !errors.Is(err, errBoom) {
			t.Errorf("failing member %d: got %v, want its own error", i, err)
		}
		if !fails(i) && err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	got := checkChain(t, db)
	seen := map[string]bool{}
	for _, r := range got {
		seen[r] = true
	}
	want := 1 // the blocker
	for i := range members {
		req := fmt.Sprintf("req_%d", i)
		if seen[req] != !fails(i) {
			t.Errorf("%s: audited %v, want %v", req, seen[req], !fails(i))
		}
		if !fails(i) {
			want++
		}
	}
	if len(got) != want {
		t.Errorf("events: got %d (%v), want %d", len(got), got, want)
	}
	err := db.View(t.Context(), func(tx custos.Tx) error {
		for i := range members {
			_, err := tx.GetMeta(t.Context(), fmt.Sprintf("req_%d", i))
			if stored := writes(i) && !fails(i); stored && err != nil {
				t.Errorf("member %d's write: %v", i, err)
			} else if !stored && custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("member %d's write: got %v, want ENOTFOUND", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupEndFailure checks that a failure at the end of a commit group
// fails every member of the group and commits nothing of it.
func TestGroupEndFailure(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	errBoom := errors.New("boom at the end")
	const members = 6
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		if err := writeAndAudit(t, tx, req); err != nil {
			return err
		}
		if i == members-1 {
			tx.(custos.AtEnder).AtEnd(func(custos.Tx) error { return errBoom })
		}
		return nil
	})
	for i, err := range errs {
		if !errors.Is(err, errBoom) {
			t.Errorf("member %d: got %v, want the group's end failure", i, err)
		}
	}
	wantGroupUndone(t, db, members)
}

// writeAndAudit is a member's usual work: a meta write under req, and an
// audit event for req at the end.
func writeAndAudit(t *testing.T, tx custos.Tx, req string) error {
	if err := tx.SetMeta(t.Context(), req, "done"); err != nil {
		return err
	}
	appendAtEnd(t, tx, req)
	return nil
}

// wantGroupUndone wants nothing of a group of members stored: no audit
// event but the blocking Update's (groupMembers), and none of their
// meta writes.
func wantGroupUndone(t *testing.T, db *postgres.DB, members int) {
	t.Helper()
	if got := checkChain(t, db); len(got) != 1 || got[0] != "block" {
		t.Errorf("events: got %v, want only the blocker's", got)
	}
	err := db.View(t.Context(), func(tx custos.Tx) error {
		for i := range members {
			if _, err := tx.GetMeta(t.Context(), fmt.Sprintf("req_%d", i)); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("member %d's write: got %v, want ENOTFOUND", i, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// shredAtEnd inserts a shred entry for req at tx's end, as an erasure
// does, and returns it.
func shredAtEnd(t *testing.T, tx custos.Tx, req, reason string) *custos.ShredEntry {
	e := &custos.ShredEntry{SubjectID: custos.SubjectID("sub_" + req), ShredAt: tx.Now(), Reason: reason, ActorID: "prn_a"}
	tx.(custos.AtEnder).AtEnd(func(tx custos.Tx) error { return tx.InsertShred(t.Context(), e) })
	return e
}

// wantShreds reads the store's shred entries and wants n of them.
func wantShreds(t *testing.T, db *postgres.DB, n int) []*custos.ShredEntry {
	t.Helper()
	var shreds []*custos.ShredEntry
	err := db.View(t.Context(), func(tx custos.Tx) (err error) {
		shreds, err = tx.ListShreds(t.Context(), 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(shreds) != n {
		t.Fatalf("shred entries: got %d, want %d", len(shreds), n)
	}
	return shreds
}

// TestGroupEndLocksOnce runs a group of erasures' ends: each member
// appends an audit event and inserts a shred entry at the end. The
// group's end takes the append lock once for all of them; the shred
// inserts, which take it where they run alone, send no lock statement of
// their own there (one round trip each saved, under the lock every other
// group waits for). The entries are all stored, in increasing seq, and
// each caller's entry has the seq it was stored under.
func TestGroupEndLocksOnce(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	const members = 5
	before := db.GroupStats().AppendLocks
	mine := make([]*custos.ShredEntry, members)
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		appendAtEnd(t, tx, req)
		mine[i] = shredAtEnd(t, tx, req, "request")
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("member %d: %v", i, err)
		}
	}
	// The blocking Update's group and the members' group: one each.
	if got := db.GroupStats().AppendLocks - before; got != 2 {
		t.Errorf("append lock taken %d times, want 2 (once a group's end)", got)
	}
	shreds := wantShreds(t, db, members)
	for i := 1; i < len(shreds); i++ {
		if shreds[i].Seq <= shreds[i-1].Seq {
			t.Errorf("shred entry %d: seq %d after %d, want increasing", i, shreds[i].Seq, shreds[i-1].Seq)
		}
	}
	stored := map[int64]custos.SubjectID{}
	for _, e := range shreds {
		stored[e.Seq] = e.SubjectID
	}
	for i, e := range mine {
		if stored[e.Seq] != e.SubjectID {
			t.Errorf("member %d: its entry has seq %d, which holds %q, want %q", i, e.Seq, stored[e.Seq], e.SubjectID)
		}
	}
	checkChain(t, db)
}

// TestGroupEndSeqsUnread: when the shred entries' seqs cannot be read
// back at the commit on this side, the transaction has committed all the
// same (the server ran the whole pipeline), and every member is told so:
// an erasure reported failed would have its ledger entry voided while the
// store has erased. The entries are stored; the callers' Seqs stay 0.
func TestGroupEndSeqsUnread(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	postgres.FailSeqReads(t)
	const members = 3
	mine := make([]*custos.ShredEntry, members)
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		if err := writeAndAudit(t, tx, req); err != nil {
			return err
		}
		mine[i] = shredAtEnd(t, tx, req, "request")
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("member %d: %v, want committed", i, err)
		}
		if mine[i].Seq != 0 {
			t.Errorf("member %d: seq %d, want 0 (not read back)", i, mine[i].Seq)
		}
	}
	if got := checkChain(t, db); len(got) != members+1 {
		t.Errorf("events: got %v, want the blocker's and the members'", got)
	}
	wantShreds(t, db, members)
}

// TestGroupEndShredFails makes the end's shred entries fail to insert (a
// NUL byte, which PostgreSQL's text refuses): every member of the group
// gets the error, and neither their entries nor their audit events nor
// their writes are stored.
func TestGroupEndShredFails(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	const members = 4
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		if err := writeAndAudit(t, tx, req); err != nil {
			return err
		}
		reason := "request"
		if i == members-1 {
			reason = "bad\x00reason"
		}
		shredAtEnd(t, tx, req, reason)
		return nil
	})
	for i, err := range errs {
		if err == nil {
			t.Errorf("member %d: committed, want the group's end failure", i)
		}
	}
	wantGroupUndone(t, db, members)
	wantShreds(t, db, 0)
}

// TestGroupDeadlockVictim builds a deadlock between two commit groups on
// two nodes, each of whose second member wants the row the other group's
// first member locked, and wants every member to commit: the member that
// gives up first (after memberLockWait, or as PostgreSQL's deadlock
// victim) is rolled back to its savepoint and runs again in a later
// group, once its own group has committed and freed the row the other
// waits for. (Run again inside its own group it would meet the same cycle
// each time.)
func TestGroupDeadlockVictim(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true, Writers: 1})
	b := MustOpen(t, url, postgres.Options{Writers: 1})
	insertSubjects(t, a, "sub_x", "sub_y")

	aHasX, bHasY := make(chan struct{}), make(chan struct{})
	var once [2]sync.Once
	lock := func(db *postgres.DB, req string, id custos.SubjectID, wait <-chan struct{}, signal chan struct{}, o *sync.Once) func() error {
		return func() error {
			return db.Update(t.Context(), func(tx custos.Tx) error {
				if wait != nil {
					<-wait
				}
				if _, err := tx.GetSubject(t.Context(), id); err != nil { // FOR UPDATE
					return err
				}
				appendAtEnd(t, tx, req)
				if signal != nil {
					o.Do(func() { close(signal) })
				}
				return nil
			})
		}
	}
	steps := []struct {
		db    *postgres.DB
		first func() error
		then  func() error
	}{
		{a, lock(a, "a1", "sub_x", nil, aHasX, &once[0]), lock(a, "a2", "sub_y", bHasY, nil, nil)},
		{b, lock(b, "b1", "sub_y", nil, bHasY, &once[1]), lock(b, "b2", "sub_x", aHasX, nil, nil)},
	}
	var releases []func() error
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for n, s := range steps {
		releases = append(releases, blockWriter(t, s.db, fmt.Sprintf("block_%d", n)))
		wg.Go(func() { errs <- s.first() })
		waitQueued(t, s.db, 1)
		wg.Go(func() { errs <- s.then() })
		waitQueued(t, s.db, 2)
	}
	for n, release := range releases {
		if err := release(); err != nil {
			t.Fatalf("node %d: blocking Update: %v", n, err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	reqs := checkChain(t, a)
	if len(reqs) != 6 {
		t.Errorf("events: got %v, want the two blockers and the four members", reqs)
	}
}

// insertSubjects stores bare subjects with the given ids.
func insertSubjects(t *testing.T, db *postgres.DB, ids ...custos.SubjectID) {
	t.Helper()
	err := db.Update(t.Context(), func(tx custos.Tx) error {
		for _, id := range ids {
			if err := tx.InsertSubject(t.Context(), &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"email": {1}},
				CreatedAt: tx.Now(), UpdatedAt: tx.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("insert subjects: %v", err)
	}
}

// TestGroupMemberHidesError checks a member that swallows the error of a
// statement PostgreSQL failed, leaving the transaction aborted, and
// returns nil: every member must be answered truthfully, an Update that
// returned nil having committed its write and one that did not having
// left none.
func TestGroupMemberHidesError(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	const members = 4
	errs := groupMembers(t, db, members, func(i int, req string, tx custos.Tx) error {
		if err := writeAndAudit(t, tx, req); err != nil {
			return err
		}
		if i == 1 {
			// No such subject: the foreign key fails the statement.
			if err := tx.InsertLookup(t.Context(), "email", []byte("h"), "sub_missing"); err == nil {
				t.Errorf("InsertLookup for a missing subject: got nil error")
			}
		}
		return nil
	})
	audited := map[string]bool{}
	for _, r := range checkChain(t, db) {
		audited[r] = true
	}
	err := db.View(t.Context(), func(tx custos.Tx) error {
		for i := range members {
			req := fmt.Sprintf("req_%d", i)
			_, err := tx.GetMeta(t.Context(), req)
			stored := err == nil
			if !stored && custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Fatalf("GetMeta: %v", err)
			}
			if stored != (errs[i] == nil) || audited[req] != stored {
				t.Errorf("member %d: Update returned %v, write stored %v, audited %v", i, errs[i], stored, audited[req])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestGroupDeferredInserts checks the commit group's deferred creates:
// InsertNewSubject is queued and sent with the other members' in one batch
// before the next statement a member sends itself or with the group's end
// (a lone create's too). A queued insert that conflicts sends the group
// round again without deferring, where its member sees ECONFLICT naming
// what is taken; a member that fails after queueing loses its insert
// alone, even as the group's first (whose BEGIN was queued with it); a
// member that sends a statement after queueing runs it after its insert.
func TestGroupDeferredInserts(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true, Writers: 1})
	ctx := t.Context()
	// A lone create is deferred too: its insert goes with the group's
	// end. A lone duplicate runs again and gets its ECONFLICT.
	sent0, undeferred0 := db.DeferredSent(), db.Undeferred()
	if err := db.Update(ctx, func(tx custos.Tx) error { return insertNew(t, tx, "sub_taken", "e_taken", "m_taken") }); err != nil {
		t.Fatal(err)
	}
	if got := db.DeferredSent() - sent0; got != 1 {
		t.Errorf("a lone create: %d statements sent deferred, want 1", got)
	}
	err := db.Update(ctx, func(tx custos.Tx) error { return insertNew(t, tx, "sub_lone", "e_lone", "m_taken") })
	if e := custos.AsError(err); e == nil || e.Code != custos.ECONFLICT || e.Message != "Lookup already exists." {
		t.Errorf("a lone duplicate: %v, want ECONFLICT Lookup already exists.", err)
	}
	if got := db.Undeferred() - undeferred0; got != 1 {
		t.Errorf("a lone duplicate: run again without deferring %d times, want 1", got)
	}
	errBoom := errors.New("boom")
	const (
		failsAfter = 0 // queues its insert, then fails
		duplicate  = 3 // its mobile is sub_taken's
		thenMeta   = 6 // queues its insert, then writes a meta row about it
	)
	undeferred := db.Undeferred()
	errs := groupMembers(t, db, 8, func(i int, req string, tx custos.Tx) error {
		id := "sub_" + req
		mobile := "m_" + req
		if i == duplicate {
			mobile = "m_taken"
		}
		if err := insertNew(t, tx, id, "e_"+req, mobile); err != nil {
			return err
		}
		if i == thenMeta {
			// The subject must be there first: a meta row naming it
			// is written only if it is.
			if _, err := tx.GetSubject(ctx, custos.SubjectID(id)); err != nil {
				return err
			}
			if err := tx.SetMeta(ctx, req, "after its insert"); err != nil {
				return err
			}
		}
		appendAtEnd(t, tx, req)
		if i == failsAfter {
			return errBoom
		}
		return nil
	})
	for i, err := range errs {
		switch i {
		case failsAfter:
			if !errors.Is(err, errBoom) {
				t.Errorf("member %d: %v, want its own error", i, err)
			}
		case duplicate:
			if e := custos.AsError(err); e == nil || e.Code != custos.ECONFLICT || e.Message != "Lookup already exists." {
				t.Errorf("member %d: %v, want ECONFLICT Lookup already exists.", i, err)
			}
		default:
			if err != nil {
				t.Errorf("member %d: %v", i, err)
			}
		}
		req := fmt.Sprintf("req_%d", i)
		if want := i != failsAfter && i != duplicate; subjectStored(t, db, "sub_"+req) != want {
			t.Errorf("sub_%s stored %v, want %v", req, !want, want)
		}
	}
	if got := db.Undeferred() - undeferred; got != 1 {
		t.Errorf("groups run again without deferring: %d, want 1 (the duplicate's)", got)
	}
	err = db.View(ctx, func(tx custos.Tx) error {
		_, err := tx.GetMeta(ctx, fmt.Sprintf("req_%d", thenMeta))
		return err
	})
	if err != nil {
		t.Errorf("member %d's meta row: %v", thenMeta, err)
	}

	// A group without a conflict: every member's insert deferred and
	// none run again, but the one of a member that fails after queueing
	// it, which is never sent.
	sent := db.DeferredSent()
	undeferred = db.Undeferred()
	errs = groupMembers(t, db, 8, func(i int, req string, tx custos.Tx) error {
		if err := insertNew(t, tx, "sub_b"+req, "e_b"+req, "m_b"+req); err != nil {
			return err
		}
		appendAtEnd(t, tx, "b"+req)
		if i == 5 {
			// Sends the queue, its own insert with it, then fails:
			// the insert is rolled back with the member.
			if _, err := tx.GetSubject(ctx, custos.SubjectID("sub_b"+req)); err != nil {
				return err
			}
		}
		if i == 2 || i == 5 {
			return errBoom
		}
		return nil
	})
	for i, err := range errs {
		fails := i == 2 || i == 5
		if (err == nil) != !fails {
			t.Errorf("second group, member %d: %v", i, err)
		}
		if req := fmt.Sprintf("req_%d", i); subjectStored(t, db, "sub_b"+req) != !fails {
			t.Errorf("sub_b%s stored %v, want %v", req, fails, !fails)
		}
	}
	// Member 2's insert never went out; member 5's went, and was undone.
	if got := db.DeferredSent() - sent; got != 7 {
		t.Errorf("second group: %d statements sent deferred, want 7", got)
	}
	if db.Undeferred() != undeferred {
		t.Errorf("second group ran again without deferring")
	}
	// /metrics and the bench report the same counters.
	st := db.GroupStats()
	if st.Deferred != db.DeferredSent() || st.Undeferred != db.Undeferred() || st.Members < 17 || st.Groups < 3 || st.Groups > st.Members {
		t.Errorf("GroupStats %+v: want the deferred counters, and 17 or more members in 3 or more groups", st)
	}
	var metrics strings.Builder
	db.WriteMetrics(&metrics)
	for _, line := range []string{
		fmt.Sprintf("custos_pg_deferred_statements_total %d\n", st.Deferred),
		fmt.Sprintf("custos_pg_groups_undeferred_total %d\n", st.Undeferred),
		fmt.Sprintf("custos_pg_group_members_total %d\n", st.Members),
		fmt.Sprintf("custos_pg_commit_groups_total %d\n", st.Groups),
		fmt.Sprintf("custos_pg_append_locks_total %d\n", st.AppendLocks),
	} {
		if !strings.Contains(metrics.String(), line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics.String())
		}
	}

	// A duplicate found at the group's end, where the queue goes out
	// with the append lock: the group runs again as in the first.
	undeferred = db.Undeferred()
	errs = groupMembers(t, db, 4, func(i int, req string, tx custos.Tx) error {
		mobile := "m_c" + req
		if i == 1 {
			mobile = "m_taken"
		}
		if err := insertNew(t, tx, "sub_c"+req, "e_c"+req, mobile); err != nil {
			return err
		}
		appendAtEnd(t, tx, "c"+req)
		return nil
	})
	for i, err := range errs {
		if (custos.ErrorCode(err) == custos.ECONFLICT) != (i == 1) || (err != nil && i != 1) {
			t.Errorf("third group, member %d: %v", i, err)
		}
		if req := fmt.Sprintf("req_%d", i); subjectStored(t, db, "sub_c"+req) != (i != 1) {
			t.Errorf("sub_c%s stored %v, want %v", req, i == 1, i != 1)
		}
	}
	if got := db.Undeferred() - undeferred; got != 1 {
		t.Errorf("third group: run again without deferring %d times, want 1", got)
	}
	checkChain(t, db)
}

// insertNew stores a new subject id with a data key and a lookup key for
// each of hashes (email, then mobile), as a create does
// (InsertNewSubject, deferred in a commit group).
func insertNew(t *testing.T, tx custos.Tx, id string, hashes ...string) error {
	t.Helper()
	sid := custos.SubjectID(id)
	now := tx.Now()
	k := &custos.DataKey{SubjectID: sid, Version: 1, KEKVersion: 1, Wrapped: []byte("wrapped " + id), CreatedAt: now}
	s := &custos.StoredSubject{ID: sid, Sealed: map[string][]byte{"email": []byte("sealed " + id)}, CreatedAt: now, UpdatedAt: now}
	var ls []custos.Lookup
	for i, h := range hashes {
		ls = append(ls, custos.Lookup{Field: []string{"email", "mobile"}[i], Hash: []byte(h), SubjectID: sid})
	}
	return tx.(custos.NewSubjectInserter).InsertNewSubject(t.Context(), k, s, ls)
}

// subjectStored reports whether db holds subject id.
func subjectStored(t *testing.T, db *postgres.DB, id string) bool {
	t.Helper()
	err := db.View(t.Context(), func(tx custos.Tx) error {
		_, err := tx.GetSubject(t.Context(), custos.SubjectID(id))
		return err
	})
	if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatal(err)
	}
	return err == nil
}

// TestGroupCommitFlushed checks that an Update with an audit event
// returns only once its commit record is on disk (an acknowledged write
// is durable). pg_walinspect reads only WAL that has been flushed, so the
// test looks for the group's commit record there, right after Update
// returns: lone groups, and groups of several members at once. A group
// that committed with synchronous_commit off, as the sixteenth session's
// early lock release first did without a working flush after it
// (BENCHMARKS.md), fails here.
func TestGroupCommitFlushed(t *testing.T) {
	url := MustCreateSchema(t)
	// One writer, so that groupMembers can gather members behind it.
	db := MustOpen(t, url, postgres.Options{Migrate: true, Writers: 1})
	// The store's own pool: the extension and the WAL functions are
	// database-wide, named with their schema.
	admin := db.Pool()
	var had bool
	if err := admin.QueryRowContext(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_walinspect')`).Scan(&had); err != nil {
		t.Fatal(err)
	}
	if !had {
		if _, err := admin.ExecContext(t.Context(), `CREATE EXTENSION IF NOT EXISTS pg_walinspect WITH SCHEMA public`); err != nil {
			t.Fatalf("pg_walinspect (PostgreSQL 15 contrib, superuser): %v", err)
		}
		// Registered after MustOpen, so it runs before the store closes.
		t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), `DROP EXTENSION IF EXISTS pg_walinspect`) })
	}

	// flushed reports whether the commit record of transaction xid,
	// written after start, is in the WAL flushed to disk.
	flushed := func(start, xid string) bool {
		t.Helper()
		var n int
		err := admin.QueryRowContext(t.Context(), `SELECT count(*) FROM public.pg_get_wal_records_info($1::pg_lsn, pg_current_wal_flush_lsn())
			WHERE resource_manager = 'Transaction' AND record_type LIKE 'COMMIT%' AND xid::text = $2`, start, xid).Scan(&n)
		if err != nil {
			// Also when start is not before the flushed end: nothing
			// written since start is on disk.
			var ins, fl string
			_ = admin.QueryRowContext(t.Context(), `SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text`).Scan(&ins, &fl)
			t.Fatalf("commit of xid %s not flushed: pg_get_wal_records_info from %s (WAL inserted to %s, flushed to %s): %v", xid, start, ins, fl, err)
		}
		return n == 1
	}
	insertLSN := func() string {
		t.Helper()
		var lsn string
		if err := admin.QueryRowContext(t.Context(), `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
			t.Fatal(err)
		}
		return lsn
	}
	member := func(req string, xid *string) func(tx custos.Tx) error {
		return func(tx custos.Tx) (err error) {
			appendAtEnd(t, tx, req)
			*xid, err = postgres.TxID(t.Context(), tx)
			return err
		}
	}

	for i := range 10 {
		start, req := insertLSN(), fmt.Sprintf("lone_%d", i)
		var xid string
		if err := db.Update(t.Context(), member(req, &xid)); err != nil {
			t.Fatalf("Update %s: %v", req, err)
		}
		if !flushed(start, xid) {
			t.Fatalf("Update %s returned before its commit (xid %s) was flushed", req, xid)
		}
	}

	// Groups: every member's answer comes after the group's flush.
	for round := range 3 {
		start := insertLSN()
		const n = 4
		xids := make([]string, n)
		errs := groupMembers(t, db, n, func(i int, req string, tx custos.Tx) error {
			return member(fmt.Sprintf("r%d_%s", round, req), &xids[i])(tx)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d member %d: %v", round, i, err)
			}
			if !flushed(start, xids[i]) {
				t.Fatalf("round %d member %d answered before its group's commit (xid %s) was flushed", round, i, xids[i])
			}
		}
	}
	checkChain(t, db)
}
