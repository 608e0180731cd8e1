package postgres

import (
	"context"
	"time"

	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
)

// stmtQuerier lets the statements shared with the other store
// (sqlutil.Stmts) run in this transaction.
type stmtQuerier struct{ tx *Tx }

var _ sqlutil.Querier = stmtQuerier{}

func (q stmtQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return q.tx.affected(ctx, sqlutil.Dollar(query), args...)
}

func (q stmtQuerier) Query(ctx context.Context, query string, args []any, fn func(sqlutil.Scanner) error) error {
	return q.tx.query(ctx, sqlutil.Dollar(query), planEachTime(args), func(s scanner) error { return fn(s) })
}

// planEachTime turns a leading sqlutil.PlanEachTime into pgx's exec mode
// for an unnamed statement, which PostgreSQL plans for the parameters it
// comes with, instead of the cached prepared statement whose generic plan
// was made once.
func planEachTime(args []any) []any {
	if len(args) > 0 {
		if _, ok := args[0].(sqlutil.PlanEachTime); ok {
			return append([]any{pgx.QueryExecModeExec}, args[1:]...)
		}
	}
	return args
}

func (q stmtQuerier) QueryRow(ctx context.Context, query string, args []any, fn func(sqlutil.Scanner) error) error {
	return q.tx.queryRow(ctx, sqlutil.Dollar(query), args, func(s scanner) error { return fn(s) })
}

func (q stmtQuerier) Error(err error, entity string) error { return formatError(err, entity) }

func (q stmtQuerier) Insert(ctx context.Context, entity, query string, args ...any) error {
	return q.tx.insert(ctx, entity, sqlutil.Dollar(query), args...)
}

func (q stmtQuerier) Bool(b bool) any { return b }

func (q stmtQuerier) BoolColumn(col string) string { return col + "::int" }

func (q stmtQuerier) Now() time.Time { return q.tx.now }

func (q stmtQuerier) Greatest() string { return "GREATEST" }

func (q stmtQuerier) ArrayParams() bool { return true }

func (q stmtQuerier) InsertMany() string { return "INSERT" }
