package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/audit"
)

// quietAuditFiling starts no filer in the stores the test opens, which
// files audit events by calling fileAuditEvents.
func quietAuditFiling(t testing.TB, chunk, most int64) {
	t.Helper()
	oldChunk, oldMax, oldFiler, oldIdle := auditFileChunk, auditFileIdleMax, auditFilerRuns, auditIdleWait
	auditFileChunk, auditFileIdleMax, auditFilerRuns = chunk, most, false
	t.Cleanup(func() {
		auditFileChunk, auditFileIdleMax, auditFilerRuns, auditIdleWait = oldChunk, oldMax, oldFiler, oldIdle
	})
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

// filedTo reads the index's mark.
func filedTo(t testing.TB, db *DB) int64 {
	t.Helper()
	var seq int64
	if err := db.aix.read.QueryRow(`SELECT filed FROM audit_index`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// indexExec runs statements on the index file, with the store's file
// attached as m, on a connection of the test's own.
func indexExec(t *testing.T, db *DB, query string, args ...any) {
	t.Helper()
	c, err := sql.Open("sqlite", auditIndexDSN(db.aix.path, true))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetMaxOpenConns(1)
	if _, err := c.Exec(`ATTACH DATABASE ? AS m`, db.path); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(query, args...); err != nil {
		t.Fatal(err)
	}
}

// auditEntryCounts counts the filed entries under a block other than
// their event's (seq >> auditBlockShift), and those naming their event's
// subject, actor, action or time, spelled out here rather than taken
// from auditEntryKeys, so that a wrong key there shows.
func auditEntryCounts(t *testing.T, db *DB) (wrong, matching int64) {
	t.Helper()
	db.aix.mu.Lock()
	defer db.aix.mu.Unlock()
	if err := db.aix.conn.QueryRowContext(context.Background(), `SELECT (SELECT count(*) FROM audit_blocks WHERE block <> seq >> ?),
		(SELECT count(*) FROM audit_blocks AS x JOIN m.audit_events AS e USING (seq) WHERE x.key IN
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

	// Each block is probed through the key, not scanned, and the
	// events are read by seq.
	if p := indexQueryPlan(t, db, probeQuery, 0, 2, "ssub_a", "ssub_a", 0, 2*block, auditBlockShift); !strings.Contains(p, "SEARCH x USING PRIMARY KEY (block=? AND key>? AND key<?)") {
		t.Errorf("query plan does not probe each block by its key: %s", p)
	}
	if p := queryPlan(t, db, `SELECT seq FROM audit_events WHERE seq IN (SELECT value FROM json_each(?)) AND subject_id = ?`, "[1,5,9]", "sub_a"); !strings.Contains(p, "SEARCH audit_events USING INTEGER PRIMARY KEY (rowid=?)") {
		t.Errorf("query plan does not read the events by seq: %s", p)
	}
}

// indexQueryPlan is queryPlan's on the index file.
func indexQueryPlan(t *testing.T, db *DB, query string, args ...any) string {
	t.Helper()
	return poolPlan(t, db.aix.read, query, args...)
}

// TestAuditBlocksMigration: migration 0009 filed the events a store
// already held and dropped the per-event indexes, and 0016 drops its
// tables from the database: a store from before 0009 migrated today has
// neither, and its filer files the whole log into the index file in
// steps while no group commits.
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
	if _, err := db.write.ExecContext(ctx, `CREATE INDEX audit_events_subject_id ON audit_events (subject_id);
		CREATE INDEX audit_events_actor_id ON audit_events (actor_id);
		CREATE INDEX audit_events_action ON audit_events (action);
		CREATE INDEX audit_events_time ON audit_events (time);
		DELETE FROM migrations WHERE name IN ('0009_audit_blocks.sql', '0015_audit_blocks_1024.sql', '0016_audit_index_file.sql')`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	rows, err := db.read.Query(`SELECT name FROM sqlite_schema WHERE (type = 'index' AND tbl_name = 'audit_events') OR name LIKE 'audit_blocks%'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		left = append(left, name)
	}
	rows.Close()
	if len(left) != 0 {
		t.Errorf("after the migrations the database still has %v; want the audit indexes and tables dropped", left)
	}
	checkAuditQueries(t, db, r, subjects, "migrated, nothing filed")
	appendRandomEvents(t, db, r, subjects, 3000)
	db.Close()

	// A backlog (here 8,000 events, as a store migrated by 0016 or
	// loaded from a dump has its whole log) is filed by the filer in
	// steps while no group commits.
	auditFileChunk, auditFileIdleMax, auditFilerRuns, auditIdleWait = 100, 400, true, time.Millisecond
	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(20 * time.Second)
	// The counters move after the filing's commit.
	for filedTo(t, db) < 8000 || db.WriterStats().Filed < 8000 {
		if time.Now().After(deadline) {
			t.Fatalf("the filer filed up to %d of 8000 events in 20 s", filedTo(t, db))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := db.WriterStats(); st.Filings < 8000/400 || st.Filed != 8000 {
		t.Errorf("WriterStats: %d filings of %d events; want at least %d of 8000 (at most 400 a filing)", st.Filings, st.Filed, 8000/400)
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
// the writer kicks the filer after the groups once they inserted a chunk
// of events, and it files whole chunks, so the unfiled tail that queries
// scan stays short, with small groups (reads) and with groups larger
// than the chunk (a seed's or an import's).
func TestAuditFilingKeepsUp(t *testing.T) {
	for _, c := range []struct {
		name        string
		groupEvents int
	}{{"small groups", 60}, {"groups larger than the chunk", 250}} {
		t.Run(c.name, func(t *testing.T) {
			quietAuditFiling(t, 100, 400)
			auditFilerRuns, auditIdleWait = true, time.Hour
			db := openInternal(t)
			r := rand.New(rand.NewPCG(13, 9))
			const groups = 40
			for range groups {
				appendRandomEvents(t, db, r, []custos.SubjectID{"sub_a"}, c.groupEvents)
			}
			// The filer files once kicked after the group that
			// answered the last append; give it the moment that takes.
			total, want := int64(groups*c.groupEvents), int64(groups*c.groupEvents-c.groupEvents)
			deadline := time.Now().Add(10 * time.Second)
			for filedTo(t, db) < want && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := filedTo(t, db); got < want {
				t.Errorf("after %d events in groups of %d: filed to %d, want at least %d", total, c.groupEvents, got, want)
			} else if (got+1)%auditFileChunk != 0 {
				t.Errorf("the filer filed up to %d, not a chunk's end", got)
			}
			checkAuditQueries(t, db, r, []custos.SubjectID{"sub_a"}, "filed while writing")
		})
	}
}

// TestAuditFilingBacklogUnderWrites: a backlog past one filing's worth
// that writes find (after an upgrade or a restore) is filed with a pause
// after each filing, as long as it took, so that the filer takes at most
// half a processor from requests; writes the filer keeps up with cause
// no pause.
func TestAuditFilingBacklogUnderWrites(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 100, 400)
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(13, 41))
	subjects := []custos.SubjectID{"sub_a", "sub_b"}
	appendRandomEvents(t, db, r, subjects, 2000) // no filer: the backlog
	db.Close()

	var mu sync.Mutex
	var pauses []time.Duration
	oldPause := filerPause
	filerPause = func(closed <-chan struct{}, d time.Duration) bool {
		mu.Lock()
		defer mu.Unlock()
		pauses = append(pauses, d)
		return true
	}
	t.Cleanup(func() { filerPause = oldPause })
	paused := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(pauses)
	}
	auditFilerRuns, auditIdleWait = true, time.Hour // no idle filing
	db, err = Open(ctx, path, Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	waitFiled := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for filedTo(t, db) < want && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if got := filedTo(t, db); got < want {
			t.Fatalf("filed to %d, want %d", got, want)
		}
	}

	// A group past a chunk kicks the filer: 2,150 events, filed in whole
	// chunks up to 2,099, 400 a filing, with a pause after each filing
	// that left a chunk or more: after 399, 799, 1,199, 1,599 and 1,999.
	appendRandomEvents(t, db, r, subjects, 150)
	waitFiled(2099)
	if got := paused(); len(got) != 5 || slices.Min(got) <= 0 {
		t.Errorf("the backlog's filing paused %v; want five pauses, each as long as a filing", got)
	}
	// Groups the filer keeps up with: no pause.
	for range 3 {
		appendRandomEvents(t, db, r, subjects, 100)
	}
	waitFiled(2399)
	if got := paused(); len(got) != 5 {
		t.Errorf("filing up with the writes paused %d times more; want none", len(got)-5)
	}
	checkAuditQueries(t, db, r, subjects, "backlog filed under writes")
}

// TestAuditFilingOffTheWriter: filing takes the index file's lock, never
// the store's, so writes commit while another connection holds the index
// file's write lock (before the fifty-eighth session the writer filed
// under its own lock, and every write waited for it); the filer files
// once the lock is let go; and an audit query inside a write transaction
// (core runs one with its own audit event) finds what a read finds.
func TestAuditFilingOffTheWriter(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 100, 400)
	auditFilerRuns, auditIdleWait = true, time.Hour
	db := openInternal(t)
	r := rand.New(rand.NewPCG(13, 21))
	subjects := []custos.SubjectID{"sub_a", "sub_b"}
	appendRandomEvents(t, db, r, subjects, 50)

	lock, err := sql.Open("sqlite", auditIndexDSN(db.aix.path, true)+"&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	held, err := lock.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Each append within 5 s, half the busy timeout a write waiting for
	// the index file's lock would wait before failing.
	for range 10 {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := db.Update(wctx, func(tx custos.Tx) error {
			seq, head, err := tx.AuditHead(wctx)
			if err != nil {
				return err
			}
			es := make([]*custos.AuditEvent, 60)
			for i := range es {
				e := &custos.AuditEvent{Time: auditTestEpoch, ActorID: "prn_0", Action: custos.AuditSubjectRead, SubjectID: subjects[i%2],
					Decision: custos.DecisionAllow}
				audit.Chain(seq, head, e)
				seq, head, es[i] = e.Seq, e.Hash, e
			}
			return tx.InsertAuditEvents(wctx, es)
		})
		cancel()
		if err != nil {
			t.Fatalf("a write while the index file's lock is held elsewhere: %v", err)
		}
	}
	if got := filedTo(t, db); got != 0 {
		t.Errorf("filed to %d while the index file's lock was held elsewhere", got)
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for filedTo(t, db) < 599 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := filedTo(t, db); got != 599 {
		t.Fatalf("after the lock was let go: filed to %d, want 599 (whole chunks of 100 of 650 events)", got)
	}
	var all []*custos.AuditEvent
	if err := db.View(ctx, func(tx custos.Tx) (err error) {
		all, err = tx.FindAuditEvents(ctx, custos.AuditFilter{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, s := range subjects {
		want := 0
		for _, e := range all {
			if e.SubjectID == s {
				want++
			}
		}
		var inRead, inWrite []*custos.AuditEvent
		if err := db.View(ctx, func(tx custos.Tx) (err error) {
			inRead, err = tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &s})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if err := db.Update(ctx, func(tx custos.Tx) (err error) {
			inWrite, err = tx.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &s})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if want < 300 || len(inRead) != want || len(inWrite) != want {
			t.Errorf("%s's events: %d in a read, %d in a write; want the %d of the whole log's %d in both (300 or more)", s, len(inRead), len(inWrite), want, len(all))
		}
	}
}

// TestAuditFilingTwoProcesses: every process on a store runs a filer;
// they take turns at the index file's lock, and between them file every
// event, whichever process appended it, exactly once.
func TestAuditFilingTwoProcesses(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 100, 400)
	auditFilerRuns, auditIdleWait = true, time.Millisecond
	db := openInternal(t)
	other, err := Open(ctx, db.path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r := rand.New(rand.NewPCG(13, 31))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c"}
	for i := range 60 {
		appendRandomEvents(t, []*DB{db, other}[i%2], r, subjects, 70)
	}
	// Each filer is kicked by its own writer, once a chunk of its own
	// process's events waits, so less than a chunk a process may be
	// left unfiled (until more come, or a filer finds the writers idle
	// with a backlog of its own).
	const total = 60 * 70
	deadline := time.Now().Add(20 * time.Second)
	filed := func() uint64 { return db.WriterStats().Filed + other.WriterStats().Filed }
	for (filedTo(t, db) <= total-2*auditFileChunk || filed() < uint64(filedTo(t, db))) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := filedTo(t, db); got <= total-2*auditFileChunk {
		t.Fatalf("two filers filed up to %d of %d events; want less than a chunk of %d a process left", got, total, auditFileChunk)
	}
	if got, want := filed(), uint64(filedTo(t, db)); got != want {
		t.Errorf("the filers filed %d events in all, up to %d; want each once", got, want)
	}
	if _, _, err := other.fileAuditEvents(true, total); err != nil {
		t.Fatal(err)
	}
	if wrong, entries := auditEntryCounts(t, db); wrong != 0 || entries != 4*total {
		t.Errorf("%d entries under the wrong block, %d matching their event; want 0 and %d", wrong, entries, 4*total)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex: %d, %v; want every filed event complete", seq, err)
	}
	checkAuditQueries(t, db, r, subjects, "filed by two processes")
	checkAuditQueries(t, other, r, subjects, "filed by two processes, asked of the other")
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

// BenchmarkFileAuditChunk: the filer's filing of a chunk of 1,024 reads'
// audit events, about random customers among 20,000, onto a log of
// 100,000 filed ones (custos_sqlite_audit_filing_seconds_total): CPU
// the filer takes from requests, though no write waits for it.
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

// TestAuditIndexRepair: custos audit verify (CheckAuditIndex) finds the
// first event whose entries an index file lacks or holds under another
// block, queries never return an event twice or out of order meanwhile,
// and the repair drops the stray entries and files the events again.
func TestAuditIndexRepair(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 1000, 1<<20)
	db := openInternal(t)
	r := rand.New(rand.NewPCG(29, 4))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c", "sub_d", "sub_e"}
	appendRandomEvents(t, db, r, subjects, 20_000)
	if _, _, err := db.fileAuditEvents(true, 17_000); err != nil {
		t.Fatal(err)
	}
	if wrong, entries := auditEntryCounts(t, db); wrong != 0 || entries != 4*17_000 {
		t.Errorf("filed: %d entries under a block other than seq >> 10, %d matching their event; want 0 and %d", wrong, entries, 4*17_000)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex: %d, %v; want every filed event complete", seq, err)
	}

	// 500 more events filed in blocks of 16,384 (as an older binary's
	// index had them): audit verify finds the first.
	indexExec(t, db, `INSERT INTO audit_blocks (block, key, seq)
			SELECT seq >> 14, 's' || subject_id, seq FROM m.audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 'a' || actor_id, seq FROM m.audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 'c' || action, seq FROM m.audit_events WHERE seq > 17000 AND seq <= 17500
			UNION ALL SELECT seq >> 14, 't' || printf('%020d', time), seq FROM m.audit_events WHERE seq > 17000 AND seq <= 17500;
		UPDATE audit_index SET filed = 17500`)
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
	if wrong, _ := auditEntryCounts(t, db); wrong != 0 {
		t.Errorf("after the repair: %d stray entries; want none", wrong)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex after the repair: %d, %v; want every filed event complete", seq, err)
	}
	checkAuditQueries(t, db, r, subjects, "repaired")

	// Entries deleted (to hide events): found, and filed again.
	indexExec(t, db, `DELETE FROM audit_blocks WHERE seq = 4321 AND key LIKE 's%'`)
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 4321 {
		t.Fatalf("CheckAuditIndex with an entry deleted: %d, %v; want 4321", seq, err)
	}
	if seq, err := db.RepairAuditIndex(ctx); err != nil || seq != 4321 {
		t.Fatalf("RepairAuditIndex: %d, %v; want 4321", seq, err)
	}
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex after the repair: %d, %v; want every filed event complete", seq, err)
	}
}

// TestStoreAfterClose: Close may be called again, and what a caller does
// with a closed store fails with an error rather than a panic: reads,
// migrations and leaderships (Close unmaps the counters shared with the
// other processes, which they used), and custos audit verify's check (the
// index's connection was once dropped at Close).
func TestStoreAfterClose(t *testing.T) {
	ctx := context.Background()
	db := openInternal(t)
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close again: %v", err)
	}
	noop := func(custos.Tx) error { return nil }
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"View", func() error { return db.View(ctx, noop) }},
		{"Glance", func() error { return db.Glance(ctx, noop) }},
		{"Update", func() error { return db.Update(ctx, noop) }},
		{"Migrate", func() error { return db.Migrate(ctx) }},
		{"TryLeader", func() error {
			release, ok, err := db.TryLeader(ctx, "retention")
			if ok {
				release() // a leadership no Close would let go
			}
			return err
		}},
		{"CheckAuditIndex", func() error { _, err := db.CheckAuditIndex(ctx); return err }},
	} {
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s on a closed store: panic: %v", c.name, p)
				}
			}()
			if err := c.call(); err == nil {
				t.Errorf("%s on a closed store: no error", c.name)
			}
		}()
	}
}

// TestAuditIndexReconcile: on open, an index that goes past the store's
// log (the filer filed events that a power loss then took from the
// store's file, whose seqs later events get) is cut back to the log's
// head; one that is another store's, or missing, starts empty; a damaged
// one is moved aside and a new one begun; queries find exactly the log's
// events after each.
func TestAuditIndexReconcile(t *testing.T) {
	ctx := context.Background()
	quietAuditFiling(t, 100, 1<<20)
	dir := t.TempDir()
	path := filepath.Join(dir, "custos.db")
	open := func(path string) *DB {
		t.Helper()
		db, err := Open(ctx, path, Options{Migrate: true})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open(path)
	if what := db.AuditIndexOpened(); what != "" {
		t.Errorf("a new store's index, opened: %q; want nothing to say", what)
	}
	r := rand.New(rand.NewPCG(29, 5))
	subjects := []custos.SubjectID{"sub_a", "sub_b", "sub_c"}
	appendRandomEvents(t, db, r, subjects, 3000)
	if _, _, err := db.fileAuditEvents(true, 1<<20); err != nil {
		t.Fatal(err)
	}
	// Events 3,001 to 3,100 as the index would hold them had they been
	// filed and then lost: about another subject.
	indexExec(t, db, `INSERT INTO audit_blocks (block, key, seq)
			WITH RECURSIVE s(n) AS (VALUES (3001) UNION ALL SELECT n + 1 FROM s WHERE n < 3100)
			SELECT n >> 10, 'ssub_lost', n FROM s;
		UPDATE audit_index SET filed = 3100`)
	db.Close()

	db = open(path)
	if got := filedTo(t, db); got != 3000 {
		t.Errorf("reopened with the index past the log's head: filed to %d, want 3000", got)
	}
	if what := db.AuditIndexOpened(); !strings.Contains(what, "filed to 3100, the log ends at 3000") {
		t.Errorf("reopened with the index past the log's head: %q; want it said", what)
	}
	if wrong, entries := auditEntryCounts(t, db); wrong != 0 || entries != 4*3000 {
		t.Errorf("reopened: %d entries under the wrong block, %d matching their event; want 0 and %d", wrong, entries, 4*3000)
	}
	appendRandomEvents(t, db, r, subjects, 200)
	if _, _, err := db.fileAuditEvents(true, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkAuditQueries(t, db, r, subjects, "cut back to the head, then filed")
	if seq, err := db.CheckAuditIndex(ctx); err != nil || seq != 0 {
		t.Errorf("CheckAuditIndex: %d, %v; want every filed event complete", seq, err)
	}
	db.Close()

	// Another store's index file beside this store's database.
	other := open(filepath.Join(dir, "other.db"))
	appendRandomEvents(t, other, rand.New(rand.NewPCG(1, 1)), []custos.SubjectID{"sub_x"}, 4000)
	if _, _, err := other.fileAuditEvents(true, 1<<20); err != nil {
		t.Fatal(err)
	}
	other.Close()
	if err := os.Rename(filepath.Join(dir, "other.db"+AuditIndexSuffix), path+AuditIndexSuffix); err != nil {
		t.Fatal(err)
	}
	db = open(path)
	if got, n := filedTo(t, db), indexEntries(t, db); got != 0 || n != 0 {
		t.Errorf("reopened with another store's index: filed to %d, %d entries; want it emptied", got, n)
	}
	if what, behind := db.AuditIndexOpened(), db.WriterStats().AuditIndexBehind; !strings.Contains(what, "another audit log's") || behind != 3200 {
		t.Errorf("reopened with another store's index: %q, %d behind; want it said, and the log's 3200 events behind", what, behind)
	}
	checkAuditQueries(t, db, r, subjects, "another store's index emptied")
	if _, _, err := db.fileAuditEvents(true, 1<<20); err != nil {
		t.Fatal(err)
	}
	checkAuditQueries(t, db, r, subjects, "filed again")
	db.Close()

	// No index file at all.
	files, _ := filepath.Glob(path + AuditIndexSuffix + "*")
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	db = open(path)
	if got := filedTo(t, db); got != 0 {
		t.Errorf("reopened without an index file: filed to %d, want 0", got)
	}
	if what := db.AuditIndexOpened(); !strings.Contains(what, "a new index; 3200 events to file") {
		t.Errorf("reopened without an index file: %q; want it said", what)
	}
	checkAuditQueries(t, db, r, subjects, "index file removed")
	if _, _, err := db.fileAuditEvents(true, 1<<20); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// A damaged file, here no database at all: moved aside as it was,
	// and a new index begun.
	garbage := []byte("this is not an SQLite database, and it is long enough to have a header of one")
	if err := os.WriteFile(path+AuditIndexSuffix, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	db = open(path)
	defer db.Close()
	if got, n := filedTo(t, db), indexEntries(t, db); got != 0 || n != 0 {
		t.Errorf("reopened with a damaged index file: filed to %d, %d entries; want a new, empty one", got, n)
	}
	if what := db.AuditIndexOpened(); !strings.Contains(what, "damaged") || !strings.Contains(what, "a new index") {
		t.Errorf("reopened with a damaged index file: %q; want it said", what)
	}
	aside, _ := filepath.Glob(path + AuditIndexSuffix + ".damaged-*")
	if len(aside) != 1 {
		t.Fatalf("damaged index files moved aside: %v; want one", aside)
	}
	if b, err := os.ReadFile(aside[0]); err != nil || string(b) != string(garbage) {
		t.Errorf("%s: %q, %v; want the damaged file as it was", aside[0], b, err)
	}
	checkAuditQueries(t, db, r, subjects, "damaged index file replaced")
}

// indexEntries counts the index's entries.
func indexEntries(t *testing.T, db *DB) int64 {
	t.Helper()
	var n int64
	if err := db.aix.read.QueryRow(`SELECT count(*) FROM audit_blocks`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
