package sqlite

import (
	"context"
	"time"

	"custos/internal/sqlutil"
)

// stmtQuerier lets the statements shared with the other store
// (sqlutil.Stmts) run in this transaction.
type stmtQuerier struct{ tx *Tx }

var _ sqlutil.Querier = stmtQuerier{}

func (q stmtQuerier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	return q.tx.affected(ctx, query, args...)
}

func (q stmtQuerier) Query(ctx context.Context, query string, args []any, fn func(sqlutil.Scanner) error) error {
	return q.tx.query(ctx, query, args, func(s scanner) error { return fn(s) })
}

func (q stmtQuerier) QueryRow(ctx context.Context, query string, args []any, fn func(sqlutil.Scanner) error) error {
	return q.tx.queryRow(ctx, query, args, func(s scanner) error { return fn(s) })
}

func (q stmtQuerier) Error(err error, entity string) error { return formatError(err, entity) }

func (q stmtQuerier) Insert(ctx context.Context, entity, query string, args ...any) error {
	_, err := q.tx.exec(ctx, query, args...)
	return formatError(err, entity)
}

func (q stmtQuerier) Bool(b bool) any { return boolInt(b) }

func (q stmtQuerier) BoolColumn(col string) string { return col }

func (q stmtQuerier) Now() time.Time { return q.tx.now }

func (q stmtQuerier) Greatest() string { return "MAX" }

func (q stmtQuerier) ArrayParams() bool { return false }

func (q stmtQuerier) InsertMany() string { return "INSERT OR FAIL" }
