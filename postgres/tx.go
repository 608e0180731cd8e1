package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
)

// Tx is one store transaction, begun by DB.Update or DB.View. Each
// statement runs under its own deadline of the query timeout.
type Tx struct {
	// Stmts holds the methods whose SQL both stores share.
	sqlutil.Stmts

	tx      sqlConn
	now     time.Time
	timeout time.Duration
	write   bool // begun by Update: takes the append lock
	// shared is set when the transaction carries a commit group: its
	// statements ignore the caller's cancellation, because pgx answers a
	// cancelled statement by closing the connection, which would abort
	// every other request of the group with it.
	shared bool
	// locked records that lockAppend ran in this transaction. The group
	// writer ends a group after a member that took the lock itself; it is
	// a hint, never a reason to skip taking the lock.
	locked bool
	// pending, in a commit group, is the transaction control (BEGIN,
	// SAVEPOINT) that must run before the current member's first
	// statement; sent then, in the same round trip as nothing else, and
	// cleared. begun records that the group's BEGIN was sent.
	pending string
	begun   bool
	// async, at a group's end, says it commits with synchronous_commit
	// off (Options.ReadAuditCommitted; runGroup says when).
	async bool
	// broken is set when pending failed: the transaction can no longer
	// be trusted (an earlier member may have left it aborted), and the
	// group fails as a whole.
	broken error
	// ends is the work deferred by AtEnd, run by runEnds before commit.
	ends []func(custos.Tx) error
	// end is set while runEnds runs: the chain head as this transaction
	// sees it, and the audit events inserted at the end, written by one
	// statement.
	end *endPhase
	// reads holds, in a read-only transaction or a Glance, the data keys
	// and consent histories that readSubject read with their subjects.
	reads sqlutil.SubjectReads
	// glance is set in a Glance, which runs outside a transaction and
	// sends one SELECT: sent records that it went, refused that fn asked
	// for more (errNeedsTransaction) and must run again in View.
	glance, sent, refused bool
	// byID and byKey, in a Glance, send a read by id or a lookup with
	// other Glances' (readbatch.go).
	byID, byKey *readBatcher
	// rc is the node's read cache, and proof, in a Glance, where the
	// read notes the cache generation it answered from (readcache.go); kf
	// loads the keys of a customer a read by id put in the cache
	// (keyfill.go).
	rc    *readCache
	kf    *keyFiller
	proof *custos.ReadProof
	// changed records, in a write transaction, that a statement may have
	// changed a row a read cache holds: the transaction moves the cache
	// generation on before it commits. gens, in a commit group, are the
	// generations its members' reads rest on, checked at its end.
	changed bool
	gens    []int64
	// found is the subject FindLookup read in a read-only transaction,
	// handed to the GetSubject that follows.
	found *custos.StoredSubject
	// prefetched holds the subjects PrefetchSubjects read, each handed to
	// the first GetSubject of it (nil: not found).
	prefetched map[custos.SubjectID]*custos.StoredSubject
	// deferring is set in a commit group's first run: a statement whose
	// only answer is a check
	// (InsertNewSubject) is then queued in deferred, with the member's
	// transaction control, instead of sent, and the queue goes out in one
	// round trip before the next statement sent or the group's end
	// (flushDeferred). If a queued statement fails or its check does, the
	// group runs again without deferring, where the member sees the
	// failure itself (errDeferred).
	deferring bool
	deferred  []deferredStmt
	// locks counts the statements that took the append lock
	// (DB.appendLocks); nil outside a write transaction.
	locks *atomic.Int64
	// flushed counts the deferred statements sent (DB.deferredSent).
	flushed *atomic.Int64
	// memberSent records that the current member of a commit group sent
	// something, its own statements or the deferred queue.
	memberSent bool
	// oneTrip is set while a group's end work runs before the lock, for
	// an end in one round trip (oneTripEnd): every statement is then
	// refused with errOneTrip (stmtCtx and batch, which every send goes
	// through, and deferQuery), and the end goes the usual way.
	oneTrip bool
	// checkpointEvery is core's checkpoint interval, as it noted it
	// (NoteCheckpointEvery).
	checkpointEvery int64
}

// deferredStmt is a statement queued by a commit group member, with the
// transaction control that goes before it, and the check of its one row.
// strict is the same statement failing on the server wherever check
// would fail, for a batch that commits before its rows are read
// (oneTripEnd); "": it has none, and such a group ends the usual way.
type deferredStmt struct {
	controls []string
	query    string
	strict   string
	args     []any
	check    func(row pgx.Row) error
}

// errDeferred wraps the failure of a deferred statement or of its check:
// the group runs again without deferring (commitGroup).
type errDeferred struct{ err error }

func (e *errDeferred) Error() string { return "deferred statement: " + e.err.Error() }
func (e *errDeferred) Unwrap() error { return e.err }

// deferQuery queues query, to be sent with the member's pending
// transaction control at the next flush, and reports whether it did: only
// in a commit group that defers, for a statement pgx can batch. strict is
// deferredStmt's.
func (tx *Tx) deferQuery(query, strict string, args []any, check func(row pgx.Row) error) bool {
	if !tx.deferring || tx.oneTrip {
		return false
	}
	if len(args) > 0 {
		if _, ok := args[0].(pgx.QueryExecMode); ok {
			return false
		}
	}
	tx.note(query)
	d := deferredStmt{query: query, strict: strict, args: args, check: check}
	if tx.pending != "" {
		d.controls = strings.Split(tx.pending, "; ")
		tx.pending, tx.begun = "", true
	}
	tx.deferred = append(tx.deferred, d)
	return true
}

// flushDeferred sends the deferred statements, each after its
// transaction control, in one pgx batch, and checks their rows. A failure
// breaks the transaction (tx.broken) as an errDeferred.
func (tx *Tx) flushDeferred(ctx context.Context) error {
	return tx.sendDeferred(ctx, nil, nil)
}

// sendDeferred is flushDeferred, with the statements tail (without
// parameters) after the deferred ones in the same batch: read gets their
// results, and its error is returned as it is.
func (tx *Tx) sendDeferred(ctx context.Context, tail []string, read func(br pgx.BatchResults) error) error {
	if len(tx.deferred) == 0 && len(tail) == 0 {
		return nil
	}
	queued := tx.deferred
	tx.deferred, tx.memberSent = nil, true
	ctx, cancel := tx.timed(ctx)
	defer cancel()
	var derr error // a deferred statement's or check's failure
	err := tx.tx.(*sql.Conn).Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		queueDeferred(b, queued, false)
		for _, q := range tail {
			b.Queue(q)
		}
		br := c.SendBatch(ctx, b)
		if derr, _ = readDeferred(br, queued); derr != nil {
			return errors.Join(derr, br.Close())
		}
		if read != nil {
			if err := read(br); err != nil {
				return errors.Join(err, br.Close())
			}
		}
		return br.Close()
	})
	if derr != nil || (err != nil && len(tail) == 0) {
		tx.broken = &errDeferred{err}
		return tx.broken
	}
	if err != nil {
		return err
	}
	if tx.flushed != nil {
		tx.flushed.Add(int64(len(queued)))
	}
	return nil
}

// queueDeferred puts the statements queued in b, each after its
// transaction control; with strict, in their strict forms.
func queueDeferred(b *pgx.Batch, queued []deferredStmt, strict bool) {
	for _, d := range queued {
		for _, q := range d.controls {
			b.Queue(q)
		}
		query := d.query
		if strict {
			query = d.strict
		}
		b.Queue(query, d.args...)
	}
}

// readDeferred reads the results of queueDeferred's statements from br
// and checks their rows. It returns the first failure, and raw: that
// failure as PostgreSQL or the driver gave it, nil where a row read
// whole failed its check.
func readDeferred(br pgx.BatchResults, queued []deferredStmt) (err, raw error) {
	for _, d := range queued {
		for range d.controls {
			if _, err := br.Exec(); err != nil {
				return err, err
			}
		}
		row := &rowErr{Row: br.QueryRow()}
		if err := d.check(row); err != nil {
			return err, row.err
		}
	}
	return nil, nil
}

// rowErr is a row that keeps the error its Scan returned.
type rowErr struct {
	pgx.Row
	err error
}

func (r *rowErr) Scan(dest ...any) error {
	r.err = r.Row.Scan(dest...)
	return r.err
}

// sqlConn is where a Tx runs its statements: a *sql.Tx, or the *sql.Conn
// of a commit group, whose transaction the group writer begins and ends.
type sqlConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ custos.Tx      = (*Tx)(nil)
	_ custos.AtEnder = (*Tx)(nil)
	_ sqlConn        = (*sql.Tx)(nil)
	_ sqlConn        = (*sql.Conn)(nil)
	_ sqlConn        = (*sql.DB)(nil)
)

// stmtCtx bounds one statement by the query timeout, after sending the
// pending transaction control. In a Glance it lets the first statement
// through if it is a SELECT, and refuses any other.
func (tx *Tx) stmtCtx(ctx context.Context, query string) (context.Context, context.CancelFunc, error) {
	if tx.oneTrip {
		return nil, nil, errOneTrip
	}
	if tx.glance {
		if tx.sent || !strings.HasPrefix(query, "SELECT ") {
			tx.refused = true
			return nil, nil, errNeedsTransaction
		}
		tx.sent = true
	}
	tx.note(query)
	if err := tx.flushDeferred(ctx); err != nil {
		return nil, nil, err
	}
	tx.memberSent = true
	ctx, cancel := tx.timed(ctx)
	if q := tx.pending; q != "" {
		// No parameters: pgx sends it by the simple protocol, all its
		// statements in one round trip.
		tx.pending, tx.begun = "", true
		if _, err := tx.tx.ExecContext(ctx, q); err != nil {
			cancel()
			tx.broken = fmt.Errorf("transaction control: %w", err)
			return nil, nil, tx.broken
		}
	}
	return ctx, cancel, nil
}

// timed is ctx for one statement: bounded by the query timeout and, in a
// commit group (shared), not cancelled with the member's request: a
// cancelled statement would abort the transaction the other members share.
func (tx *Tx) timed(ctx context.Context) (context.Context, context.CancelFunc) {
	if tx.shared {
		ctx = context.WithoutCancel(ctx)
	}
	return context.WithTimeout(ctx, tx.timeout)
}

// Now returns the transaction's fixed time: the store clock read once at
// the start of the transaction, in UTC, truncated to the microsecond.
func (tx *Tx) Now() time.Time { return tx.now }

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// pipelines reports whether a statement with args goes out in the same
// round trip as the pending transaction control (withPending): in a
// commit group, a member's first statement, unless it asks for an exec
// mode of its own (planEachTime), which a pgx batch does not take.
func (tx *Tx) pipelines(args []any) bool {
	if tx.pending == "" {
		return false
	}
	if len(args) > 0 {
		if _, ok := args[0].(pgx.QueryExecMode); ok {
			return false
		}
	}
	return tx.batches()
}

// withPending sends the pending transaction control (BEGIN or the
// member's SAVEPOINT, each a statement of its own) and query in one pgx
// batch, one round trip where it took two, and hands fn the results from
// query's on. A failed control statement breaks the transaction, as in
// stmtCtx, and query's result is not read.
func (tx *Tx) withPending(ctx context.Context, query string, args []any, fn func(br pgx.BatchResults) error) error {
	return tx.batch(ctx, []batchQuery{{query, args}}, fn)
}

// batchQuery is one statement of a batch, with its parameters.
type batchQuery struct {
	query string
	args  []any
}

// batches reports whether tx can send several statements in one round
// trip (batch): a commit group's, whose connection is pgx's.
func (tx *Tx) batches() bool {
	_, ok := tx.tx.(*sql.Conn)
	return ok && !tx.glance
}

// batch sends the pending transaction control, if any, and queries in one
// pgx batch, and hands fn the results from the first query's on; PostgreSQL
// runs them one after the other. Only where batches is true. A failed
// control statement breaks the transaction, as in stmtCtx, and no query's
// result is read.
func (tx *Tx) batch(ctx context.Context, queries []batchQuery, fn func(br pgx.BatchResults) error) error {
	if tx.oneTrip {
		return errOneTrip
	}
	if err := tx.flushDeferred(ctx); err != nil {
		return err
	}
	tx.memberSent = true
	ctx, cancel := tx.timed(ctx)
	defer cancel()
	for _, q := range queries {
		tx.note(q.query)
	}
	var controls []string
	if tx.pending != "" {
		controls = strings.Split(tx.pending, "; ")
	}
	tx.pending, tx.begun = "", true
	return tx.tx.(*sql.Conn).Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			tx.broken = fmt.Errorf("transaction control: %w", err)
			return tx.broken
		}
		b := &pgx.Batch{}
		for _, q := range controls {
			b.Queue(q)
		}
		for _, q := range queries {
			b.Queue(q.query, q.args...)
		}
		br := c.SendBatch(ctx, b)
		for range controls {
			if _, err := br.Exec(); err != nil {
				tx.broken = fmt.Errorf("transaction control: %w", err)
				_ = br.Close()
				return tx.broken
			}
		}
		err = fn(br)
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// rowsAffected is the sql.Result of a statement sent by withPending.
type rowsAffected int64

func (n rowsAffected) LastInsertId() (int64, error) {
	return 0, errors.New("postgres: LastInsertId is not supported")
}

func (n rowsAffected) RowsAffected() (int64, error) { return int64(n), nil }

// exec runs one statement under the query timeout.
func (tx *Tx) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if tx.pipelines(args) {
		var n rowsAffected
		err := tx.withPending(ctx, query, args, func(br pgx.BatchResults) error {
			ct, err := br.Exec()
			n = rowsAffected(ct.RowsAffected())
			return err
		})
		if err != nil {
			return nil, err
		}
		return n, nil
	}
	ctx, cancel, err := tx.stmtCtx(ctx, query)
	if err != nil {
		return nil, err
	}
	defer cancel()
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

// insert runs an INSERT … ON CONFLICT DO NOTHING and returns ECONFLICT if
// it stored no row.
//
// A failed statement aborts a PostgreSQL transaction, where on SQLite the
// transaction stays usable; skipping the duplicate instead of failing on
// it keeps the two stores alike: after ECONFLICT the caller may go on and
// commit. Under READ COMMITTED a concurrent insert of the same key is waited
// for, and counts as a conflict once it commits.
func (tx *Tx) insert(ctx context.Context, entity, query string, args ...any) error {
	n, err := tx.affected(ctx, query+` ON CONFLICT DO NOTHING`, args...)
	return insertResult(n, err, entity)
}

// insertResult maps the outcome of an INSERT … ON CONFLICT DO NOTHING.
func insertResult(n int64, err error, entity string) error {
	if err != nil {
		return formatError(err, entity)
	}
	if n == 0 {
		return conflict(entity, nil)
	}
	return nil
}

// queryRow runs a query for at most one row and calls fn to scan it; no
// row makes Scan return sql.ErrNoRows.
func (tx *Tx) queryRow(ctx context.Context, query string, args []any, fn func(s scanner) error) error {
	if tx.pipelines(args) {
		sent := false
		err := tx.withPending(ctx, query, args, func(br pgx.BatchResults) error {
			sent = true
			return fn(br.QueryRow())
		})
		if !sent {
			return fn(errScanner{err})
		}
		return err
	}
	ctx, cancel, err := tx.stmtCtx(ctx, query)
	if err != nil {
		return fn(errScanner{err})
	}
	defer cancel()
	return fn(tx.tx.QueryRowContext(ctx, query, args...))
}

// errScanner is a row whose query could not be sent.
type errScanner struct{ err error }

func (e errScanner) Scan(...any) error { return e.err }

// scanRow runs a query for at most one row and scans it into dest.
func (tx *Tx) scanRow(ctx context.Context, query string, args []any, dest ...any) error {
	return tx.queryRow(ctx, query, args, func(s scanner) error { return s.Scan(dest...) })
}

// eachRow calls fn for each row of br's next result.
func eachRow(br pgx.BatchResults, fn func(s scanner) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// query runs a query and calls fn for each row.
func (tx *Tx) query(ctx context.Context, query string, args []any, fn func(s scanner) error) (err error) {
	if tx.pipelines(args) {
		return tx.withPending(ctx, query, args, func(br pgx.BatchResults) error { return eachRow(br, fn) })
	}
	ctx, cancel, err := tx.stmtCtx(ctx, query)
	if err != nil {
		return err
	}
	defer cancel()
	rows, err := tx.tx.QueryContext(ctx, query, args...)
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

// lockAppend takes the audit append lock for the rest of the transaction
// (pg_advisory_xact_lock is released at commit or rollback, never
// explicitly). It is a statement of its own: under READ COMMITTED every
// statement takes a fresh snapshot when it starts, so a read issued after
// the lock is granted sees what the previous holder committed, while a
// read in the same statement would use a snapshot from before the wait.
// Taking it twice in one transaction is harmless. Read-only transactions
// skip it: they append nothing and need not wait for writers.
func (tx *Tx) lockAppend(ctx context.Context) error {
	if !tx.write || tx.end != nil {
		// At the transaction's end runEnds holds it already: the audit
		// head and the shred entries read or written there need no
		// round trip of their own for it.
		return nil
	}
	if _, err := tx.exec(ctx, lockAppendSQL); err != nil {
		return err
	}
	tx.locked = true
	tx.locks.Add(1)
	return nil
}

// lockAppendSQL takes the append lock. It has no parameters, so pgx sends
// it by the simple protocol and the group writer can send it in one round
// trip with the statement before it.
var lockAppendSQL = fmt.Sprintf(`SELECT pg_advisory_xact_lock(hashtext(current_setting('search_path')), %d)`, appendLockKey)

// orNil returns b, or nil when b is empty: empty byte slices read back as
// nil, as on SQLite.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
