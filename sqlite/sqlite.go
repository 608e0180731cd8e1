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
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"custos"
	"custos/internal/queue"
	"custos/internal/sqlutil"

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
	// NoSchemaCheck opens the store whatever its schema state, for custos
	// migrate, which reports and applies what is pending itself.
	NoSchemaCheck bool
	// ReadCache is how many customers' rows reads keep in memory
	// (readcache.go); 0 means DefaultReadCache, a negative number turns
	// the cache off. Writes keep other processes' caches coherent either
	// way.
	ReadCache int
	// ReadAuditCommitted answers a request that writes nothing but its
	// audit event (a read, a lookup, a denial) once that event is
	// committed, instead of once it is on disk, when nothing the request
	// may have read is still to be synced; the event reaches the disk
	// within about earlySyncDelay (durable.go). A power loss in that
	// window may lose those events; a crash of the process loses
	// nothing. Off by default.
	ReadAuditCommitted bool
}

// DB is a custos.Store on one SQLite database file.
type DB struct {
	path  string
	write *sql.DB // exactly one connection: SQLite has one writer
	read  *sql.DB
	ckpt  *sql.DB // the checkpointer's connection
	// dbFile is the database file, whose writeback the checkpointer
	// starts, and backfilled the WAL frames its last round had copied
	// (checkpoint.go).
	dbFile     *os.File
	backfilled int
	now        func() time.Time
	timeout    time.Duration
	// wcache and rcache keep prepared statements of the write and read
	// pools (stmtcache.go).
	wcache, rcache *stmtCache
	// gen is the counter shared with other processes on this file; rc
	// the read cache, nil when off (readcache.go).
	gen *sharedGen
	rc  *readCache
	// lastTurn is the turn counter after this store's last BEGIN of a
	// write, yields how often it let another process's writer begin
	// first, waitSlot its waiting mark's slot while it waits (-1: none),
	// runBegan when its present run of turns began, quantum how long it
	// may last while another waits, lastBegin when its last transaction
	// began and lastHold how long that held the lock, for the one write
	// connection's user (turns.go).
	lastTurn, yields atomic.Uint64
	// cuts is how often a group was cut short for another process's
	// waiting writer (turns.go's cutGroup).
	cuts                atomic.Uint64
	waitSlot            atomic.Int32
	runBegan, lastBegin time.Time
	quantum, lastHold   time.Duration
	// pending is the token of the cache change the writer is committing
	// (sharedGen.pendCache), 0 when none.
	pending uint64

	// leaders are the lock files of the jobs this store leads (leader.go).
	leadMu  sync.Mutex
	leaders map[*os.File]struct{}

	reqs   chan *writeReq // to the group-commit writer
	closed chan struct{}  // closed by Close: no new writes
	done   chan struct{}  // closed when the writer has finished
	// ckptDone is closed when the checkpointer has finished.
	ckptDone chan struct{}
	// walReset is set by the checkpointer when the writer should empty
	// the WAL between two groups, and walOverdue when the WAL has grown
	// past twice the size that asked for it, so that the restart no
	// longer waits for other processes' writers to pause (checkpoint.go).
	walReset, walOverdue atomic.Bool
	// walSizeLimit is the journal_size_limit the checkpointer wants for
	// the database's size; the writer sets it when it restarts the WAL
	// (checkpoint.go).
	walSizeLimit atomic.Int64
	// aix is the audit log's index, in a file of its own, and its filer
	// (auditindex.go); nil when opened for migrations only.
	aix *auditIndex
	// auditUnfiled is about how many audit events wait to be filed:
	// those the groups inserted since the last filing, which sets it to
	// what it left (auditindex.go).
	auditUnfiled atomic.Int64
	// auditBehind is how many audit events were past the index's mark
	// when this process last filed or opened it (WriterStats).
	auditBehind atomic.Int64
	// filings, filed and filingNanos count the filings of the audit
	// index that filed events, the events they filed, and the time they
	// took (WriterStats).
	filings, filed atomic.Uint64
	filingNanos    atomic.Int64
	// head is the audit chain head as the writer's last committed group
	// left it, and headGen the shared audit counter at that group's
	// commit (keptHeadFor). Only the holder of the write connection
	// touches them: the commit groups, one at a time.
	head    auditHead
	headGen uint64

	once sync.Once
	// kept holds read transactions kept open for the next read (kept.go).
	kept keptSnaps
	// dur answers commit groups once the syncer has synced them
	// (durable.go).
	dur *durability

	// The writer's counters (WriterStats).
	groups, members, reruns, pages atomic.Uint64
	// busy is the time the writer spent on groups that have ended, and
	// busySince when the running one began (zero between groups), so that
	// WriterStats counts a group while it runs: busy time then never grows
	// faster than the clock, and its share of any window stays at most 1.
	busyMu    sync.Mutex
	busy      time.Duration
	busySince time.Time
}

// MaxGroup bounds how many Update calls share one commit.
const MaxGroup = 128

// gatherYields is how often the writer lets the goroutines ready to run
// queue their writes before it begins a group (queue.Gather). At c=64
// reads, groups grew from 4–6 to about 16 writes per commit; in 5
// interleaved pairs, reads at c=64 rose in 4 of 5 (−5 to +23 %) and their
// p99 fell in all 5 (BENCHMARKS.md, tenth session). Imports, where the
// goroutines let go first are batches being sealed, showed no difference
// beyond the host's noise. A variable so that a test can show the
// difference.
var gatherYields = 1

// writeReq is one Update waiting for the writer.
type writeReq struct {
	ctx  context.Context
	fn   func(tx custos.Tx) error
	done chan error
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

	db := &DB{path: path, now: opts.Now, timeout: opts.QueryTimeout, dur: newDurability(path)}
	db.waitSlot.Store(-1)
	db.quantum = turnQuantum
	if db.now == nil {
		db.now = time.Now
	}
	if db.timeout <= 0 {
		db.timeout = DefaultQueryTimeout
	}
	gen, err := openSharedGen(path)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Cannot open the database.", Err: fmt.Errorf("sqlite: open: %w", err)}
	}
	db.gen = gen
	db.dur.gen, db.dur.early = gen, opts.ReadAuditCommitted
	if err := db.open(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if opts.NoSchemaCheck {
		// custos migrate: the caller inspects and applies the schema.
	} else if err := db.checkSchema(ctx, opts.Migrate); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	db.wcache, db.rcache = newStmtCache(db.write, db.timeout), newStmtCache(db.read, db.timeout)
	if opts.ReadCache >= 0 {
		size := opts.ReadCache
		if size == 0 {
			size = DefaultReadCache
		}
		db.rc = newReadCache(size, db.gen)
	}
	if err := db.openCheckpointer(ctx); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	if !opts.NoSchemaCheck {
		if err := db.openAuditIndex(ctx); err != nil {
			return nil, errors.Join(err, db.Close())
		}
	}
	db.reqs, db.closed, db.done = make(chan *writeReq), make(chan struct{}), make(chan struct{})
	db.ckptDone = make(chan struct{})
	go db.dur.run()
	go db.writer()
	go db.checkpointer()
	if db.aix != nil && auditFilerRuns {
		db.aix.kick, db.aix.done = make(chan struct{}, 1), make(chan struct{})
		go db.filer()
	}
	return db, nil
}

// dsn returns the connection string for path.
//
// The driver runs the _pragma list with busy_timeout first and the rest
// sorted by name, and then its shorthand keys in a fixed order, so this mix
// yields the order STYLE §7 asks for: busy_timeout (first, so the others
// wait for locks instead of failing), journal_mode=WAL, then foreign_keys
// and synchronous. synchronous is FULL rather than STYLE's NORMAL: a write
// and its audit event are acknowledged only once they are on disk, and
// group commit (Update) pays that fsync once per group, not per write. secure_delete overwrites deleted content, so a
// shredded data key does not linger in free pages of the file. The write
// pool begins transactions IMMEDIATE, taking the write lock at BEGIN rather
// than failing on a later upgrade, and does not checkpoint (the
// checkpointer does); the read pool is query_only.
func dsn(path string, write bool) string {
	if write {
		// wal_autocheckpoint off: the checkpointer copies the WAL on a
		// connection of its own (checkpoint.go).
		// journal_size_limit trims the WAL back to 64 MiB when it is
		// started again after growing larger; for a large database the
		// writer raises it (walSizeLimit, checkpoint.go). The page
		// cache is sized by tuneCache (pagecache.go).
		// temp_store=MEMORY keeps statement journals in memory. A
		// multi-row INSERT of blind-index keys journals every random
		// leaf page it changes (128 rows: up to 520 KiB), and past
		// SQLite's 64 KiB that had gone to a temporary file, two write
		// calls a page. Kept in memory, seeds of 100,000 customers took
		// 13–25 % less time (BENCHMARKS.md, seventh session). The price is paid
		// only when a commit group runs again with savepoints after a
		// member failed: SQLite then walks the in-memory journal's 1 KiB
		// chunks, and a group of 16 import batches of 1,000 rows took
		// 5.0 s instead of 2.2 s. (The third session measured it as a
		// loss when every member ran in a savepoint; members now run
		// without one first.)
		// vfs: the WAL's frames are written in blocks (walvfs.go).
		return baseDSN(path) + writeCacheDSN() + "&_pragma=journal_size_limit(67108864)&_pragma=temp_store(MEMORY)&_pragma=wal_autocheckpoint(0)&_txlock=immediate&vfs=" + walVFSName
	}
	return baseDSN(path) + "&_query_only=on"
}

// busyTimeoutMS is every connection's busy_timeout: how long a statement
// waits for a lock another connection holds.
const busyTimeoutMS = 10000

// baseDSN is what every connection to path sets.
func baseDSN(path string) string {
	return path + "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=journal_mode(WAL)&_pragma=secure_delete(ON)" +
		"&_foreign_keys=on&_synchronous=full"
}

func (db *DB) open(ctx context.Context) error {
	if err := registerWALVFS(); err != nil {
		return internal("open", err)
	}
	var err error
	if db.write, err = sql.Open("sqlite", dsn(db.path, true)+db.dur.dsnParam()); err != nil {
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

// Close waits for the writes in flight, then closes both pools.
func (db *DB) Close() error {
	if db.reqs != nil {
		db.once.Do(func() { close(db.closed) })
		<-db.done
		<-db.ckptDone
		if db.aix != nil && db.aix.done != nil {
			<-db.aix.done
		}
		db.dur.close() // once the writer has queued its last answers
	} else {
		durables.Delete(db.dur.id)
	}
	db.kept.pause() // and never resumed: a read after Close keeps nothing
	var errs []error
	for _, c := range []*stmtCache{db.rcache, db.wcache} {
		if c != nil {
			if err := c.close(); err != nil {
				errs = append(errs, internal("close statements", err))
			}
		}
	}
	if db.aix != nil {
		if err := db.aix.close(); err != nil {
			errs = append(errs, internal("close audit index", err))
		}
	}
	for _, pool := range []*sql.DB{db.ckpt, db.read, db.write} {
		if pool != nil {
			if err := pool.Close(); err != nil {
				errs = append(errs, internal("close", err))
			}
		}
	}
	// After the connections: see openCheckpointer. Once: Close may be
	// called again.
	if db.dbFile != nil {
		if err := db.dbFile.Close(); err != nil {
			errs = append(errs, internal("close", err))
		}
		db.dbFile = nil
	}
	if err := db.gen.close(); err != nil {
		errs = append(errs, internal("close", err))
	}
	db.closeLeaders()
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
	// No kept snapshot may hold the WAL (kept.go).
	db.kept.pause()
	defer db.kept.resume()
	// On the checkpointer's connection, so it never runs beside a
	// background checkpoint.
	if err := db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed); err != nil {
		return internal("checkpoint", err)
	}
	if busy != 0 {
		return internal("checkpoint", errors.New("checkpoint blocked by a reader"))
	}
	return nil
}

var errClosed = queue.ClosedError("sqlite")

// checkOpen fails with errClosed once Close has begun. Close unmaps the
// counters shared with the other processes on the file, which reads,
// migrations and the leaders use: after it they fail with this error,
// as Update does, not with a nil-pointer panic (TestStoreAfterClose).
// During Open, before the writer starts, db.closed is nil: open.
func (db *DB) checkOpen() error {
	select {
	case <-db.closed:
		return errClosed
	default:
		return nil
	}
}

// Update runs fn in a write transaction and returns once that transaction
// is committed. fn's error undoes everything fn wrote and is returned
// unchanged.
//
// Group commit: one writer goroutine owns the single write connection.
// The Update calls waiting when it starts a transaction share it (up to
// MaxGroup); a failing fn rolls back only its own writes (the group runs
// again with each fn in its own SAVEPOINT when one fails after writing,
// so fn may run more than once); the group is then committed once and
// every caller is answered after the commit is on disk (the syncer's
// fsync, durable.go). Under concurrent load this turns N commits (each a
// WAL write and an fsync) into one, and one fsync may serve several
// groups. A call waits for the writer until ctx's deadline, or at most
// the query timeout when ctx has none (queue.Hand).
func (db *DB) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	if db.reqs == nil { // during Open: migrations
		return db.run(ctx, db.write, nil, nil, func(tx *Tx) error { return fn(tx) })
	}
	if err := ctx.Err(); err != nil {
		return internal("update", err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	if err := queue.Hand(ctx, db.reqs, r, db.timeout, db.closed, errClosed); err != nil {
		return err
	}
	// Once taken, the request runs to its end even if ctx is cancelled:
	// the answer says whether it was committed.
	return <-r.done
}

// writer is the group-commit loop; it exits when the store is closed.
func (db *DB) writer() {
	defer close(db.done)
	_ = db.tuneCache() // a failure keeps the small cache until the next check
	tuned := time.Now()
	// carried: the members of a group cut short (cutGroup), which lead
	// the next; they are answered whether or not the store is closing.
	var carried []*writeReq
	for {
		if len(carried) == 0 {
			var first *writeReq
			select {
			case first = <-db.reqs:
			case <-db.closed:
				return
			}
			carried = []*writeReq{first}
		}
		t0 := time.Now()
		db.busyMu.Lock()
		db.busySince = t0
		db.busyMu.Unlock()
		group := queue.Gather(db.reqs, carried, MaxGroup, gatherYields)
		carried = db.commitGroup(group)
		// The write connection is free between groups: prepare the
		// statements the group ran as text.
		db.wcache.prepareWanted()
		db.resetWAL()
		db.kickFiler()
		if time.Since(tuned) >= tuneCacheInterval {
			_ = db.tuneCache()
			tuned = time.Now()
		}
		// Busy: from the first request of the group to the next wait.
		db.busyMu.Lock()
		db.busy += time.Since(t0)
		db.busySince = time.Time{}
		db.busyMu.Unlock()
	}
}

// commitGroup runs a group of Update calls in one transaction (runMembers),
// commits, and answers each caller. A group cut short (cutGroup) commits
// and answers its first members; the rest, returned, lead the next group.
func (db *DB) commitGroup(group []*writeReq) (rest []*writeReq) {
	errs := make([]error, len(group))
	var inv *invalidation
	var conn *sql.Conn
	var wrote bool
	answer := func() {
		// A commit advanced the data counter already (db.commit), before
		// the read cache's invalidation: a read that finds its cache
		// stamp moved by it finds that counter moved too (kept.go).
		// Whether or not the group committed, the cached rows it
		// touched are dropped before any caller is answered; its
		// pages are counted before, too, so that a caller sees its
		// own write in WriterStats.
		// A test's stand-in for a process killed after its commit and
		// before it told the others: neither the counter nor the pending
		// word moves.
		died := testDieAfterCommit.Load() == db
		if inv != nil && !inv.empty() && !died {
			db.invalidate(inv)
		}
		if db.pending != 0 {
			if !died {
				db.gen.unpendCache(db.pending)
			}
			db.pending = 0
		}
		if conn != nil {
			db.countPages(conn)
		}
		// Counted before the callers are answered, so that a caller
		// sees its own write in WriterStats.
		db.groups.Add(1)
		db.members.Add(uint64(len(group)))
		db.dur.answer(group, errs, wrote)
	}
	fail := func(err error) { failRest(errs, err) }
	if err := db.dur.failed(); err != nil {
		fail(err)
		answer()
		return nil
	}
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	conn, err := db.write.Conn(cctx)
	cancel()
	if err != nil {
		fail(internal("connect", err))
		answer()
		return nil
	}
	defer conn.Close()
	defer db.endWrite()
	inv = &invalidation{}
	// At most two runs: a second only when the first found the head kept
	// from the last group stale (retryStale, keptHeadFor).
	for run := 0; ; run++ {
		done, n := db.runGroup(ctx, conn, group, errs, inv, &wrote, run == 0)
		if done {
			if n < len(group) {
				db.cuts.Add(1)
				rest = slices.Clone(group[n:])
				group, errs = group[:n], errs[:n]
			}
			break
		}
		db.reruns.Add(1)
		for i := range errs {
			errs[i] = nil
		}
	}
	answer()
	return rest
}

// failRest gives err to every member without an outcome yet.
func failRest(errs []error, err error) {
	for i := range errs {
		if errs[i] == nil {
			errs[i] = err
		}
	}
}

// retryStale says whether a group's end work failed with err because the
// head the group started from, kept from the last group, was stale (a
// writer that did not advance the shared counter appended meanwhile), so
// that the group should run once more with the head read from the table.
func retryStale(tx *Tx, err error, first bool) bool {
	return first && tx.headKept && custos.ErrorCode(err) == custos.ECONFLICT
}

// runGroup runs the group once in a transaction on conn and commits it,
// leaving each member's outcome in errs. It returns false, with nothing
// committed and the kept head dropped, when the group must run again
// (retryStale); first says whether this is the group's first run. n is
// how many of the group's first members the transaction ran and
// committed: fewer than all only when it was cut short for another
// process's writer (cutGroup); the others have no outcome yet.
func (db *DB) runGroup(ctx context.Context, conn *sql.Conn, group []*writeReq, errs []error, inv *invalidation, wrote *bool, first bool) (done bool, n int) {
	// Until the members have run, and when they fail as a whole, every
	// member gets the group's failure; after a cut, only those run.
	n = len(group)
	fail := func(err error) { failRest(errs[:n], err) }
	sqlTx, err := db.beginWrite(ctx, conn)
	if err != nil {
		fail(internal("begin", err))
		return true, n
	}
	tx := db.groupTx(sqlTx, db.now().UTC().Truncate(time.Microsecond), inv, wrote)
	// stale rolls back a run whose end work found the kept head stale.
	stale := func(err error) bool {
		if !retryStale(tx, err, first) {
			return false
		}
		db.forgetHead()
		if rerr := rollbackError(sqlTx.Rollback()); rerr != nil {
			fail(internal("rollback", rerr))
			return false
		}
		return true
	}
	if len(group) == 1 {
		// A group of one needs no savepoint: its failure rolls back the
		// whole transaction, which holds nothing else.
		r := group[0]
		if errs[0] = r.ctx.Err(); errs[0] != nil {
			errs[0] = internal("update", errs[0])
		} else if errs[0] = callFn(r.fn, tx); errs[0] == nil {
			if errs[0] = tx.finish(ctx); stale(errs[0]) {
				return false, n
			}
		}
		if errs[0] != nil {
			if rerr := rollbackError(sqlTx.Rollback()); rerr != nil {
				errs[0] = errors.Join(errs[0], internal("rollback", rerr))
			}
		} else if err := db.commit(tx, sqlTx); err != nil {
			errs[0] = internal("commit", err)
		}
		return true, n
	}
	// Optimistic first: the members run without savepoints, because a
	// savepoint copies every page a member changes into the sub-journal
	// (a temporary file), which cost creates about a tenth of their time.
	// Most members succeed; one that fails after a statement has left
	// writes that only a savepoint could undo, so the transaction is
	// rolled back and the whole group runs again, each member in its own
	// savepoint. Update functions may run more than once (custos.Store).
	failed, ran, gerr := runMembers(ctx, tx, group, errs, false, -1, db.cutGroup)
	if failed >= 0 {
		db.reruns.Add(1)
		skip := -1
		if rerr := sqlTx.Rollback(); endedTx(rerr) {
			// The failed member's statement ended the transaction
			// (interrupted at the query timeout, a full disk):
			// SQLite rolled it back. The member keeps its error and
			// is not run again.
			skip = failed
		} else if rerr != nil {
			fail(internal("rollback", rerr))
			return true, n
		}
		if sqlTx, err = db.beginWrite(ctx, conn); err != nil {
			fail(internal("begin", err))
			return true, n
		}
		// Same clock; the invalidations of both runs are kept.
		tx = db.groupTx(sqlTx, tx.now, inv, wrote)
		for i := range errs {
			if i != skip {
				errs[i] = nil
			}
		}
		_, ran, gerr = runMembers(ctx, tx, group, errs, true, skip, db.cutGroup)
	}
	n = ran
	if gerr != nil {
		// Nothing of this group is committed; every caller not already
		// answered with its own error gets the failure.
		fail(gerr)
		for i := range errs[:n] {
			if custos.ErrorCode(errs[i]) != custos.EINTERNAL {
				errs[i] = internal("group", errors.New("transaction aborted"))
			}
		}
		if rerr := rollbackError(sqlTx.Rollback()); rerr != nil {
			fail(internal("rollback", rerr))
		}
		return true, n
	}
	// The members' end work (their audit events) for the whole group.
	if err := tx.finish(ctx); err != nil {
		if stale(err) {
			return false, n
		}
		fail(err)
		if rerr := rollbackError(sqlTx.Rollback()); rerr != nil {
			fail(internal("rollback", rerr))
		}
		return true, n
	}
	if err := db.commit(tx, sqlTx); err != nil {
		fail(internal("commit", err))
	}
	return true, n
}

// testDieAfterCommit is a store a test has stand for a process killed
// right after its commit groups' COMMIT: they are answered without the
// shared counter or the pending word moving.
var testDieAfterCommit atomic.Pointer[DB]

// commit commits a group's transaction, keeping its audit head for the
// next group (keptHeadFor) unless the commit fails.
func (db *DB) commit(tx *Tx, sqlTx *sql.Tx) error {
	db.keepHead(tx)
	if tx.inv != nil && !tx.inv.empty() && db.pending == 0 {
		// A change of cached rows: the other processes learn of it from
		// the pending word, should this one die before invalidate.
		db.pending = db.gen.pendCache()
	}
	err := db.gen.commitData(*tx.wrote, func() error { return db.dur.commit(sqlTx.Commit) })
	if err != nil {
		db.forgetHead()
	}
	return err
}

// groupTx is the Tx of a commit group's transaction sqlTx.
func (db *DB) groupTx(sqlTx *sql.Tx, now time.Time, inv *invalidation, wrote *bool) *Tx {
	head, kept := db.keptHeadFor()
	tx := &Tx{tx: sqlTx, now: now, timeout: db.timeout, shared: true, head: &head, headKept: kept, audits: db.gen,
		unfiled: &db.auditUnfiled, aix: db.aix, cache: db.wcache, inv: inv, wrote: wrote}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	return tx
}

// The audit chain's head, kept from one commit group to the next.
//
// A group's first audit append needs the chain's head, the last event's
// seq and hash. Reading it (SELECT … ORDER BY seq DESC LIMIT 1) took a
// statement a group, about an eighth of the writer's time in a read's
// group, nearly all of it the statement's round through database/sql and
// the driver rather than SQLite's descent (BENCHMARKS.md, thirty-fourth
// session). The writer is the only writer of this process, so after a
// group commits, the head it left is the head, unless another process on
// the file appended since. Every transaction that appends advances a
// counter in the shared counters' file while it holds SQLite's write
// lock (InsertAuditEvents, Tx.raw); the writer notes the counter just
// before its COMMIT, and a later group, which also holds the write lock
// from its BEGIN IMMEDIATE, starts from the kept head only if the counter
// has not moved. A group that rolls back moved the counter with its own
// appends, so the next one reads the head again.
//
// A writer that appends without advancing the counter (the sqlite3 shell,
// a custos build from before the third counter) is caught by the log's
// key: the kept head's next seq is taken, the group's first insert fails
// with ECONFLICT, and the group runs once more with the head read from
// the table (retryStale). The chain cannot fork either way.

// keptHeadFor returns the head a group about to run starts from: the kept
// one when no transaction appended since it was kept (kept true), else
// unknown. The caller holds the write lock.
func (db *DB) keptHeadFor() (auditHead, bool) {
	if !db.head.known {
		return auditHead{}, false
	}
	if n, ok := db.gen.loadAudit(); !ok || n != db.headGen {
		return auditHead{}, false
	}
	return auditHead{known: true, seq: db.head.seq, hash: bytes.Clone(db.head.hash)}, true
}

// keepHead keeps tx's head for the next group, just before tx commits,
// with the counter as tx leaves it; forgetHead drops it, when the commit
// failed.
func (db *DB) keepHead(tx *Tx) {
	n, ok := db.gen.loadAudit()
	if !ok || !tx.head.known {
		db.forgetHead()
		return
	}
	db.head, db.headGen = *tx.head, n
}

func (db *DB) forgetHead() { db.head = auditHead{} }

// runMembers runs the group's members in tx, each member's outcome in
// errs, except the member at index skip (-1: none), which keeps its error.
// With savepoints each member runs in its own, so that a failing member's
// writes are undone alone. Without, a member that fails after running a
// statement stops the run: failed is its index (-1: none), and the group
// must run again with savepoints. A non-nil error breaks the whole
// transaction. ran is how many of the first members ran: all, unless cut
// said, before a member after skip, that the group should end with those
// before it (the rest are run by a later group).
func runMembers(ctx context.Context, tx *Tx, group []*writeReq, errs []error, savepoints bool, skip int, cut func() bool) (failed, ran int, err error) {
	for i, r := range group {
		if i > 0 && i > skip && cut() {
			return -1, i, nil
		}
		if i == skip {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			errs[i] = internal("update", err)
			continue
		}
		// The member's savepoint is opened by its first statement
		// (Tx.before): a member that only leaves work for the end, as a
		// read leaves its audit event, costs no statement here.
		tx.sp, tx.spErr = spWatch, nil
		if savepoints {
			tx.sp = spPending
		}
		head, ends := *tx.head, len(tx.ends)
		errs[i] = callFn(r.fn, tx)
		sp := tx.sp
		tx.sp = spNone
		if tx.spErr != nil {
			return -1, len(group), internal("savepoint", tx.spErr)
		}
		if errs[i] == nil {
			if sp == spOpen {
				if _, err := tx.exec(ctx, "RELEASE w"); err != nil {
					return -1, len(group), internal("release savepoint", err)
				}
			}
			continue
		}
		if sp == spRan {
			return i, i + 1, nil
		}
		// The member's audit events and end work are undone with it.
		*tx.head = head
		tx.ends = tx.ends[:ends]
		if sp == spOpen {
			if _, err := tx.exec(ctx, "ROLLBACK TO w"); err != nil {
				return -1, len(group), internal("rollback to savepoint", err)
			}
			if _, err := tx.exec(ctx, "RELEASE w"); err != nil {
				return -1, len(group), internal("release savepoint", err)
			}
		}
	}
	return -1, len(group), nil
}

// invalidate tells other processes on this file, then this process's read
// cache, that inv's rows changed.
func (db *DB) invalidate(inv *invalidation) {
	if db.rc == nil {
		db.gen.add()
		return
	}
	db.rc.advanceShared()
	db.rc.invalidate(inv)
}

// callFn runs fn, turning a panic into an error so one bad request cannot
// take the writer (and every other request) down with it.
func callFn(fn func(tx custos.Tx) error, tx *Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = internal("update", fmt.Errorf("panic in transaction: %v", v))
		}
	}()
	return fn(tx)
}

// View runs fn in a read-only transaction on the read pool; it sees one
// consistent snapshot, which begins with fn's first statement (a read the
// read cache answers whole takes no connection at all), and includes
// every write committed before View was called. Writes inside it fail
// with EINTERNAL.
func (db *DB) View(ctx context.Context, fn func(tx custos.Tx) error) error {
	if _, err := db.view(ctx, fn, false); err != nil {
		return err
	}
	// fn may have read a group whose sync is still to come (durable.go).
	return db.dur.wait(ctx)
}

// run runs fn in one transaction on a connection of pool; cache, when not
// nil, supplies prepared statements. A read-only transaction is begun by
// its first statement (Tx.before); a write transaction at once.
func (db *DB) run(ctx context.Context, pool *sql.DB, cache *stmtCache, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	var conn *sql.Conn
	tx := &Tx{now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, cache: cache, aix: db.aix}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	var wrote bool
	if opts == nil || !opts.ReadOnly {
		tx.audits = db.gen
		tx.wrote = &wrote
	}
	tx.begin = func(ctx context.Context) error {
		c, err := db.conn(ctx, pool)
		if err != nil {
			return err
		}
		var sqlTx *sql.Tx
		if opts == nil || !opts.ReadOnly {
			sqlTx, err = db.beginWrite(ctx, c)
		} else {
			sqlTx, err = c.BeginTx(ctx, opts)
		}
		if err != nil {
			return errors.Join(internal("begin", err), c.Close())
		}
		conn, tx.tx = c, sqlTx
		return nil
	}
	ended := false
	defer func() {
		// Also runs when fn panics, so the connection is never returned
		// to the pool inside a transaction.
		if conn == nil {
			return
		}
		if !ended {
			if rerr := rollbackError(tx.tx.Rollback()); rerr != nil {
				err = errors.Join(err, internal("rollback", rerr))
			}
		}
		if opts == nil || !opts.ReadOnly {
			db.endWrite()
		}
		if cerr := conn.Close(); cerr != nil && err == nil {
			err = internal("release", cerr)
		}
	}()
	if opts == nil || !opts.ReadOnly {
		if err := tx.before(ctx); err != nil {
			return err
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.finish(ctx); err != nil {
		return err
	}
	ended = true
	if conn == nil {
		return nil
	}
	if err := db.gen.commitData(wrote, tx.tx.Commit); err != nil {
		return internal("commit", err)
	}
	return nil
}

// conn returns a connection of pool. On the read pool, a connection that
// a kept snapshot holds serves first, its snapshot ended (kept.go).
func (db *DB) conn(ctx context.Context, pool *sql.DB) (*sql.Conn, error) {
	if pool == db.read {
		if s := db.kept.takeAny(); s != nil {
			if err := s.tx.Rollback(); err == nil {
				return s.conn, nil
			}
			_ = s.conn.Close()
		}
	}
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	c, err := pool.Conn(cctx)
	if err != nil {
		return nil, internal("connect", err)
	}
	return c, nil
}

// endedTx reports whether err, a ROLLBACK's, says the transaction had
// already ended. SQLite rolls a transaction back itself when a write
// statement in it is interrupted (the query timeout) or fails with a full
// disk, an I/O error or no memory; the ROLLBACK then finds none.
func endedTx(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_ERROR &&
		strings.Contains(se.Error(), "no transaction is active")
}

// rollbackError is err, a Rollback's, unless it says that there was
// nothing left to roll back.
func rollbackError(err error) error {
	if errors.Is(err, sql.ErrTxDone) || endedTx(err) {
		return nil
	}
	return err
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
