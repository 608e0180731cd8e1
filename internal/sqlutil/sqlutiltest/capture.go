// Package sqlutiltest helps the stores' tests look at the statements the
// shared statement code (sqlutil.Stmts) sends.
package sqlutiltest

import (
	"context"

	"custos/internal/sqlutil"
)

// Capture is a sqlutil.Querier that records the last query sent through
// Query, and runs nothing: a test then asks its store's planner about it
// (EXPLAIN). Arrays says whether lists go as one array (PostgreSQL) or
// as IN lists (SQLite). Only Query and ArrayParams may be called.
type Capture struct {
	sqlutil.Querier // nil
	Arrays          bool
	Text            string
	Args            []any
}

func (q *Capture) ArrayParams() bool { return q.Arrays }

func (q *Capture) Query(_ context.Context, query string, args []any, _ func(sqlutil.Scanner) error) error {
	q.Text, q.Args = query, args
	return nil
}

// Statement is the captured query and its arguments, without a leading
// sqlutil.PlanEachTime (EXPLAIN plans for the arguments it is given).
func (q *Capture) Statement() (string, []any) {
	args := q.Args
	if len(args) > 0 {
		if _, ok := args[0].(sqlutil.PlanEachTime); ok {
			args = args[1:]
		}
	}
	return q.Text, args
}
