// Package postgres implements custos.Store on PostgreSQL through
// database/sql and the pgx/v5 stdlib driver. It holds storage only: no
// business rules, no crypto, no audit hashing — callers hand it sealed
// bytes and hashes. It mirrors package sqlite statement for statement, with
// the same error codes, orderings and storage formats, and is the store
// for running several custos nodes on one database (DESIGN "Scale-out").
//
// Concurrency: Update runs at READ COMMITTED. Each node runs a few commit
// groups at once (Options.Writers), each sharing one transaction and one
// commit among the Update calls waiting when it starts; nodes run theirs
// side by side. The audit chain is kept single and gapless by a
// transaction-level advisory lock that Tx.AuditHead (and Tx.InsertShred)
// take before reading the head; it is released at commit or rollback. A
// group takes it once, at its end, for the audit appends its members
// deferred with Tx.AtEnd (see Update).
// Background jobs elect a leader with DB.TryLeader, a session-level
// advisory lock that PostgreSQL frees when its connection goes away.
//
// Storage formats: times are BIGINT Unix microseconds in UTC (see
// sqlutil.Micros), a subject's sealed fields are one BYTEA in the format of
// sqlutil.EncodeSealed, lists (roles, audit fields and purposes) are JSONB
// arrays (JSON null for a nil list), ids are TEXT in the "C" collation so
// they sort bytewise as on SQLite. Byte slices that are empty are read back
// as nil.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultQueryTimeout bounds each statement, and the wait for a connection,
// when Options.QueryTimeout is zero.
const DefaultQueryTimeout = 30 * time.Second

// DefaultMaxConns is the pool size when Options.MaxConns is zero.
const DefaultMaxConns = 16

// Advisory lock keys. Locks are taken with the two-key form
// (hashtext(search_path), key), so that two custos installations in two
// schemas of one database never share a lock; the single-key space is left
// to TryLeader, whose keys also include the search path.
const (
	// migrateLockKey serialises migration runs of every node.
	migrateLockKey int32 = 1
	// appendLockKey serialises appends to the audit chain and shred ledger.
	appendLockKey int32 = 2
)

// Options configure Open.
type Options struct {
	// Now returns the current time; each transaction reads it once, at
	// its start. Defaults to time.Now.
	Now func() time.Time
	// QueryTimeout bounds every statement and the wait for a pooled
	// connection. Defaults to DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Migrate applies pending migrations at Open. When false, Open
	// refuses a database with pending migrations (EINVALID).
	Migrate bool
	// NoSchemaCheck opens the store whatever its schema state, for custos
	// migrate, which reports and applies what is pending itself.
	NoSchemaCheck bool
	// MaxConns caps the connections this node opens, leader locks held
	// by TryLeader included. Defaults to DefaultMaxConns.
	MaxConns int
	// Writers is how many commit groups (see Update) run at once, each
	// on a connection of its own. Defaults to DefaultWriters, and is at
	// most half of MaxConns (at least one).
	Writers int
	// ReadAuditCommitted commits a group that writes nothing but audit
	// events (a read's, a lookup's, a refusal's) with synchronous_commit
	// off: its callers are answered once it is committed, before its
	// commit record is flushed; the WAL writer flushes it within
	// wal_writer_delay (at most three times it). Every other group, and
	// every group without this option, commits synchronously. See
	// runGroup.
	ReadAuditCommitted bool
	// ReadCache is how many customers the read cache keeps for reads by
	// id and lookups (readcache.go): 0 is DefaultReadCache, -1 none.
	ReadCache int
}

// DB is a custos.Store on one PostgreSQL database (the schema is the first
// one on the connection's search_path).
type DB struct {
	pool    *sql.DB
	now     func() time.Time
	timeout time.Duration

	mu      sync.Mutex
	leaders map[*leader]struct{} // held TryLeader locks, released by Close

	reqs    chan *writeReq // to the group writers
	closed  chan struct{}  // closed by Close: no new writes
	once    sync.Once
	writers sync.WaitGroup // the group writers, until they have finished
	queued  atomic.Int64   // Update calls waiting for a writer
	largest atomic.Int64   // most members a group ran in one transaction
	// undeferred counts groups run again without deferring after a
	// deferred statement or its check failed (commitGroup).
	undeferred atomic.Int64
	// deferredSent counts the statements commit groups sent deferred.
	deferredSent atomic.Int64
	// groups and members count the commit groups the writers ran and the
	// Update calls in them (GroupStats).
	groups, members atomic.Int64
	// appendLocks counts the statements that took the append lock
	// (GroupStats).
	appendLocks atomic.Int64
	// hint is the chain head this node's last group end wrote
	// (serverchain.go).
	hint keptHint
	// ends counts the group ends on their way, for joinLate, which waits
	// for them at most joinWait (latejoin.go); lateJoins counts the groups
	// that waited, lateJoined the requests they took meanwhile
	// (GroupStats).
	ends                  endWatch
	joinWait              time.Duration
	lateJoins, lateJoined atomic.Int64
	// asyncAudit is Options.ReadAuditCommitted; asyncCommits counts the
	// groups committed with synchronous_commit off (GroupStats).
	asyncAudit   bool
	asyncCommits atomic.Int64
	// byID and byKey gather the reads by id and the lookups of
	// concurrent Glances (readbatch.go).
	byID, byKey *readBatcher
	// rc is the read cache, nil when off (readcache.go); kf loads the
	// keys of the customers reads by id put in it (keyfill.go).
	rc *readCache
	kf *keyFiller
}

var _ custos.Store = (*DB)(nil)

// Open connects to the database named by url, a postgres:// URL or a
// key=value connection string as pgx accepts it (runtime parameters such as
// search_path may be given as query parameters). Unless opts.Migrate is set
// it does not change the schema, and it returns EINVALID when migrations
// are pending; it always refuses a database migrated by a newer custos.
// Returned errors never contain the URL's password.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		// pgx redacts passwords from its parse errors only on a best-effort
		// basis, and url.Parse errors quote the whole URL: keep neither.
		return nil, &custos.Error{Code: custos.EINVALID, Message: "Database URL is not valid.",
			Err: errors.New("postgres: cannot parse the database URL")}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "custos"
	}
	db := &DB{now: opts.Now, timeout: opts.QueryTimeout, leaders: map[*leader]struct{}{}, asyncAudit: opts.ReadAuditCommitted,
		rc: newReadCache(opts.ReadCache), joinWait: lateJoinWait}
	if db.rc != nil {
		db.kf = newKeyFiller(db)
	}
	if db.now == nil {
		db.now = time.Now
	}
	if db.timeout <= 0 {
		db.timeout = DefaultQueryTimeout
	}
	maxConns := opts.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	// OpenDB takes the parsed config, so the URL string is kept nowhere.
	db.pool = stdlib.OpenDB(*cfg)
	db.pool.SetMaxOpenConns(maxConns)
	db.pool.SetMaxIdleConns(maxConns)
	db.pool.SetConnMaxIdleTime(5 * time.Minute)
	db.byID = &readBatcher{kind: readsByID, pool: db.pool, timeout: db.timeout}
	db.byKey = &readBatcher{kind: readsByKey, pool: db.pool, timeout: db.timeout}

	if err := db.ping(ctx); err != nil {
		return nil, redact(errors.Join(err, db.Close()), cfg.Password)
	}
	if opts.NoSchemaCheck {
		// custos migrate: the caller inspects and applies the schema.
	} else if err := db.checkSchema(ctx, opts.Migrate); err != nil {
		return nil, redact(errors.Join(err, db.Close()), cfg.Password)
	}
	writers := opts.Writers
	if writers <= 0 {
		writers = DefaultWriters
	}
	writers = max(1, min(writers, maxConns/2))
	db.reqs, db.closed = make(chan *writeReq), make(chan struct{})
	for range writers {
		db.writers.Add(1)
		go db.writer()
	}
	return db, nil
}

func (db *DB) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	if err := db.pool.PingContext(ctx); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Cannot open the database.", Err: fmt.Errorf("postgres: open: %w", err)}
	}
	return nil
}

// Close waits for the writes in flight, releases the leader locks this
// handle holds, then closes the pool.
func (db *DB) Close() error {
	if db.reqs != nil {
		db.once.Do(func() { close(db.closed) })
		db.writers.Wait()
	}
	db.mu.Lock()
	held := make([]*leader, 0, len(db.leaders))
	for l := range db.leaders {
		held = append(held, l)
	}
	db.leaders = nil // closed: TryLeader registers no more
	db.mu.Unlock()
	for _, l := range held {
		l.release()
	}
	if db.kf != nil {
		db.kf.close()
	}
	if db.pool == nil {
		return nil
	}
	if err := db.pool.Close(); err != nil {
		return internal("close", err)
	}
	return nil
}

// lockTimeout reports a lock wait cut short by lock_timeout (55P03).
func lockTimeout(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// retryable reports a deadlock (40P01) or serialisation failure (40001).
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// View runs fn in a read-only transaction. It is REPEATABLE READ, so like
// a View on SQLite it sees one consistent snapshot (a read-only transaction
// never fails to serialise). Writes inside it fail with EINTERNAL.
func (db *DB) View(ctx context.Context, fn func(tx custos.Tx) error) error {
	return db.run(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, false,
		func(tx *Tx) error { return fn(tx) })
}

func (db *DB) run(ctx context.Context, opts *sql.TxOptions, write bool, fn func(tx *Tx) error) (err error) {
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	conn, err := db.pool.Conn(cctx)
	cancel()
	if err != nil {
		return internal("connect", err)
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = internal("release", cerr)
		}
	}()

	sqlTx, err := conn.BeginTx(ctx, opts)
	if err != nil {
		return internal("begin", err)
	}
	ended := false
	defer func() {
		// Also runs when fn panics, so the connection is never returned
		// to the pool inside a transaction.
		if ended {
			return
		}
		if rerr := sqlTx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			err = errors.Join(err, internal("rollback", rerr))
		}
	}()

	tx := &Tx{tx: sqlTx, now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, write: write, locks: &db.appendLocks}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	if write {
		if _, err := sqlTx.ExecContext(ctx, markBumpsSQL); err != nil {
			return formatError(err, "Transaction")
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if len(tx.ends) > 0 {
		if err := tx.runEnds(ctx, nil); err != nil {
			return err
		}
		if err := tx.flushEvents(ctx); err != nil {
			return err
		}
	}
	if tx.changed {
		// After the append lock where the transaction took it.
		if _, err := tx.exec(ctx, bumpGenSQL); err != nil {
			return formatError(err, "Read cache generation")
		}
	}
	ended = true
	if tx.changed {
		defer db.rc.forget()
	}
	if err := sqlTx.Commit(); err != nil {
		return formatError(fmt.Errorf("commit: %w", err), "Transaction")
	}
	return nil
}

// uniqueViolation is the SQLSTATE of a primary-key or unique violation.
const uniqueViolation = "23505"

// formatError translates a driver error into a *custos.Error, in this one
// place: no row is ENOTFOUND ("Subject not found."), a primary-key or
// unique violation (SQLSTATE 23505) is ECONFLICT ("Subject already
// exists."), anything else EINTERNAL. entity names the object in the
// message; messages never hold values. An error that already is a
// *custos.Error passes through.
func formatError(err error, entity string) error {
	if err == nil {
		return nil
	}
	if custos.AsError(err) != nil {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return &custos.Error{Code: custos.ENOTFOUND, Message: entity + " not found.", Err: err}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == uniqueViolation {
		return conflict(entity, err)
	}
	return internal(strings.ToLower(entity), err)
}

// conflict is the ECONFLICT for entity; cause may be nil.
func conflict(entity string, cause error) error {
	return &custos.Error{Code: custos.ECONFLICT, Message: entity + " already exists.", Err: cause}
}

// internal wraps err as EINTERNAL; op says what was being done, for logs.
func internal(op string, err error) error {
	return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("postgres: %s: %w", op, err)}
}

// redact hides password wherever err's text might echo it. The drivers do
// not put passwords in their errors; this is belt and braces, because an
// error from Open is logged beside the configuration that caused it.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	e := custos.AsError(err)
	if e == nil {
		return &redactedError{err: err, password: password}
	}
	c := *e
	c.Message = strings.ReplaceAll(c.Message, password, "xxxxx")
	c.Err = &redactedError{err: e.Err, password: password}
	return &c
}

// redactedError prints err with every occurrence of password masked.
type redactedError struct {
	err      error
	password string
}

func (e *redactedError) Error() string { return strings.ReplaceAll(e.err.Error(), e.password, "xxxxx") }
func (e *redactedError) Unwrap() error { return e.err }

// Analyze refreshes PostgreSQL's planner statistics of the store's
// tables, those of its schema (the first of search_path that exists), as
// ANALYZE does; other schemas of the database are left alone. Call it
// after a bulk load (custos seed, restore): until then the planner knows
// nothing of the new rows, and autovacuum analyses a table only on its
// next round, up to autovacuum_naptime (a minute by default) later. With
// no statistics a read by id sorted a bitmap scan of the consent history
// planned for 130 rows a customer, and reads ran 30 % slower (BENCHMARKS.md,
// fortieth session). It returns how many tables it analysed.
func (db *DB) Analyze(ctx context.Context) (int, error) {
	rows, err := db.pool.QueryContext(ctx, `SELECT schemaname, tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename`)
	if err != nil {
		return 0, internal("analyze", err)
	}
	var tables []string
	for rows.Next() {
		var schema, t string
		if err := rows.Scan(&schema, &t); err != nil {
			return 0, internal("analyze", errors.Join(err, rows.Close()))
		}
		tables = append(tables, pgx.Identifier{schema, t}.Sanitize())
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, internal("analyze", err)
	}
	if len(tables) == 0 {
		return 0, nil
	}
	if _, err := db.pool.ExecContext(ctx, `ANALYZE `+strings.Join(tables, ", ")); err != nil {
		return 0, internal("analyze", err)
	}
	return len(tables), nil
}
