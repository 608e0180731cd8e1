package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"
	"unsafe"

	"custos"
	"custos/internal/jsonstr"
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
	// sees it, followed in memory so that at most the group's first
	// append reads it from the table. It is set only on a group's
	// transaction (never on View or migration transactions). It starts
	// from the head the writer kept from its last committed group when
	// no transaction has appended to the log since (headKept; see
	// DB.keptHeadFor), else unknown.
	head     *auditHead
	headKept bool
	// audits is the store's shared counters (readcache.go) on write
	// transactions; every one that appends to the audit log advances
	// the third.
	audits *sharedGen
	// unfiled, on a group's transaction, counts the audit events it
	// inserts, for the writer's filing (auditindex.go); an event a
	// rollback takes back is counted too, which only files sooner.
	unfiled *atomic.Int64
	// aix is the store's audit index, which FindAuditEvents probes (nil
	// during migrations: queries scan).
	aix *auditIndex
	// cache is the pool's prepared statements (nil: run every statement
	// as text, as during migrations); stmts holds those bound to this
	// transaction.
	cache *stmtCache
	stmts map[string]*sql.Stmt

	// rc is the read cache, set on View transactions only; stamp is what
	// the cache looked like when the View began (readcache.go).
	rc    *readCache
	stamp cacheStamp
	// view marks a View. Its GetSubject reads the subject's data key and
	// consent history too (readSubject) and keeps them in reads for
	// GetDataKey and ListConsentsFor.
	view  bool
	reads sqlutil.SubjectReads
	// inv collects, on write transactions, the customers whose cached
	// rows the statements change; subjects names the customers the
	// statement running now changes (set by about); noted says they are
	// in inv already, which only grows, so that the many statements of
	// one batch name its customers once.
	inv      *invalidation
	subjects []custos.SubjectID
	noted    bool
	// wrote, on write transactions, is set by the first statement that
	// may change anything but the audit log; the commit then advances the
	// shared data counter, which kept snapshots check (kept.go). Shared
	// by a commit group's runs, like inv.
	wrote *bool
	// gen and snap, on a View or Glance transaction that may run on a
	// kept snapshot (kept.go): each statement first checks that the
	// shared data counter still reads snap, the value it had before the
	// snapshot began; kept says the snapshot came from an earlier read,
	// and stale that a statement found it out of date (Glance then runs
	// fn again in View).
	gen   *sharedGen
	snap  uint64
	kept  bool
	stale bool
	// begin, when tx is nil, begins the transaction (run: a read-only
	// transaction begins with its first statement).
	begin func(ctx context.Context) error
	// sp is the state of the commit-group member's savepoint, which its
	// first statement opens (before); spErr is why opening it failed.
	sp    spState
	spErr error
	// ends is the work deferred with AtEnd; while finish runs it,
	// buffering holds audit events back in auditBuf so that they are
	// written together.
	ends      []func(custos.Tx) error
	buffering bool
	auditBuf  []*custos.AuditEvent
	// lookedUp holds blind-index answers of this View waiting for their
	// subject's cache entry (GetSubject starts it).
	lookedUp []lookupHit
}

type lookupHit struct {
	field string
	hash  []byte
	id    custos.SubjectID
}

// cacheLookups keeps this View's blind-index answers that led to id, now
// that id's entry exists.
func (tx *Tx) cacheLookups(id custos.SubjectID) {
	for _, h := range tx.lookedUp {
		if h.id == id {
			tx.rc.putLookup(tx.stamp, h.field, h.hash, id)
		}
	}
}

type spState uint8

const (
	spNone    spState = iota
	spPending         // to be opened by the next statement
	spOpen
	// A member run without a savepoint (an optimistic group, see
	// commitGroup): spWatch until its first statement, then spRan.
	spWatch
	spRan
)

var _ custos.AtEnder = (*Tx)(nil)

// AtEnd registers fn to run at the end of the transaction, after the
// Update function that registered it returned nil, just before commit
// (custos.AtEnder). In a commit group the members' end work runs there
// together, after every member: a group's audit events are written by
// one multi-row statement, and a member that only appends an audit event
// (a read) runs no statement of its own.
func (tx *Tx) AtEnd(fn func(tx custos.Tx) error) { tx.ends = append(tx.ends, fn) }

// finish runs the end work, holding the audit events it inserts back
// until the last (or until another statement needs them written).
func (tx *Tx) finish(ctx context.Context) error {
	if len(tx.ends) == 0 {
		return nil
	}
	ends := tx.ends
	tx.ends = nil
	tx.buffering = true
	defer func() { tx.buffering, tx.auditBuf = false, nil }()
	for _, fn := range ends {
		if err := fn(tx); err != nil {
			return err
		}
	}
	return tx.flushAudit(ctx)
}

// flushAudit writes the audit events held back.
func (tx *Tx) flushAudit(ctx context.Context) error {
	buf := tx.auditBuf
	if len(buf) == 0 {
		return nil
	}
	tx.auditBuf = nil
	return tx.InsertAuditEvents(ctx, buf)
}

// raw returns the transaction itself, for statements that bypass the
// Tx methods (a restore's bulk load). It runs what a statement's start
// runs (before), so that the member counts as one that wrote: if it then
// fails, its writes are undone with it even when it shares a commit group
// with other writes (TestLoadFailsInGroup).
func (tx *Tx) raw(ctx context.Context) (*sql.Tx, error) {
	if err := tx.before(ctx); err != nil {
		return nil, err
	}
	if tx.kept {
		tx.stale = true
		return nil, errStale
	}
	if tx.wrote != nil {
		*tx.wrote = true
	}
	// What the caller writes may include audit events (a restore's):
	// a writer's kept head must be read again (InsertAuditEvents).
	tx.audits.addAudit()
	return tx.tx, nil
}

// before runs ahead of every statement: it opens the commit-group
// member's savepoint on its first statement, and writes held-back audit
// events before anything that may read them or refer to them.
func (tx *Tx) before(ctx context.Context) error {
	if tx.tx == nil {
		if tx.begin == nil {
			return internal("statement", errors.New("no transaction"))
		}
		if err := tx.begin(ctx); err != nil {
			return err
		}
	}
	if tx.sp == spWatch {
		tx.sp = spRan
	}
	if tx.sp == spPending {
		tx.sp = spOpen
		sctx, cancel := tx.stmtCtx(ctx)
		defer cancel()
		if _, err := tx.tx.ExecContext(sctx, "SAVEPOINT w"); err != nil {
			tx.spErr = err
			return err
		}
	}
	if len(tx.auditBuf) > 0 {
		return tx.flushAudit(ctx)
	}
	return nil
}

// about declares that the statements run until the returned function is
// called change only rows of the customers ids, so that the read cache
// drops just their entries; without it, a statement changing a cached
// table empties the whole cache.
func (tx *Tx) about(ids ...custos.SubjectID) func() {
	prev, prevNoted := tx.subjects, tx.noted
	tx.subjects, tx.noted = ids, false
	return func() { tx.subjects, tx.noted = prev, prevNoted }
}

// note records what query changes in cached tables, and whether it may
// change anything but the audit log.
func (tx *Tx) note(query string) {
	if tx.wrote != nil && !*tx.wrote && changesData(query) {
		*tx.wrote = true
	}
	if tx.inv == nil || tx.noted || !changesCached(query) {
		return
	}
	if len(tx.subjects) == 0 {
		tx.inv.all = true
		return
	}
	if tx.inv.ids == nil {
		tx.inv.ids = map[custos.SubjectID]struct{}{}
	}
	for _, id := range tx.subjects {
		tx.inv.ids[id] = struct{}{}
	}
	tx.noted = true
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
	if err := tx.before(ctx); err != nil {
		return nil, err
	}
	if err := tx.checkKept(query); err != nil {
		return nil, err
	}
	tx.note(query)
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
	if err := tx.before(ctx); err != nil {
		return err
	}
	if err := tx.checkKept(query); err != nil {
		return err
	}
	tx.note(query)
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
	if err := tx.before(ctx); err != nil {
		return err
	}
	if err := tx.checkKept(query); err != nil {
		return err
	}
	tx.note(query)
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
// nil and empty lists both round-trip exactly. It writes what json.Marshal
// writes, without its reflection and buffers, in one allocation
// (internal/jsonstr), and cannot fail: an audit event carries two lists,
// of field names and purposes, and a writer's group encodes both for
// every event (BENCHMARKS.md, sixtieth session).
func encodeList(l []string) string {
	if l == nil {
		return "null"
	}
	n := 2
	for _, s := range l {
		n += len(s) + 3 // quotes and a comma; escapes grow it
	}
	b := make([]byte, 1, n)
	b[0] = '['
	for i, s := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonstr.Append(b, s)
	}
	b = append(b, ']')
	// The string is b's bytes, as strings.Builder's is: nothing writes b
	// after this.
	return unsafe.String(unsafe.SliceData(b), len(b))
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
