package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// Tx is one store transaction, begun by DB.Update or DB.View. Each
// statement runs under its own deadline of the query timeout.
type Tx struct {
	// Stmts holds the methods whose SQL both stores share.
	sqlutil.Stmts

	tx      *sql.Tx
	now     time.Time
	timeout time.Duration
	// shared is set when the transaction carries a commit group: its
	// statements ignore the caller's cancellation, because SQLite answers
	// an interrupted write inside a transaction by rolling back the whole
	// transaction — every other request of the group with it.
	shared bool
	// head is the audit chain head as this commit group's transaction
	// sees it, kept so that only the group's first append reads it from
	// the table. It is set only on a group's transaction (never on View
	// or migration transactions) and lives no longer than that
	// transaction: nothing is cached across transactions, so a head
	// written by another process or a rolled-back group is never used.
	head *auditHead
	// cache is the pool's prepared statements (nil: run every statement
	// as text, as during migrations); stmts holds those bound to this
	// transaction.
	cache *stmtCache
	stmts map[string]*sql.Stmt
}

// auditHead is the last audit event's seq and hash, once known.
type auditHead struct {
	known bool
	seq   int64
	hash  []byte
}

// stmtCtx bounds one statement by the query timeout.
func (tx *Tx) stmtCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if tx.shared {
		ctx = context.WithoutCancel(ctx)
	}
	return context.WithTimeout(ctx, tx.timeout)
}

var _ custos.Tx = (*Tx)(nil)

// Now returns the transaction's fixed time: the store clock read once at
// the start of the transaction, in UTC, truncated to the microsecond.
func (tx *Tx) Now() time.Time { return tx.now }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// exec runs one statement under the query timeout.
func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	ctx, cancel := tx.stmtCtx(ctx)
	defer cancel()
	if s := tx.txStmt(ctx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.tx.ExecContext(ctx, query, args...)
}

// affected runs one statement and returns the number of rows it changed.
func (tx *Tx) affected(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := tx.exec(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// queryRow runs a query for at most one row and calls fn to scan it; no
// row makes Scan return sql.ErrNoRows.
func (tx *Tx) queryRow(ctx context.Context, query string, args []any, fn func(s scanner) error) error {
	ctx, cancel := tx.stmtCtx(ctx)
	defer cancel()
	if s := tx.txStmt(ctx, query); s != nil {
		return fn(s.QueryRowContext(ctx, args...))
	}
	return fn(tx.tx.QueryRowContext(ctx, query, args...))
}

// scanRow runs a query for at most one row and scans it into dest.
func (tx *Tx) scanRow(ctx context.Context, query string, args []any, dest ...any) error {
	return tx.queryRow(ctx, query, args, func(s scanner) error { return s.Scan(dest...) })
}

// query runs a query and calls fn for each row.
func (tx *Tx) query(ctx context.Context, query string, args []any, fn func(s scanner) error) (err error) {
	ctx, cancel := tx.stmtCtx(ctx)
	defer cancel()
	var rows *sql.Rows
	if s := tx.txStmt(ctx, query); s != nil {
		rows, err = s.QueryContext(ctx, args...)
	} else {
		rows, err = tx.tx.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rows.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// encodeList stores a string list as a JSON array; nil stays "null" so that
// nil and empty lists both round-trip exactly.
func encodeList(l []string) (string, error) {
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeList(s string) ([]string, error) {
	var l []string
	err := json.Unmarshal([]byte(s), &l)
	return l, err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
