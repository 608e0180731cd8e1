package postgres_test

import (
	"context"
	"encoding/json"
	"testing"

	"custos/internal/sqlutil"
	"custos/postgres"
)

// captureQuerier records the query GetImportRows sends, as PostgreSQL's
// querier would get it (lists as arrays), and runs nothing.
type captureQuerier struct {
	sqlutil.Querier // nil: only Query and ArrayParams are called
	query           string
	args            []any
}

func (q *captureQuerier) ArrayParams() bool { return true }

func (q *captureQuerier) Query(_ context.Context, query string, args []any, _ func(sqlutil.Scanner) error) error {
	q.query, q.args = query, args
	return nil
}

// TestImportRowsCheckUnanalysed: an import batch's check for lines already
// handled reads about the lines asked for, not every line recorded for the
// job, when import_rows has grown since it was last analysed — as during a
// bulk load, before autovacuum comes round. Planned without the lines'
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

	var q captureQuerier
	asked := make([]int, 500)
	for i := range asked {
		asked[i] = lines - len(asked) + 1 + i
	}
	if _, err := (sqlutil.Stmts{Q: &q}).GetImportRows(ctx, "job-1", asked); err != nil {
		t.Fatal(err)
	}
	args := q.args
	if len(args) > 0 {
		if _, ok := args[0].(sqlutil.PlanEachTime); ok {
			args = args[1:] // planned for its parameters, as EXPLAIN plans
		}
	}
	var out []byte
	if err := pool.QueryRowContext(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+sqlutil.Dollar(q.query), args...).Scan(&out); err != nil {
		t.Fatalf("EXPLAIN %s: %v", q.query, err)
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		t.Fatalf("EXPLAIN's JSON: %v\n%s", err, out)
	}
	var read, removed float64
	var walk func(n planNode)
	walk = func(n planNode) {
		if n.Type == "Index Scan" || n.Type == "Bitmap Index Scan" || n.Type == "Index Only Scan" || n.Type == "Seq Scan" {
			read += n.ActualRows
		}
		removed += n.RemovedByFilter + n.RemovedByRecheck
		for _, c := range n.Plans {
			walk(c)
		}
	}
	walk(plans[0].Plan)
	if read > 2*float64(len(asked)) || removed > 0 {
		t.Errorf("the check of %d lines read %.0f rows and filtered out %.0f of a job of %d lines; want about the lines asked for\n%s",
			len(asked), read, removed, lines, out)
	}
}

// planNode is the part of a node of EXPLAIN (FORMAT JSON) the test reads.
type planNode struct {
	Type             string     `json:"Node Type"`
	ActualRows       float64    `json:"Actual Rows"`
	RemovedByFilter  float64    `json:"Rows Removed by Filter"`
	RemovedByRecheck float64    `json:"Rows Removed by Index Recheck"`
	Plans            []planNode `json:"Plans"`
}
