package sqlite

import (
	"context"
	"database/sql"
	"fmt"
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
func quietAuditFiling(t testing.TB, chunk, most int64) {
	t.Helper()
	oldChunk, oldMax, oldWriter := auditFileChunk, auditFileIdleMax, auditWriterFiles
	auditFileChunk, auditFileIdleMax, auditWriterFiles = chunk, most, false
	t.Cleanup(func() { auditFileChunk, auditFileIdleMax, auditWriterFiles = oldChunk, oldMax, oldWriter })
}

// auditTestEpoch is the earliest time of appendRandomEvents' events.
var auditTestEpoch = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// appendRandomEvents chains n events onto the log in one transaction, each
// about one of subjects (or none), by one of three actors, with one of two
// actions, at a time in the 28 hours from auditTestEpoch, in no order.
func appendRandomEvents(t testing.TB, db *DB, r *rand.Rand, subjects []custos.SubjectID, n int) {
	t.Helper()
	ctx := context.Background()
	err := db.Update(ctx, func(tx custos.Tx) error {
		seq, head, err := tx.AuditHead(ctx)
		if err != nil {
			return err
		}
		es := make([]*custos.AuditEvent, n)
		for i := range es {
			e := &custos.AuditEvent{Time: auditTestEpoch.Add(time.Duration(r.IntN(100_000)) * time.Second),
				ActorID: custos.PrincipalID(fmt.Sprintf("prn_%d", r.IntN(3))), Action: custos.AuditSubjectRead,
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

// filedTo reads audit_blocks_filed.
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

// auditEntryCounts counts the filed entries under a block other than
// their event's (seq >> auditBlockShift), and those naming their event's
// subject, actor, action or time, spelled out here rather than taken
// from auditEntryKeys, so that a wrong key there shows.
func auditEntryCounts(t *testing.T, db *DB) (wrong, matching int64) {
	t.Helper()
	if err := db.read.QueryRow(`SELECT (SELECT count(*) FROM audit_blocks WHERE block <> seq >> ?),
		(SELECT count(*) FROM audit_blocks AS x JOIN audit_events AS e USING (seq) WHERE x.key IN
			('s' || e.subject_id, 'a' || e.actor_id, 'c' || e.action, 't' || printf('%020d', e.time)))`,
		auditBlockShift).Scan(&wrong, &matching); err != nil {
		t.Fatal(err)
	}
	return wrong, matching
}

// checkAuditQueries compares FindAuditEvents, with each filter it takes
// alone and in pairs, against the whole log filtered here.
func checkAuditQueries(t *testing.T, db *DB, r *rand.Rand, subjects []custos.SubjectID, state string) {
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
	afters := []int64{0, filed - 1, filed, filed + 1, last - 1, 1<<auditBlockShift - 1, 1 << auditBlockShift, r.Int64N(last + 1)}
	read, nobody, actor := custos.AuditSubjectRead, custos.SubjectID("sub_nobody"), custos.PrincipalID("prn_1")
	at := func() *time.Time {
		tm := auditTestEpoch.Add(time.Duration(r.IntN(110_000)-5_000) * time.Second)
		return &tm
	}
	var filters []custos.AuditFilter
	for _, sub := range append(slices.Clone(subjects), "", nobody) {
		filters = append(filters, custos.AuditFilter{SubjectID: &sub}, custos.AuditFilter{SubjectID: &sub, Action: &read},
			custos.AuditFilter{SubjectID: &sub, Since: at()})
	}
	filters = append(filters, custos.AuditFilter{ActorID: &actor}, custos.AuditFilter{ActorID: &actor, Until: at()},
		custos.AuditFilter{Action: &read}, custos.AuditFilter{Since: at()}, custos.AuditFilter{Until: at()},
		custos.AuditFilter{Since: at(), Until: at()}, custos.AuditFilter{Action: &read, Since: at()}, custos.AuditFilter{})
	match := func(f custos.AuditFilter, e *custos.AuditEvent) bool {
		return e.Seq > f.AfterSeq && (f.SubjectID == nil || e.SubjectID == *f.SubjectID) &&
			(f.ActorID == nil || e.ActorID == *f.ActorID) && (f.Action == nil || e.Action == *f.Action) &&
			(f.Since == nil || !e.Time.Before(*f.Since)) && (f.Until == nil || e.Time.Before(*f.Until))
	}
	for _, f := range filters {
		for _, after := range afters {
			if after < 0 {
				continue
			}
			for _, limit := range []int{0, 7} {
				f.AfterSeq, f.Limit = after, limit
				var want []int64
				for _, e := range all {
					if match(f, e) && (limit == 0 || len(want) < limit) {
						want = append(want, e.Seq)
					}
				}
				var got []*custos.AuditEvent
				if err := db.View(ctx, func(tx custos.Tx) error {
					var err error
					got, err = tx.FindAuditEvents(ctx, f)
					return err
				}); err != nil {
					t.Fatalf("%s: %+v: %v", state, f, err)
				}
				gotSeqs := make([]int64, len(got))
				for i, e := range got {
					gotSeqs[i] = e.Seq
				}
				if !slices.Equal(gotSeqs, want) {
					t.Fatalf("%s (filed to %d of %d): %s:\n got %v\nwant %v", state, filed, last, describeFilter(f), gotSeqs, want)
				}
			}
		}
	}
}

// describeFilter prints the set fields of f.
func describeFilter(f custos.AuditFilter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "after %d limit %d", f.AfterSeq, f.Limit)
	if f.SubjectID != nil {
		fmt.Fprintf(&b, " subject %q", *f.SubjectID)
	}
	if f.ActorID != nil {
		fmt.Fprintf(&b, " actor %q", *f.ActorID)
	}
	if f.Action != nil {
		fmt.Fprintf(&b, " action %q", *f.Action)
	}
	if f.Since != nil {
		fmt.Fprintf(&b, " since %s", f.Since.Format(time.RFC3339))
	}
	if f.Until != nil {
		fmt.Fprintf(&b, " until %s", f.Until.Format(time.RFC3339))
	}
	return b.String()
}

// TestAuditBlocks: the audit query (S5: every access traceable) finds
// exactly the events a scan of the whole log finds, by subject, actor,
// action and time, with the seq and limit bounds, whatever part of the
// log is filed into blocks — none, part of a block, up to a block's
// edge, all — across three blocks; and filing puts each event's four
// entries under its block.
func TestAuditBlocks(t *testing.T) {
	quietAuditFiling(t, 1000, 3000)
	db := openInternal(t)
	r := rand.New(rand.NewPCG(13, 7))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c", "sub_d", "sub_e", "sub_f", "sub_g"}
	block := int64(1) << auditBlockShift

	checkAuditQueries(t, db, r, subjects, "empty log")
	appendRandomEvents(t, db, r, subjects, 700)
	checkAuditQueries(t, db, r, subjects, "nothing filed")
	if n, rest, err := db.fileAuditEvents(false, auditFileIdleMax); err != nil || n != 0 || rest != 700 {
		t.Fatalf("fileAuditEvents below the chunk: filed %d, left %d, %v; want nothing filed, 700 left", n, rest, err)
	}
	if n, rest, err := db.fileAuditEvents(true, auditFileIdleMax); err != nil || n != 700 || rest != 0 {
		t.Fatalf("fileAuditEvents(force): filed %d, left %d, %v; want 700 filed, none left", n, rest, err)
	}
	checkAuditQueries(t, db, r, subjects, "all filed")

	// Up to and past the first block's edge, in steps of at most
	// auditFileIdleMax.
	appendRandomEvents(t, db, r, subjects, int(block)-700)
	for filedTo(t, db) < block-auditFileChunk {
		if n, _, err := db.fileAuditEvents(false, auditFileIdleMax); err != nil || n > auditFileIdleMax || n < auditFileChunk {
			t.Fatalf("fileAuditEvents: filed %d, %v; want %d to %d", n, err, auditFileChunk, auditFileIdleMax)
		}
	}
	if n, _, err := db.fileAuditEvents(true, auditFileIdleMax); err != nil || filedTo(t, db) != block {
		t.Fatalf("fileAuditEvents(force): filed %d, %v, up to %d; want up to %d", n, err, filedTo(t, db), block)
	}
	checkAuditQueries(t, db, r, subjects, "one block filed")
	appendRandomEvents(t, db, r, subjects, int(block)+2500)
	if _, _, err := db.fileAuditEvents(false, auditFileIdleMax); err != nil {
		t.Fatal(err)
	}
	checkAuditQueries(t, db, r, subjects, "part of the second block filed")
	for {
		n, _, err := db.fileAuditEvents(true, auditFileIdleMax)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	checkAuditQueries(t, db, r, subjects, "three blocks filed")
	if got, want := filedTo(t, db), 2*block+2500; got != want {
		t.Fatalf("filed to %d, want %d", got, want)
	}

	// Four entries an event, each under its block and naming the event.
	wrong, entries := auditEntryCounts(t, db)
	if wrong != 0 || entries != 4*(2*block+2500) {
		t.Errorf("audit_blocks: %d entries under the wrong block, %d matching their event; want 0 and %d", wrong, entries, 4*(2*block+2500))
	}

	// Each block is probed through the key, not scanned.
	if p := queryPlan(t, db, `SELECT seq FROM audit_events WHERE `+auditBlockProbe(3), 0, 1, 2, "ssub_a", "ssub_a", 0, 2*block); !strings.Contains(p, "SEARCH audit_blocks USING PRIMARY KEY (block=? AND key>? AND key<?)") ||
		!strings.Contains(p, "SEARCH audit_events USING INTEGER PRIMARY KEY (rowid=?)") {
		t.Errorf("query plan does not probe each block by its key: %s", p)
	}
}

// TestAuditBlocksMigration: migration 0009 files the events a store
// already holds and drops the per-event indexes, 0015 files them again
// in blocks of 1,024, and the writer files a backlog while no write
// waits.
func TestAuditBlocksMigration(t *testing.T) {
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
	if _, err := db.write.ExecContext(ctx, `DROP TABLE audit_blocks; DROP TABLE audit_blocks_filed;
		CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
		CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
		CREATE INDEX audit_events_action ON audit_events (action);
		CREATE INDEX audit_events_time ON audit_events (time);
		DELETE FROM migrations WHERE name IN ('0009_audit_blocks.sql', '0015_audit_blocks_1024.sql')`); err != nil {
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
	if err := db.read.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'audit_events'`).Scan(&idx); err != nil || idx != 0 {
		t.Errorf("indexes on audit_events after the migration: %d, %v; want them dropped", idx, err)
	}
	checkAuditQueries(t, db, r, subjects, "migrated")
	appendRandomEvents(t, db, r, subjects, 3000)
	db.Close()

	// A backlog (here 3,000 events, as a store loaded from a dump has
	// its whole log) is filed by the writer in steps while idle.
	auditFileChunk, auditFileIdleMax, auditWriterFiles = 100, 400, true
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
	checkAuditQueries(t, db, r, subjects, "backlog filed")
}

// TestAuditFilingWholeChunks: a filing the writer makes ends where a
// chunk ends, and in a build a chunk is a block, so the next filing
// starts a block instead of finishing one (BENCHMARKS.md, fifty-sixth
// session); a forced filing files up to the head.
func TestAuditFilingWholeChunks(t *testing.T) {
	if auditFileChunk != 1<<auditBlockShift {
		t.Fatalf("auditFileChunk is %d, a block %d events: filings would not end on a block's edge", auditFileChunk, 1<<auditBlockShift)
	}
	quietAuditFiling(t, 100, 1000)
	db := openInternal(t)
	r := rand.New(rand.NewPCG(13, 11))
	subjects := []custos.SubjectID{"sub_a", "sub_b"}
	for _, step := range []struct {
		add           int
		most          int64
		filed, unfile int64
	}{
		{250, 1000, 199, 51}, // up to the second chunk's end
		{30, 1000, 0, 81},    // no chunk ends in the 81 unfiled
		{19, 1000, 100, 0},   // the third chunk, whole
		{520, 1000, 500, 20}, // five chunks, the last one's end
		{500, 150, 100, 420}, // at most 150: one chunk
		{80, 50, 0, 500},     // at most 50: no whole chunk
	} {
		appendRandomEvents(t, db, r, subjects, step.add)
		before := filedTo(t, db)
		n, rest, err := db.fileAuditEvents(false, step.most)
		if err != nil || n != step.filed || rest != step.unfile {
			t.Fatalf("after %d more events, from %d, at most %d: filed %d, left %d, %v; want %d filed, %d left",
				step.add, before, step.most, n, rest, err, step.filed, step.unfile)
		}
		if to := filedTo(t, db); (to+1)%auditFileChunk != 0 && n != 0 {
			t.Errorf("filed up to %d: not a chunk's end", to)
		}
	}
	if n, rest, err := db.fileAuditEvents(true, 1000); err != nil || n != 500 || rest != 0 || filedTo(t, db) != 1399 {
		t.Fatalf("forced: filed %d, left %d, %v, up to %d; want 500, none left, up to 1399", n, rest, err, filedTo(t, db))
	}
	checkAuditQueries(t, db, r, subjects, "filed in whole chunks")
	// WriterStats counts the five filings that filed, not the two that
	// found no whole chunk, and the events they filed.
	if st := db.WriterStats(); st.Filings != 5 || st.Filed != 1399 || st.FilingTime <= 0 {
		t.Errorf("WriterStats: %d filings, %d events filed, %v; want 5, 1399 and some time", st.Filings, st.Filed, st.FilingTime)
	}
}

// TestAuditFilingKeepsUp: under writes that never leave the writer idle,
// it files after the groups once they inserted a chunk of events, and as
// many more as a group inserted, so the unfiled tail that queries scan
// stays short, with small groups (reads) and with groups larger than the
// chunk (a seed's or an import's).
func TestAuditFilingKeepsUp(t *testing.T) {
	for _, c := range []struct {
		name        string
		groupEvents int
	}{{"small groups", 60}, {"groups larger than the chunk", 250}} {
		t.Run(c.name, func(t *testing.T) {
			quietAuditFiling(t, 100, 400)
			oldIdle := auditIdleWait
			auditWriterFiles, auditIdleWait = true, time.Hour
			t.Cleanup(func() { auditIdleWait = oldIdle })
			db := openInternal(t)
			r := rand.New(rand.NewPCG(13, 9))
			const groups = 40
			for range groups {
				appendRandomEvents(t, db, r, []custos.SubjectID{"sub_a"}, c.groupEvents)
			}
			// The writer files after the group that answered the last
			// append; give it the moment that takes.
			total, want := int64(groups*c.groupEvents), int64(groups*c.groupEvents-c.groupEvents)
			deadline := time.Now().Add(10 * time.Second)
			for filedTo(t, db) < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := filedTo(t, db); got < want {
				t.Errorf("after %d events in groups of %d: filed to %d, want at least %d", total, c.groupEvents, got, want)
			} else if (got+1)%auditFileChunk != 0 {
				t.Errorf("the writer filed up to %d, not a chunk's end", got)
			}
			checkAuditQueries(t, db, r, []custos.SubjectID{"sub_a"}, "filed while writing")
		})
	}
}

// filedAuditLog opens a store for a benchmark with a log of events (a
// multiple of 10,000) about random customers among 20,000, all filed;
// it returns the store, the random source (seeded with seed) and the
// customers.
func filedAuditLog(b *testing.B, seed uint64, events int) (*DB, *rand.Rand, []custos.SubjectID) {
	b.Helper()
	quietAuditFiling(b, 1024, 1<<20)
	db := openInternal(b)
	r := rand.New(rand.NewPCG(5, seed))
	subjects := make([]custos.SubjectID, 20_000)
	for i := range subjects {
		subjects[i] = custos.SubjectID(fmt.Sprintf("sub_%016x", r.Uint64()))
	}
	for range events / 10_000 {
		appendRandomEvents(b, db, r, subjects, 10_000)
	}
	if _, rest, err := db.fileAuditEvents(true, 1<<20); err != nil || rest != 0 {
		b.Fatalf("filing: %d left, %v", rest, err)
	}
	return db, r, subjects
}

// BenchmarkFileAuditChunk: the writer's filing of a chunk of 1,024 reads'
// audit events, about random customers among 20,000, onto a log of
// 100,000 filed ones; the time a filing holds the writer, which every
// write waits through (custos_sqlite_audit_filing_seconds_total).
func BenchmarkFileAuditChunk(b *testing.B) {
	db, r, subjects := filedAuditLog(b, 12, 100_000)
	// Up to a block's edge, where the writer's filings start.
	appendRandomEvents(b, db, r, subjects, 1024)
	if _, _, err := db.fileAuditEvents(false, 1024); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		appendRandomEvents(b, db, r, subjects, 1024)
		b.StartTimer()
		if n, _, err := db.fileAuditEvents(false, 1024); err != nil || n != 1024 {
			b.Fatalf("filed %d, %v; want a chunk of 1024", n, err)
		}
	}
}

// BenchmarkFindAuditEventsBySubject: a customer's audit log (GET
// /v1/audit?subject_id=…, as a rights request's report asks for it) in a
// log of 200,000 filed events about 20,000 customers: about ten events,
// found through one probe of the filed entries a block.
func BenchmarkFindAuditEventsBySubject(b *testing.B) {
	db, _, subjects := filedAuditLog(b, 11, 200_000)
	ctx := context.Background()
	found := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := subjects[i%len(subjects)]
		err := db.View(ctx, func(tx custos.Tx) error {
			es, err := tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &id, Limit: 100})
			found += len(es)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(found)/float64(b.N), "events/op")
}

// TestAuditBlocks1024Migration: migration 0015 files the events filed in
// blocks of 16,384 again in blocks of 1,024, each with its four entries,
// leaves the mark and the events past it as they were, and queries find
// every event afterwards.
func TestAuditBlocks1024Migration(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "custos.db")
	quietAuditFiling(t, 1000, 1<<20)
	db, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(29, 4))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c", "sub_d", "sub_e"}
	appendRandomEvents(t, db, r, subjects, 20_000)
	if _, _, err := db.fileAuditEvents(true, 17_000); err != nil {
		t.Fatal(err)
	}
	// The entries as 0009 to 0014 filed them: blocks of 16,384.
	if _, err := db.write.ExecContext(ctx, `UPDATE audit_blocks SET block = seq >> 14;
		DELETE FROM migrations WHERE name = '0015_audit_blocks_1024.sql'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	wrong, entries := auditEntryCounts(t, db)
	var beyond int64
	if err := db.read.QueryRow(`SELECT count(*) FROM audit_blocks WHERE seq > 17000`).Scan(&beyond); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || entries != 4*17_000 || beyond != 0 {
		t.Errorf("after 0015: %d entries under a block other than seq >> 10, %d matching their event, %d past the mark; want 0, %d, 0",
			wrong, entries, beyond, 4*17_000)
	}
	if got := filedTo(t, db); got != 17_000 {
		t.Errorf("filed to %d after 0015, want the mark left at 17000", got)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex after 0015: %d, %v; want every filed event complete", seq, err)
	}
	checkAuditQueries(t, db, r, subjects, "after 0015")

	// An older binary left running files 500 more events in blocks of
	// 16,384: audit verify finds the first, queries never return an
	// event twice or out of order meanwhile, and the repair drops the
	// stray entries and files the events again.
	if _, err := db.write.ExecContext(ctx, `INSERT INTO audit_blocks (block, key, seq)
			SELECT seq >> 14, 's' || subject_id, seq FROM audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 'a' || actor_id, seq FROM audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 'c' || action, seq FROM audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 't' || printf('%020d', time), seq FROM audit_events WHERE seq > 17000 AND seq <= 17500;
		UPDATE audit_blocks_filed SET seq = 17500`); err != nil {
		t.Fatal(err)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 17001 {
		t.Fatalf("CheckAuditIndex with stray entries: %d, %v; want 17001", seq, err)
	}
	for _, s := range subjects {
		if err := db.View(ctx, func(tx custos.Tx) error {
			es, err := tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &s})
			for i := 1; err == nil && i < len(es); i++ {
				if es[i].Seq <= es[i-1].Seq {
					t.Errorf("%s's events with stray entries: seq %d after %d", s, es[i].Seq, es[i-1].Seq)
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := db.RepairAuditIndex(ctx); err != nil || seq != 17001 {
		t.Fatalf("RepairAuditIndex: %d, %v; want 17001", seq, err)
	}
	if wrong, _ = auditEntryCounts(t, db); wrong != 0 {
		t.Errorf("after the repair: %d stray entries; want none", wrong)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex after the repair: %d, %v; want every filed event complete", seq, err)
	}
	checkAuditQueries(t, db, r, subjects, "repaired")
}
