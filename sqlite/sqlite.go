// Package sqlite implements custos.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go). It holds storage only: no business rules,
// no crypto, no audit hashing — callers hand it sealed bytes and hashes.
//
// Writes go through a pool of exactly one connection whose transactions
// begin with BEGIN IMMEDIATE, so writers are serialised in Go rather than
// failing with "database is locked"; reads use a separate pool of read-only
// connections, which WAL lets run beside the writer.
//
// Storage formats: times are INTEGER Unix microseconds in UTC (see
// sqlutil.Micros), so every time round-trips exactly to the microsecond and
// comes back in UTC; a subject's sealed fields are one BLOB in the format of
// sqlutil.EncodeSealed; lists (roles, audit fields and purposes) are JSON
// arrays in TEXT columns. Byte slices that are empty are read back as nil.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"custos"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// DefaultQueryTimeout bounds each statement, and the wait for a connection,
// when Options.QueryTimeout is zero.
const DefaultQueryTimeout = 30 * time.Second

// readConns is the size of the read pool.
const readConns = 4

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
}

// DB is a custos.Store on one SQLite database file.
type DB struct {
	path    string
	write   *sql.DB // exactly one connection: SQLite has one writer
	read    *sql.DB
	now     func() time.Time
	timeout time.Duration
}

var _ custos.Store = (*DB)(nil)

// Open opens (creating if needed) the database at path, whose directory
// must exist. Unless opts.Migrate is set it does not change the schema, and
// it returns EINVALID when migrations are pending; it always refuses a
// database migrated by a newer custos.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" || strings.HasPrefix(path, "file:") || strings.ContainsRune(path, '?') || path == ":memory:" {
		return nil, custos.Errorf(custos.EINVALID, "Database path must be a plain file name without '?'.")
	}
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, &custos.Error{Code: custos.EINVALID, Message: "Database directory does not exist.",
			Err: fmt.Errorf("sqlite: open %s: %w", dir, err)}
	} else if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("sqlite: open: %w", err)}
	} else if !fi.IsDir() {
		return nil, &custos.Error{Code: custos.EINVALID, Message: "Database directory is not a directory.",
			Err: fmt.Errorf("sqlite: open: %s is not a directory", dir)}
	}

	db := &DB{path: path, now: opts.Now, timeout: opts.QueryTimeout}
	if db.now == nil {
		db.now = time.Now
	}
	if db.timeout <= 0 {
		db.timeout = DefaultQueryTimeout
	}
	if err := db.open(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if err := db.checkSchema(ctx, opts.Migrate); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}

// dsn returns the connection string for path.
//
// The driver runs the _pragma list with busy_timeout first and the rest
// sorted by name, and then its shorthand keys in a fixed order, so this mix
// yields the order STYLE §7 asks for: busy_timeout (first, so the others
// wait for locks instead of failing), journal_mode=WAL, then foreign_keys
// and synchronous=NORMAL. secure_delete overwrites deleted content, so a
// shredded data key does not linger in free pages of the file. The write
// pool begins transactions IMMEDIATE, taking the write lock at BEGIN rather
// than failing on a later upgrade; the read pool is query_only.
func dsn(path string, write bool) string {
	s := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=secure_delete(ON)" +
		"&_foreign_keys=on&_synchronous=normal"
	if write {
		return s + "&_txlock=immediate"
	}
	return s + "&_query_only=on"
}

func (db *DB) open(ctx context.Context) error {
	var err error
	if db.write, err = sql.Open("sqlite", dsn(db.path, true)); err != nil {
		return internal("open", err)
	}
	db.write.SetMaxOpenConns(1)
	db.write.SetMaxIdleConns(1)
	// The writer connects first: it creates the file and switches it to WAL
	// before any reader opens it.
	if err := db.ping(ctx, db.write); err != nil {
		return err
	}
	if db.read, err = sql.Open("sqlite", dsn(db.path, false)); err != nil {
		return internal("open", err)
	}
	db.read.SetMaxOpenConns(readConns)
	db.read.SetMaxIdleConns(readConns)
	return db.ping(ctx, db.read)
}

func (db *DB) ping(ctx context.Context, pool *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	if err := pool.PingContext(ctx); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Cannot open the database.", Err: fmt.Errorf("sqlite: open: %w", err)}
	}
	return nil
}

// Close closes both pools.
func (db *DB) Close() error {
	var errs []error
	for _, pool := range []*sql.DB{db.read, db.write} {
		if pool != nil {
			if err := pool.Close(); err != nil {
				errs = append(errs, internal("close", err))
			}
		}
	}
	return errors.Join(errs...)
}

// Path returns the database file name given to Open.
func (db *DB) Path() string { return db.path }

// Checkpoint copies the WAL into the database file and truncates the WAL,
// so that the main file holds everything committed (tests scan it for
// plaintext). It fails if a reader keeps the checkpoint from completing.
func (db *DB) Checkpoint(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	var busy, logFrames, checkpointed int
	if err := db.write.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return internal("checkpoint", err)
	}
	if busy != 0 {
		return internal("checkpoint", errors.New("checkpoint blocked by a reader"))
	}
	return nil
}

// Update runs fn in a write transaction on the single write connection.
// The wait for that connection is bounded by the query timeout. fn's error
// rolls the transaction back and is returned unchanged.
func (db *DB) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	return db.run(ctx, db.write, nil, func(tx *Tx) error { return fn(tx) })
}

// View runs fn in a read-only transaction on the read pool; it sees one
// consistent snapshot. Writes inside it fail with EINTERNAL.
func (db *DB) View(ctx context.Context, fn func(tx custos.Tx) error) error {
	return db.run(ctx, db.read, &sql.TxOptions{ReadOnly: true}, func(tx *Tx) error { return fn(tx) })
}

func (db *DB) run(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	conn, err := pool.Conn(cctx)
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

	tx := &Tx{tx: sqlTx, now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout}
	if err := fn(tx); err != nil {
		return err
	}
	ended = true
	if err := sqlTx.Commit(); err != nil {
		return internal("commit", err)
	}
	return nil
}

// formatError translates a driver error into a *custos.Error, in this one
// place: no row is ENOTFOUND ("Subject not found."), a primary-key or
// unique violation is ECONFLICT ("Subject already exists."), anything else
// EINTERNAL. entity names the object in the message; messages never hold
// values. An error that already is a *custos.Error passes through.
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
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return &custos.Error{Code: custos.ECONFLICT, Message: entity + " already exists.", Err: err}
		}
	}
	return internal(strings.ToLower(entity), err)
}

// internal wraps err as EINTERNAL; op says what was being done, for logs.
func internal(op string, err error) error {
	return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("sqlite: %s: %w", op, err)}
}
