package core_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/internal/sqlutil"
	"custos/keys"
)

// BenchmarkRetentionSweep sweeps a SQLite store seeded with
// CUSTOS_BENCH_RETENTION_RECORDS records (default 100,000; the figure in
// docs/retention.md is for 1,000,000) spread over customers of 1,000
// records each (CUSTOS_BENCH_RETENTION_PER_SUBJECT), half orders (anonymised) and half browsing events
// (deleted), all expired under the default rules; the customers, left
// with no activity, are then crypto-shredded. Seeding uses bulk inserts
// outside the timer. Run with -benchtime=1x.
func BenchmarkRetentionSweep(b *testing.B) {
	n := 100_000
	if v := os.Getenv("CUSTOS_BENCH_RETENTION_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("CUSTOS_BENCH_RETENTION_RECORDS=%q: want an integer ≥ 1000", v)
		}
	}
	for range b.N {
		b.StopTimer()
		e := newRetEnvWith(b, "")
		start := time.Now()
		seedBulk(b, e, n)
		b.Logf("seeded %d records in %v", n, time.Since(start).Round(time.Millisecond))
		e.at(years(4))
		b.StartTimer()
		t0 := time.Now()
		rep, err := e.svc.SweepRetention(e.admin, core.RetentionOptions{BatchSize: benchBatch()})
		elapsed := time.Since(t0)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		swept := 0
		for _, r := range rep.Rules {
			if r.Target == custos.TargetRecords {
				swept += r.Deleted + r.Anonymised
			}
		}
		if swept != n {
			b.Fatalf("swept %d records, want %d: %+v", swept, n, rep.Rules)
		}
		b.ReportMetric(float64(n)/elapsed.Seconds(), "records/s")
		b.Logf("swept %d records (and %d customers) in %v: %.0f records/s", n, n/benchPerSubject(), elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds())
	}
}

// seedBulk writes n records for n/1000 customers straight into the
// database file with multi-row INSERTs in one transaction: each customer
// has a real wrapped data key and each record a real sealed document, so
// the sweep decrypts and destroys exactly what custos would have stored.
func seedBulk(tb testing.TB, e *retEnv, n int) {
	tb.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", e.db.Path()+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	occurred := e.start.Add(-time.Hour)
	now := sqlutil.Micros(e.start)
	prov := custos.Provenance{Collector: "bench", Channel: "pos", Source: "customer", Time: e.start}
	perSubject := benchPerSubject()
	const rowsPerStmt = 500
	var (
		q    strings.Builder
		args []any
	)
	flush := func() {
		if len(args) == 0 {
			return
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			tb.Fatal(err)
		}
		q.Reset()
		args = args[:0]
	}
	for s := 0; s*perSubject < n; s++ {
		sub := custos.SubjectID(custos.NewID("sub"))
		dek, err := keys.NewDEK(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		kv, wrapped, err := e.ring.Wrap(dek)
		if err != nil {
			tb.Fatal(err)
		}
		aead, err := keys.NewAEAD(dek)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO data_keys (subject_id, version, kek_version, wrapped, created_at) VALUES (?, 1, ?, ?, ?)`,
			string(sub), kv, wrapped, now); err != nil {
			tb.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES (?, ?, ?, ?)`,
			string(sub), sqlutil.EncodeSealed(map[string][]byte{}), now, now); err != nil {
			tb.Fatal(err)
		}
		for i := 0; i < perSubject && s*perSubject+i < n; i++ {
			id := custos.NewID("rec")
			typ, cat := "order", custos.CatTransaction
			data := map[string]any{"order_no": fmt.Sprintf("SO%010d", i), "amount": "128.50", "currency": "CNY", "channel": "app"}
			if i%2 == 1 {
				typ, cat = "browsing", custos.CatBehaviour
				data = map[string]any{"sku": "SKU-1", "duration_s": 30}
			}
			doc, err := json.Marshal(map[string]any{"data": data, "provenance": prov})
			if err != nil {
				tb.Fatal(err)
			}
			ct, err := aead.Seal(doc, keys.AAD("records", typ, string(sub), id, "v1"), rand.Reader)
			if err != nil {
				tb.Fatal(err)
			}
			if len(args) == 0 {
				q.WriteString(`INSERT INTO records (id, subject_id, type, category, occurred_at, created_at, sealed) VALUES `)
			} else {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?, ?)")
			args = append(args, id, string(sub), typ, cat, sqlutil.Micros(occurred), now, ct)
			if len(args) >= rowsPerStmt*7 {
				flush()
			}
		}
		keys.Zero(dek)
	}
	flush()
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// benchBatch is CUSTOS_BENCH_RETENTION_BATCH, or 1000.
func benchBatch() int {
	if n, err := strconv.Atoi(os.Getenv("CUSTOS_BENCH_RETENTION_BATCH")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// benchPerSubject is CUSTOS_BENCH_RETENTION_PER_SUBJECT, or 1000: records
// per customer (each customer's records get one audit event per batch).
func benchPerSubject() int {
	if n, err := strconv.Atoi(os.Getenv("CUSTOS_BENCH_RETENTION_PER_SUBJECT")); err == nil && n > 0 {
		return n
	}
	return 1000
}
