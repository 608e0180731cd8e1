package postgres_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/postgres"
	"custos/storetest"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for the admin connection
)

// testURL returns the URL of the test database, or skips tb when none is
// configured. CI always sets it, so there the tests never skip.
func testURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("CUSTOS_TEST_POSTGRES")
	if u == "" {
		tb.Skip("CUSTOS_TEST_POSTGRES not set: PostgreSQL tests skipped (see .ci/run)")
	}
	return u
}

// MustCreateSchema creates an empty schema test_<random> in the test
// database, drops it (and everything in it) when tb ends, and returns a URL
// whose connections use it as their only search_path entry: each test gets
// its own isolated set of tables.
func MustCreateSchema(tb testing.TB) string {
	tb.Helper()
	base := testURL(tb)
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	schema := "test_" + hex.EncodeToString(b)

	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("open admin connection: %v", err)
	}
	if _, err := admin.ExecContext(tb.Context(), `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		// tb.Context is already cancelled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("drop schema: %v", err)
		}
		if err := admin.Close(); err != nil {
			tb.Errorf("close admin connection: %v", err)
		}
	})
	return withSearchPath(tb, base, schema)
}

// withSearchPath returns base with its search_path runtime parameter set
// to schema; base is a URL or a key=value connection string.
func withSearchPath(tb testing.TB, base, schema string) string {
	tb.Helper()
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " search_path=" + schema
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("CUSTOS_TEST_POSTGRES is not a valid URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// MustOpen opens a store on url and closes it when tb ends.
func MustOpen(tb testing.TB, url string, opts postgres.Options) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), url, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := db.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return db
}

// MustOpenDB opens a migrated store in a fresh schema.
func MustOpenDB(tb testing.TB, now func() time.Time) *postgres.DB {
	tb.Helper()
	return MustOpen(tb, MustCreateSchema(tb), postgres.Options{Now: now, Migrate: true})
}

func TestStore(t *testing.T) {
	testURL(t)
	storetest.Run(t, func(tb testing.TB, now func() time.Time) custos.Store {
		return MustOpenDB(tb, now)
	})
}

// TestStoreAlone runs the contract's tests whose statements go out
// otherwise outside the commit groups: there EraseSubjectRows sends its
// two statements one at a time instead of in one batch, and the shred
// entries inserted at a transaction's end are written before the commit
// (flushShreds) instead of with it.
func TestStoreAlone(t *testing.T) {
	testURL(t)
	storetest.RunOnly(t, func(tb testing.TB, now func() time.Time) custos.Store {
		return aloneStore{MustOpenDB(tb, now)}
	}, "EraseSubjectRows", "Shred")
}

// aloneStore runs every Update outside the commit groups.
type aloneStore struct{ *postgres.DB }

func (s aloneStore) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	return s.DB.UpdateAlone(ctx, fn)
}

// TestConcurrentNodes appends to the audit chain the way core does from
// two stores on one database — two custos nodes — with several goroutines
// each, and wants one gapless chain in which each event links to the one
// before.
func TestConcurrentNodes(t *testing.T) {
	url := MustCreateSchema(t)
	nodes := []*postgres.DB{
		MustOpen(t, url, postgres.Options{Migrate: true}),
		MustOpen(t, url, postgres.Options{Migrate: true}),
	}
	const workers, perWorker = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes)*workers*perWorker)
	for n, node := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					errs <- node.Update(t.Context(), func(tx custos.Tx) error {
						ctx := t.Context()
						seq, head, err := tx.AuditHead(ctx)
						if err != nil {
							return err
						}
						next := seq + 1
						return tx.InsertAuditEvent(ctx, &custos.AuditEvent{
							Seq: next, Time: tx.Now(), ActorID: "prn_a", Action: custos.AuditSubjectRead,
							Decision: custos.DecisionAllow, RequestID: fmt.Sprintf("req_%d_%d_%d", n, w, i),
							PrevHash: head, Hash: fmt.Appendf(nil, "hash-%d", next),
						})
					})
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	err := nodes[1].View(t.Context(), func(tx custos.Tx) error {
		got, err := tx.FindAuditEvents(t.Context(), custos.AuditFilter{})
		if err != nil {
			return err
		}
		if want := len(nodes) * workers * perWorker; len(got) != want {
			t.Fatalf("events: got %d, want %d", len(got), want)
		}
		var prev []byte
		byNode := map[string]int{}
		for i, e := range got {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d: got seq %d, want %d", i, e.Seq, i+1)
			}
			if !bytes.Equal(e.PrevHash, prev) {
				t.Fatalf("event %d: prev hash %q, want %q", e.Seq, e.PrevHash, prev)
			}
			prev = e.Hash
			byNode[e.RequestID[:len("req_0")]]++
		}
		if byNode["req_0"] != workers*perWorker || byNode["req_1"] != workers*perWorker {
			t.Errorf("events per node: got %v, want %d each", byNode, workers*perWorker)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

// TestAuditHeadLocks checks that the append lock is held from AuditHead to
// the end of the transaction, across stores, and that a statement waiting
// for it gives up after the query timeout.
func TestAuditHeadLocks(t *testing.T) {
	url := MustCreateSchema(t)
	a := MustOpen(t, url, postgres.Options{Migrate: true})
	b := MustOpen(t, url, postgres.Options{QueryTimeout: 200 * time.Millisecond})

	hold, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Update(t.Context(), func(tx custos.Tx) error {
			if _, _, err := tx.AuditHead(t.Context()); err != nil {
				return err
			}
			close(hold)
			<-release
			return nil
		})
	}()
	<-hold
	start := time.Now()
	err := b.Update(t.Context(), func(tx custos.Tx) error {
		_, _, err := tx.AuditHead(t.Context())
		return err
	})
	if custos.ErrorCode(err) != custos.EINTERNAL {
		t.Errorf("AuditHead while another node holds the lock: got %v, want EINTERNAL (timeout)", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("AuditHead gave up after %v, want about the query timeout", d)
	}
	// A View reads the head without waiting for the lock.
	err = b.View(t.Context(), func(tx custos.Tx) error {
		_, _, err := tx.AuditHead(t.Context())
		return err
	})
	if err != nil {
		t.Errorf("AuditHead in View while the lock is held: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("holding Update: %v", err)
	}
	// Released at commit: the next appender gets it at once.
	err = b.Update(t.Context(), func(tx custos.Tx) error {
		_, _, err := tx.AuditHead(t.Context())
		return err
	})
	if err != nil {
		t.Errorf("AuditHead after the holder committed: %v", err)
	}
}

// TestConflictKeepsTransaction checks that ECONFLICT does not abort the
// PostgreSQL transaction, as it does not on SQLite: the caller may go on
// and commit.
func TestConflictKeepsTransaction(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	p := &custos.Principal{ID: "prn_a", Name: "Ana", Kind: custos.KindStaff, Roles: []string{}, CreatedAt: t0}
	sub := &custos.StoredSubject{ID: "sub_a", Sealed: map[string][]byte{"email": {1}}, CreatedAt: t0, UpdatedAt: t0}
	dk := &custos.DataKey{SubjectID: "sub_a", Version: 1, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: t0}
	rec := &custos.StoredRecord{ID: "rec_1", SubjectID: "sub_a", Type: "order", Category: "orders", OccurredAt: t0, CreatedAt: t0, Sealed: []byte("s")}
	key := &custos.APIKey{ID: "key_1", PrincipalID: "prn_a", Hash: []byte("h1"), CreatedAt: t0}
	ev := &custos.AuditEvent{Seq: 1, Time: t0, ActorID: "prn_a", Action: custos.AuditSubjectRead, Decision: custos.DecisionAllow, Hash: []byte("e1")}
	cp := &custos.AuditCheckpoint{Seq: 1, Hash: []byte("e1"), Time: t0, KeyID: "k", Signature: []byte("sig")}
	row := &custos.ImportRow{Job: "j", Line: 1, Status: custos.ImportStored, SubjectID: "sub_a"}
	inserts := []struct {
		name string
		fn   func(tx custos.Tx) error
	}{
		{name: "principal", fn: func(tx custos.Tx) error { return tx.InsertPrincipal(ctx, p) }},
		{name: "subject", fn: func(tx custos.Tx) error { return tx.InsertSubject(ctx, sub) }},
		{name: "data key", fn: func(tx custos.Tx) error { return tx.InsertDataKey(ctx, dk) }},
		{name: "record", fn: func(tx custos.Tx) error { return tx.InsertRecord(ctx, rec) }},
		{name: "api key", fn: func(tx custos.Tx) error { return tx.InsertAPIKey(ctx, key) }},
		{name: "audit event", fn: func(tx custos.Tx) error { return tx.InsertAuditEvent(ctx, ev) }},
		{name: "checkpoint", fn: func(tx custos.Tx) error { return tx.InsertCheckpoint(ctx, cp) }},
		{name: "import row", fn: func(tx custos.Tx) error { return tx.InsertImportRow(ctx, row) }},
	}
	err := db.Update(ctx, func(tx custos.Tx) error {
		for _, in := range inserts {
			if err := in.fn(tx); err != nil {
				return fmt.Errorf("%s: %w", in.name, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	for i, in := range inserts {
		t.Run(in.name, func(t *testing.T) {
			meta := fmt.Sprintf("after_%d", i)
			err := db.Update(ctx, func(tx custos.Tx) error {
				if err := in.fn(tx); custos.ErrorCode(err) != custos.ECONFLICT {
					t.Errorf("duplicate %s: got %v, want ECONFLICT", in.name, err)
				}
				return tx.SetMeta(ctx, meta, "ok")
			})
			if err != nil {
				t.Fatalf("Update after the conflict: %v", err)
			}
			err = db.View(ctx, func(tx custos.Tx) error {
				_, err := tx.GetMeta(ctx, meta)
				return err
			})
			if err != nil {
				t.Errorf("the write after the conflict was not committed: %v", err)
			}
		})
	}
}

// TestViewSnapshot checks that a View sees one snapshot, as on SQLite.
func TestViewSnapshot(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	count := func(tx custos.Tx) int {
		n, err := tx.CountSubjects(ctx)
		if err != nil {
			t.Fatalf("CountSubjects: %v", err)
		}
		return n
	}
	err := db.View(ctx, func(tx custos.Tx) error {
		before := count(tx)
		err := db.Update(ctx, func(w custos.Tx) error {
			return w.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_a", Sealed: map[string][]byte{"email": {1}},
				CreatedAt: w.Now(), UpdatedAt: w.Now()})
		})
		if err != nil {
			return err
		}
		if after := count(tx); after != before {
			t.Errorf("CountSubjects in one View: got %d then %d, want one snapshot", before, after)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("View: %v", err)
	}
}

// TestBytewiseOrder checks that ids sort by bytes, as on SQLite, whatever
// the database's collation.
func TestBytewiseOrder(t *testing.T) {
	db := MustOpenDB(t, nil)
	ctx := t.Context()
	ids := []custos.SubjectID{"sub_a", "sub_B", "sub_é", "sub_Z", "sub_-"}
	err := db.Update(ctx, func(tx custos.Tx) error {
		for _, id := range ids {
			if err := tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte("w"), CreatedAt: tx.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(ctx, func(tx custos.Tx) error {
		keys, err := tx.ListDataKeys(ctx, "sub_C", 0)
		if err != nil {
			return err
		}
		var got []string
		for _, k := range keys {
			got = append(got, string(k.SubjectID))
		}
		if want := []string{"sub_Z", "sub_a", "sub_é"}; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("ListDataKeys after sub_C: got %v, want %v", got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFormatError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code string
		msg  string
	}{
		{name: "unique violation", err: fmt.Errorf("exec: %w", &pgconn.PgError{Code: "23505", ConstraintName: "subjects_pkey"}),
			code: custos.ECONFLICT, msg: "Subject already exists."},
		{name: "no rows", err: sql.ErrNoRows, code: custos.ENOTFOUND, msg: "Subject not found."},
		{name: "foreign key", err: &pgconn.PgError{Code: "23503"}, code: custos.EINTERNAL, msg: "Internal error."},
		{name: "other", err: errors.New("boom"), code: custos.EINTERNAL, msg: "Internal error."},
		{name: "custos error", err: custos.Errorf(custos.EINVALID, "Bad."), code: custos.EINVALID, msg: "Bad."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := postgres.FormatError(tt.err, "Subject")
			if custos.ErrorCode(err) != tt.code || custos.ErrorMessage(err) != tt.msg {
				t.Errorf("got %q %q, want %q %q", custos.ErrorCode(err), custos.ErrorMessage(err), tt.code, tt.msg)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("the cause is not kept: %v", err)
			}
		})
	}
	if postgres.FormatError(nil, "Subject") != nil {
		t.Errorf("FormatError(nil): want nil")
	}
}

// TestOpenHidesPassword needs no server: both failures happen before or
// at connecting.
func TestOpenHidesPassword(t *testing.T) {
	const pw = "Sup3r-s3cret-pw"
	tests := []struct {
		name string
		url  string
		code string
	}{
		{name: "unreachable", url: "postgres://custos:" + pw + "@127.0.0.1:1/custos?sslmode=disable&connect_timeout=5", code: custos.EINTERNAL},
		{name: "bad port", url: "postgres://custos:" + pw + "@127.0.0.1:port/custos", code: custos.EINVALID},
		{name: "bad key value", url: "host=127.0.0.1 password=" + pw + " port=nope", code: custos.EINVALID},
		{name: "bad escape", url: "postgres://custos:" + pw + "%zz@127.0.0.1/custos", code: custos.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := postgres.Open(t.Context(), tt.url, postgres.Options{QueryTimeout: 5 * time.Second})
			if custos.ErrorCode(err) != tt.code {
				t.Errorf("Open: got %v, want %s", err, tt.code)
			}
			if err != nil && (strings.Contains(err.Error(), pw) || strings.Contains(custos.ErrorMessage(err), pw)) {
				t.Errorf("Open error shows the password: %v", err)
			}
		})
	}
}

func BenchmarkInsertSubject(b *testing.B) {
	db := MustOpenDB(b, nil)
	ctx := b.Context()
	sealed := storetest.BenchSealed()
	var i int
	for b.Loop() {
		i++
		if err := insertSubject(ctx, db, sealed); err != nil {
			b.Fatalf("Update %d: %v", i, err)
		}
	}
}

// BenchmarkInsertSubjectParallel runs the same creates from GOMAXPROCS×4
// goroutines: unlike SQLite's single writer, PostgreSQL runs them at once
// up to the audit append lock.
func BenchmarkInsertSubjectParallel(b *testing.B) {
	db := MustOpenDB(b, nil)
	ctx := b.Context()
	sealed := storetest.BenchSealed()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := insertSubject(ctx, db, sealed); err != nil {
				b.Errorf("Update: %v", err)
				return
			}
		}
	})
}

// BenchmarkInsertSubjectGrouped runs the same creates from 16 goroutines
// with the audit append deferred to the end of the commit group, as core
// does it (custos.AtEnder), for several numbers of group writers. The
// immediate appends of BenchmarkInsertSubjectParallel take the append
// lock inside each member, which ends its group there: one commit each.
func BenchmarkInsertSubjectGrouped(b *testing.B) {
	sealed := storetest.BenchSealed()
	for _, writers := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			db := MustOpen(b, MustCreateSchema(b), postgres.Options{Migrate: true, Writers: writers})
			ctx := b.Context()
			b.SetParallelism(16 / runtime.GOMAXPROCS(0))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := insertSubjectAt(ctx, db, sealed, true); err != nil {
						b.Errorf("Update: %v", err)
						return
					}
				}
			})
			b.ReportMetric(float64(db.LargestGroup()), "largest-group")
		})
	}
}

// insertSubject is one subject create as core does it: data key, subject,
// two lookups and the audit event, in one transaction (the same operations
// as the SQLite benchmark).
func insertSubject(ctx context.Context, db *postgres.DB, sealed map[string][]byte) error {
	return insertSubjectAt(ctx, db, sealed, false)
}

// insertSubjectAt is insertSubject with the audit append registered with
// AtEnd when atEnd is set.
func insertSubjectAt(ctx context.Context, db *postgres.DB, sealed map[string][]byte, atEnd bool) error {
	id := custos.SubjectID(custos.NewID("sub"))
	lks := []custos.Lookup{{Field: "email", Hash: []byte("email" + string(id)), SubjectID: id},
		{Field: "phone", Hash: []byte("phone" + string(id)), SubjectID: id}}
	return db.Update(ctx, func(tx custos.Tx) error {
		return storetest.CreateCustomer(ctx, tx, id, sealed, lks, atEnd)
	})
}

// TestRedact checks the masking Open applies in case a driver error ever
// echoed the password.
func TestRedact(t *testing.T) {
	const pw = "pw-12345"
	cause := errors.New("auth failed for password " + pw)
	err := postgres.Redact(&custos.Error{Code: custos.EINTERNAL, Message: "Cannot open the database.",
		Err: fmt.Errorf("postgres: open: %w", cause)}, pw)
	if strings.Contains(err.Error(), pw) {
		t.Errorf("Redact: got %q, want the password masked", err)
	}
	if custos.ErrorCode(err) != custos.EINTERNAL || custos.ErrorMessage(err) != "Cannot open the database." {
		t.Errorf("Redact: got %q %q, want the code and message kept", custos.ErrorCode(err), custos.ErrorMessage(err))
	}
	if !errors.Is(err, cause) {
		t.Errorf("Redact: the cause is not kept")
	}
	if err := postgres.Redact(errors.New("plain "+pw), pw); strings.Contains(err.Error(), pw) {
		t.Errorf("Redact plain error: got %q", err)
	}
	if err := postgres.Redact(cause, ""); err != cause {
		t.Errorf("Redact without a password: got %v, want the error unchanged", err)
	}
}

// TestAnalyze: Analyze gives every table of the store's schema planner
// statistics (last_analyze), and leaves another schema of the same
// database alone.
func TestAnalyze(t *testing.T) {
	u := MustCreateSchema(t)
	other := MustCreateSchema(t)
	db := MustOpen(t, u, postgres.Options{Migrate: true})
	ctx := t.Context()

	admin, err := sql.Open("pgx", other)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.ExecContext(ctx, `CREATE TABLE bystander (id int); INSERT INTO bystander SELECT generate_series(1, 100)`); err != nil {
		t.Fatal(err)
	}
	schemaOf := func(url string) string {
		c, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var s string
		if err := c.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	mine, theirs := schemaOf(u), schemaOf(other)
	analysed := func(schema string) (tables, done int) {
		t.Helper()
		if err := admin.QueryRowContext(ctx, `SELECT count(*), count(last_analyze) FROM pg_stat_user_tables WHERE schemaname = $1`,
			schema).Scan(&tables, &done); err != nil {
			t.Fatal(err)
		}
		return tables, done
	}
	if tables, done := analysed(mine); tables < 10 || done != 0 {
		t.Fatalf("before Analyze: %d of %d tables analysed, want 0 of at least 10", done, tables)
	}
	n, err := db.Analyze(ctx)
	if err != nil {
		t.Fatalf("Analyze: %v", err)
	}
	tables, done := analysed(mine)
	if n != tables || done != tables {
		t.Errorf("after Analyze: it reports %d tables, %d of the schema's %d have statistics; want all", n, done, tables)
	}
	if _, done := analysed(theirs); done != 0 {
		t.Errorf("Analyze analysed %d tables of another schema", done)
	}
}
