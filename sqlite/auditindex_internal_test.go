package sqlite

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/audit"
)

// quietAuditFiling stops the writer from filing audit events on its own
// for the test, which files them by calling fileAuditEvents.
func quietAuditFiling(t *testing.T, chunk, most int64) {
	t.Helper()
	oldChunk, oldMax, oldEvery, oldIdle := auditFileChunk, auditFileMax, auditFileEvery, auditIdleWait
	auditFileChunk, auditFileMax, auditFileEvery, auditIdleWait = chunk, most, 1<<30, time.Hour
	t.Cleanup(func() {
		auditFileChunk, auditFileMax, auditFileEvery, auditIdleWait = oldChunk, oldMax, oldEvery, oldIdle
	})
}

// appendRandomEvents chains n events onto the log in one transaction, each
// about one of subjects (or none) with one of two actions.
func appendRandomEvents(t *testing.T, db *DB, r *rand.Rand, subjects []custos.SubjectID, n int) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx custos.Tx) error {
		seq, head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		es := make([]*custos.AuditEvent, n)
		for i := range es {
			e := &custos.AuditEvent{Time: tx.Now(), ActorID: "prn_test", Action: custos.AuditSubjectRead,
				Purposes: []string{"account"}, Decision: custos.DecisionAllow}
			if r.IntN(3) == 0 {
				e.Action = custos.AuditSubjectCreate
			}
			if k := r.IntN(len(subjects) + 1); k < len(subjects) {
				e.SubjectID = subjects[k]
			}
			audit.Chain(seq, head, e)
			seq, head, es[i] = e.Seq, e.Hash, e
		}
		return tx.InsertAuditEvents(ctx, es)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// filedTo reads audit_subject_indexed.
func filedTo(t *testing.T, db *DB) int64 {
	t.Helper()
	var seq int64
	if err := db.run(context.Background(), db.read, nil, &sql.TxOptions{ReadOnly: true}, func(tx *Tx) error {
		var err error
		seq, err = tx.auditFiledTo(context.Background())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// checkSubjectQueries compares FindAuditEvents by subject, with every
// other filter the query takes, against the whole log filtered here.
func checkSubjectQueries(t *testing.T, db *DB, r *rand.Rand, subjects []custos.SubjectID, state string) {
	t.Helper()
	ctx := context.Background()
	var all []*custos.AuditEvent
	if err := db.View(ctx, func(tx custos.Tx) error {
		var err error
		all, err = tx.FindAuditEvents(ctx, custos.AuditFilter{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	last := int64(len(all))
	filed := filedTo(t, db)
	afters := []int64{0, 1, filed - 1, filed, filed + 1, last - 1, last, 1<<auditBlockShift - 1, 1 << auditBlockShift,
		1<<auditBlockShift + 1, 2 << auditBlockShift, r.Int64N(last + 1), r.Int64N(last + 1)}
	read := custos.AuditSubjectRead
	for _, sub := range append(slices.Clone(subjects), "", "sub_nobody") {
		for _, after := range afters {
			if after < 0 {
				continue
			}
			for _, limit := range []int{0, 1, 7} {
				for _, action := range []*string{nil, &read} {
					f := custos.AuditFilter{SubjectID: &sub, AfterSeq: after, Limit: limit, Action: action}
					var want []int64
					for _, e := range all {
						if e.SubjectID == sub && e.Seq > after && (action == nil || e.Action == *action) && (limit == 0 || len(want) < limit) {
							want = append(want, e.Seq)
						}
					}
					var got []*custos.AuditEvent
					if err := db.View(ctx, func(tx custos.Tx) error {
						var err error
						got, err = tx.FindAuditEvents(ctx, f)
						return err
					}); err != nil {
						t.Fatalf("%s: subject %q after %d limit %d: %v", state, sub, after, limit, err)
					}
					gotSeqs := make([]int64, len(got))
					for i, e := range got {
						gotSeqs[i] = e.Seq
						if e.SubjectID != sub {
							t.Fatalf("%s: subject %q: got event %d of subject %q", state, sub, e.Seq, e.SubjectID)
						}
					}
					if !slices.Equal(gotSeqs, want) {
						t.Fatalf("%s (filed to %d of %d): subject %q after %d limit %d action %v:\n got %v\nwant %v",
							state, filed, last, sub, after, limit, action != nil, gotSeqs, want)
					}
				}
			}
		}
	}
}

// TestAuditSubjectBlocks: the audit query by subject (S5: every access
// traceable) finds exactly the events a scan of the whole log finds,
// whatever part of the log is filed into blocks — none, part of a block,
// up to a block's edge, all — across three blocks, with the seq, limit
// and action filters; and filing puts each event under its block.
func TestAuditSubjectBlocks(t *testing.T) {
	quietAuditFiling(t, 1000, 3000)
	db := openInternal(t)
	r := rand.New(rand.NewPCG(13, 7))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c", "sub_d", "sub_e", "sub_f", "sub_g"}
	block := int64(1) << auditBlockShift

	checkSubjectQueries(t, db, r, subjects, "empty log")
	appendRandomEvents(t, db, r, subjects, 700)
	checkSubjectQueries(t, db, r, subjects, "nothing filed")
	if n, err := db.fileAuditEvents(false); err != nil || n != 0 {
		t.Fatalf("fileAuditEvents below the chunk: filed %d, %v; want nothing", n, err)
	}
	if n, err := db.fileAuditEvents(true); err != nil || n != 700 {
		t.Fatalf("fileAuditEvents(force): filed %d, %v; want 700", n, err)
	}
	checkSubjectQueries(t, db, r, subjects, "all filed")

	// Up to and past the first block's edge, in steps of at most
	// auditFileMax.
	appendRandomEvents(t, db, r, subjects, int(block)-700)
	for filedTo(t, db) < block-auditFileChunk {
		if n, err := db.fileAuditEvents(false); err != nil || n > auditFileMax || n < auditFileChunk {
			t.Fatalf("fileAuditEvents: filed %d, %v; want %d to %d", n, err, auditFileChunk, auditFileMax)
		}
	}
	if n, err := db.fileAuditEvents(true); err != nil || filedTo(t, db) != block {
		t.Fatalf("fileAuditEvents(force): filed %d, %v, up to %d; want up to %d", n, err, filedTo(t, db), block)
	}
	checkSubjectQueries(t, db, r, subjects, "one block filed")
	appendRandomEvents(t, db, r, subjects, int(block)+2500)
	if _, err := db.fileAuditEvents(false); err != nil {
		t.Fatal(err)
	}
	checkSubjectQueries(t, db, r, subjects, "part of the second block filed")
	for {
		n, err := db.fileAuditEvents(true)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	checkSubjectQueries(t, db, r, subjects, "three blocks filed")
	if got, want := filedTo(t, db), 2*block+2500; got != want {
		t.Fatalf("filed to %d, want %d", got, want)
	}

	var wrong, entries int64
	if err := db.read.QueryRow(`SELECT (SELECT count(*) FROM audit_subject_blocks WHERE block <> seq >> ?),
		(SELECT count(*) FROM audit_subject_blocks JOIN audit_events USING (seq, subject_id))`, auditBlockShift).Scan(&wrong, &entries); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || entries != 2*block+2500 {
		t.Errorf("audit_subject_blocks: %d entries under the wrong block, %d matching an event; want 0 and %d", wrong, entries, 2*block+2500)
	}

	// Each block is probed through the key, not scanned.
	sub, args := auditSubjectSeqs("sub_a", 0, 2*block)
	rows, err := db.read.Query(`EXPLAIN QUERY PLAN `+sub, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	rows.Close()
	if p := strings.Join(plan, "; "); !strings.Contains(p, "SEARCH x USING PRIMARY KEY (block=? AND subject_id=? AND seq>? AND seq<?)") {
		t.Errorf("query plan does not probe each block by its key: %s", p)
	}
}

// TestAuditSubjectBlocksMigration: migration 0009 files the events a
// store already holds and drops the per-event index, and the writer files
// a backlog while no write waits.
func TestAuditSubjectBlocksMigration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	quietAuditFiling(t, 1<<40, 1<<40)
	db, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 8))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c"}
	appendRandomEvents(t, db, r, subjects, 5000)
	// The schema as it was before 0009.
	if _, err := db.write.ExecContext(ctx, `DROP TABLE audit_subject_blocks; DROP TABLE audit_subject_indexed;
		CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
		DELETE FROM migrations WHERE name = '0009_audit_subject_blocks.sql'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := filedTo(t, db); got != 5000 {
		t.Errorf("after the migration: filed to %d, want 5000", got)
	}
	var idx int
	if err := db.read.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'audit_events_subject_id'`).Scan(&idx); err != nil || idx != 0 {
		t.Errorf("audit_events_subject_id after the migration: %d, %v; want it dropped", idx, err)
	}
	checkSubjectQueries(t, db, r, subjects, "migrated")
	appendRandomEvents(t, db, r, subjects, 3000)
	db.Close()

	// A backlog (here 3,000 events, as a store loaded from a dump has
	// its whole log) is filed by the writer in steps while idle.
	auditFileChunk, auditFileMax, auditIdleWait = 100, 400, time.Millisecond
	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(20 * time.Second)
	for filedTo(t, db) < 8000 {
		if time.Now().After(deadline) {
			t.Fatalf("the writer filed up to %d of 8000 events in 20 s", filedTo(t, db))
		}
		time.Sleep(5 * time.Millisecond)
	}
	checkSubjectQueries(t, db, r, subjects, "backlog filed")
}
