package postgres_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/internal/sqlutil"
	"custos/internal/sqlutil/sqlutiltest"
	"custos/postgres"
)

// TestImportRowsCheckUnanalysed: an import batch's check for lines already
// handled reads about the lines asked for, close together or far apart,
// not every line recorded for the job, when import_rows has grown since
// it was last analysed — as during a bulk load, before autovacuum comes
// round. Planned without the lines'
// range, PostgreSQL took the job alone as the index condition and filtered
// every row of the job, a batch's cost growing with the import
// (BENCHMARKS.md, forty-fourth session: 330 ms a batch 370,000 lines in).
func TestImportRowsCheckUnanalysed(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	ctx := t.Context()
	pool := db.Pool()
	// Never analysed, as a table being loaded: autovacuum must not come
	// round during the test.
	if _, err := pool.ExecContext(ctx, `ALTER TABLE import_rows SET (autovacuum_enabled = false)`); err != nil {
		t.Fatal(err)
	}
	const lines = 20000
	if _, err := pool.ExecContext(ctx, `INSERT INTO import_rows (job, line, status, subject_id)
		SELECT 'job-1', g, 'stored', 'sub_x' FROM generate_series(1, $1) g`, lines); err != nil {
		t.Fatal(err)
	}

	consecutive, scattered := make([]int, 500), make([]int, 500)
	for i := range consecutive {
		consecutive[i] = lines - len(consecutive) + 1 + i
		scattered[i] = 1 + i*lines/len(scattered)
	}
	for _, asked := range [][]int{consecutive, scattered} {
		q := sqlutiltest.Capture{Arrays: true}
		if _, err := (sqlutil.Stmts{Q: &q}).GetImportRows(ctx, "job-1", asked); err != nil {
			t.Fatal(err)
		}
		read, removed, plan := explainCaptured(t, pool, &q)
		if read["import_rows"] > 2*float64(len(asked)) || removed > 0 {
			t.Errorf("the check of %d lines from %d to %d read %.0f rows and filtered out %.0f of a job of %d lines; want about the lines asked for\n%s",
				len(asked), asked[0], asked[len(asked)-1], read["import_rows"], removed, lines, plan)
		}
	}
}

// TestScanSubjectsEventClock: ScanSubjects with a lifecycle event's clock
// reads the customers that have the event, not every customer. The job
// leader runs it every minute for retained erasures that are due
// (core.FinishRetainedErasures); through every customer in id order, a
// store of a million customers was scanned whole each minute
// (BENCHMARKS.md, forty-fourth session).
func TestScanSubjectsEventClock(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	ctx := t.Context()
	pool := db.Pool()
	const customers = 20000
	if _, err := pool.ExecContext(ctx, `INSERT INTO subjects (id, sealed, created_at, updated_at)
		SELECT 'sub_' || lpad(g::text, 8, '0'), '\x01', 0, 0 FROM generate_series(1, $1) g`, customers); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.ExecContext(ctx, `INSERT INTO subject_lifecycle (subject_id, event, at)
		VALUES ('sub_00000007', 'deletion_retained_until', 1), ('sub_00012345', 'deletion_retained_until', 2),
			('sub_00000009', 'account_closure', 1)`); err != nil {
		t.Fatal(err)
	}
	for _, analysed := range []bool{false, true} {
		if analysed {
			if _, err := pool.ExecContext(ctx, `ANALYZE`); err != nil {
				t.Fatal(err)
			}
		}
		q := sqlutiltest.Capture{Arrays: true}
		if _, err := (sqlutil.Stmts{Q: &q}).ScanSubjects(ctx, custos.SubjectScan{Clock: "deletion_retained_until",
			Before: time.Now(), Limit: 200}); err != nil {
			t.Fatal(err)
		}
		read, _, plan := explainCaptured(t, pool, &q)
		if read["subjects"] > 2 {
			t.Errorf("analysed %v: the scan for an event two of %d customers have read %.0f customers' rows; want 2\n%s",
				analysed, customers, read["subjects"], plan)
		}
	}
}

// TestReadBatchPlans: a statement of batched reads or lookups reads the
// rows of the customers it asks for, planned once for all its executions
// (generic, as PostgreSQL keeps it for a statement whose asks go as a list
// of parameters) and on tables never analysed, as right after a load
// (readbatch.go).
func TestReadBatchPlans(t *testing.T) {
	db := MustOpen(t, MustCreateSchema(t), postgres.Options{Migrate: true})
	ctx := t.Context()
	pool := db.Pool()
	for _, table := range []string{"subjects", "data_keys", "consents", "lookups"} {
		if _, err := pool.ExecContext(ctx, `ALTER TABLE `+table+` SET (autovacuum_enabled = false)`); err != nil {
			t.Fatal(err)
		}
	}
	const customers = 20000
	for _, q := range []string{
		`INSERT INTO subjects (id, sealed, created_at, updated_at) SELECT 'sub_' || lpad(g::text, 8, '0'), '\x01', 0, 0 FROM generate_series(1, $1) g`,
		`INSERT INTO data_keys (subject_id, version, kek_version, wrapped, created_at) SELECT 'sub_' || lpad(g::text, 8, '0'), 1, 1, '\x02', 0 FROM generate_series(1, $1) g`,
		`INSERT INTO consents (id, subject_id, purpose, scope, action, notice_version, at, channel, initiated_by, by_guardian, actor_id)
			SELECT 'con_' || g, 'sub_' || lpad((g % $1 + 1)::text, 8, '0'), 'marketing', '', 'granted', 1, 0, 'app', 'customer', 0, 'prn_app' FROM generate_series(1, 2 * $1) g`,
		`INSERT INTO lookups (field, hash, subject_id) SELECT 'mobile', decode(md5(g::text), 'hex'), 'sub_' || lpad(g::text, 8, '0') FROM generate_series(1, $1) g`,
	} {
		if _, err := pool.ExecContext(ctx, q, customers); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	const size, asks = 3, 8 // a list of 8
	for _, analysed := range []bool{false, true} {
		if analysed {
			if _, err := conn.ExecContext(ctx, `ANALYZE`); err != nil {
				t.Fatal(err)
			}
		}
		for _, lookups := range []bool{false, true} {
			explainReadBatch(t, conn, analysed, lookups, size, asks, customers)
		}
	}
}

// explainReadBatch runs a generic plan of the batched statement for asks
// customers of customers (TestReadBatchPlans' rows) under EXPLAIN ANALYZE
// on conn, and checks the rows it read.
func explainReadBatch(t *testing.T, conn *sql.Conn, analysed, lookups bool, size, asks, customers int) {
	t.Helper()
	ctx := t.Context()
	query, params := postgres.ReadBatchSQL(lookups, size)
	name := map[bool]string{false: "by_id", true: "by_key"}[lookups] + map[bool]string{false: "", true: "_analysed"}[analysed]
	if _, err := conn.ExecContext(ctx, `PREPARE `+name+` AS `+query); err != nil {
		t.Fatalf("PREPARE %s: %v", query, err)
	}
	// EXECUTE takes its parameters as literals.
	var args []string
	for a := range asks {
		g := 1 + a*customers/asks
		if lookups {
			args = append(args, `'mobile'`, fmt.Sprintf(`decode(md5('%d'), 'hex')`, g))
		} else {
			args = append(args, fmt.Sprintf(`'sub_%08d'`, g))
		}
	}
	if len(args) != asks*params {
		t.Fatalf("%d parameters for %d asks of %d", len(args), asks, params)
	}
	var out []byte
	if err := conn.QueryRowContext(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE `+name+`(`+strings.Join(args, ", ")+`)`).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN EXECUTE: %v", err)
	}
	read, _, plan := walkPlan(t, out)
	for _, table := range []string{"subjects", "data_keys", "consents", "lookups"} {
		if !lookups && table == "lookups" {
			continue
		}
		// Each customer asked for has one row in each table but two
		// consents.
		if want := float64(2 * asks); read[table] > 2*want {
			t.Errorf("%s: a statement for %d customers read %.0f rows of %s; want about %.0f\n%s", name, asks, read[table], table, want, plan)
		}
	}
	if read["subjects"] < float64(asks) {
		t.Errorf("%s: read %.0f customers, asked for %d\n%s", name, read["subjects"], asks, plan)
	}
}

// explainCaptured runs EXPLAIN ANALYZE of the query q captured, and
// returns the rows its scans of each table looked at, the rows its
// filters removed, and the plan.
func explainCaptured(t *testing.T, pool *sql.DB, q *sqlutiltest.Capture) (map[string]float64, float64, []byte) {
	t.Helper()
	query, args := q.Statement()
	var out []byte
	if err := pool.QueryRowContext(t.Context(), `EXPLAIN (ANALYZE, FORMAT JSON) `+sqlutil.Dollar(query), args...).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
	}
	return walkPlan(t, out)
}

// walkPlan reads EXPLAIN (ANALYZE, FORMAT JSON)'s out: the rows its scans
// of each table looked at, the rows its filters removed, and out.
func walkPlan(t *testing.T, out []byte) (map[string]float64, float64, []byte) {
	t.Helper()
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN's JSON: %v\n%s", err, out)
	}
	read := map[string]float64{}
	var removed float64
	var walk func(n planNode)
	walk = func(n planNode) {
		if strings.HasSuffix(n.Type, "Scan") && n.Relation != "" {
			// The rows a scan of a table looked at: those it returned and
			// those its conditions removed; a loop's figures are its
			// average, so times the loops.
			read[n.Relation] += (n.ActualRows + n.RemovedByFilter + n.RemovedByRecheck) * max(n.Loops, 1)
		}
		removed += n.RemovedByFilter + n.RemovedByRecheck
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	return read, removed, out
}

// planNode is the part of a node of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	Type             string     `json:"Node Type"`
	Relation         string     `json:"Relation Name"`
	Loops            float64    `json:"Actual Loops"`
	ActualRows       float64    `json:"Actual Rows"`
	RemovedByFilter  float64    `json:"Rows Removed by Filter"`
	RemovedByRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans            []planNode `json:"Plans"`
}
