package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// Kept snapshots: a read of one customer (Glance) may run on the read
// transaction of an earlier one, still open, instead of a new one.
//
// Why: SQLite empties a connection's page cache whenever it begins a
// transaction and finds that the WAL changed since its last one. Under
// load every read's audit event is a commit, so every read that missed
// the read cache walked its B-trees from their roots, one pread a page:
// about 20 pages a read at 10,000,000 customers (BENCHMARKS.md, fifteenth
// and twentieth sessions). A transaction kept open keeps its snapshot and
// its pages, so the next read on that connection finds the upper levels
// of the trees in memory, and spares BEGIN and COMMIT besides.
//
// When a kept snapshot may answer: a snapshot shows the database as it
// was when it began, so it may answer a read only if no commit since then
// changed anything the read could see. Audit events are committed by
// every read, and a customer read never reads the audit log, so the rule
// is about everything else: every process that commits a change to
// anything but the audit log advances the second counter of the shared
// file (sharedGen.addData) after the commit and before answering its
// callers. A snapshot notes the counter before it begins, and each
// statement run on it first checks that the counter has not moved: a
// write answered before the read began has then moved it, or is in the
// snapshot. A statement of the audit log, or a moved counter, makes the
// read run again from its start in View (custos.Glancer allows it).
//
// Bounds: a kept snapshot holds a read mark in the WAL, which keeps the
// checkpointer from copying the frames after it and the writer from
// starting the WAL again. So a snapshot is kept for at most keepFor after
// it began; the checkpointer ends those older before each round; the
// writer ends them all before it starts the WAL again, and Checkpoint
// and Close before they run. At most readConns-1 wait at once, so that
// the read pool always has a connection for preparing statements; a View
// that finds none free in the pool takes a waiting one's connection.

// keepFor is how long after it began a snapshot may answer reads. A
// variable so that tests can shorten or lengthen it.
var keepFor = 100 * time.Millisecond

// A keptSnap is an open read transaction waiting for the next read.
type keptSnap struct {
	conn  *sql.Conn
	tx    *sql.Tx
	snap  uint64    // the shared data counter before it began
	began time.Time // when it began
}

// keptSnaps holds the snapshots waiting; off counts the pauses in force
// (a WAL restart, Checkpoint, Close), during which nothing is kept.
type keptSnaps struct {
	mu   sync.Mutex
	free []*keptSnap
	off  int

	// Counters for tests and KeptStats: reads that ran on a kept
	// snapshot, reads that began their own, and reads a kept snapshot
	// could not answer that ran again in View.
	reused, begun, stale atomic.Uint64
}

// KeptStats counts how reads of one customer (Glance) ran.
type KeptStats struct {
	Reused, Begun, Stale uint64
}

// KeptStats reports the kept snapshots' counters.
func (db *DB) KeptStats() KeptStats {
	return KeptStats{Reused: db.kept.reused.Load(), Begun: db.kept.begun.Load(), Stale: db.kept.stale.Load()}
}

// take returns a waiting snapshot that may answer a read begun now, or
// nil. Those that may not are ended on the way.
func (k *keptSnaps) take(gen *sharedGen, now time.Time) *keptSnap {
	var found *keptSnap
	var old []*keptSnap
	k.mu.Lock()
	for len(k.free) > 0 && found == nil {
		s := k.free[len(k.free)-1]
		k.free = k.free[:len(k.free)-1]
		if now.Sub(s.began) < keepFor && s.snap == gen.loadData() {
			found = s
		} else {
			old = append(old, s)
		}
	}
	k.mu.Unlock()
	for _, s := range old {
		s.end()
	}
	return found
}

// takeAny returns any waiting snapshot, for its connection, or nil.
func (k *keptSnaps) takeAny() *keptSnap {
	k.mu.Lock()
	defer k.mu.Unlock()
	if n := len(k.free); n > 0 {
		s := k.free[n-1]
		k.free = k.free[:n-1]
		return s
	}
	return nil
}

// put keeps s for the next read if it is young enough and there is room;
// otherwise it ends it.
func (k *keptSnaps) put(s *keptSnap) {
	k.mu.Lock()
	if k.off == 0 && time.Since(s.began) < keepFor && len(k.free) < readConns-1 {
		k.free = append(k.free, s)
		s = nil
	}
	k.mu.Unlock()
	if s != nil {
		s.end()
	}
}

// expire ends the snapshots that began keepFor or longer ago.
func (k *keptSnaps) expire() {
	k.drop(func(s *keptSnap) bool { return time.Since(s.began) >= keepFor })
}

// pause ends every waiting snapshot and keeps none until resume: for
// whatever needs every reader out of the WAL (a WAL restart, a TRUNCATE
// checkpoint, Close). A read running meanwhile ends its own snapshot.
func (k *keptSnaps) pause() {
	k.mu.Lock()
	k.off++
	k.mu.Unlock()
	k.drop(func(*keptSnap) bool { return true })
}

// drop ends the waiting snapshots for which gone reports true, outside
// the lock.
func (k *keptSnaps) drop(gone func(*keptSnap) bool) {
	var old []*keptSnap
	k.mu.Lock()
	live := k.free[:0]
	for _, s := range k.free {
		if gone(s) {
			old = append(old, s)
		} else {
			live = append(live, s)
		}
	}
	clear(k.free[len(live):])
	k.free = live
	k.mu.Unlock()
	for _, s := range old {
		s.end()
	}
}

func (k *keptSnaps) resume() {
	k.mu.Lock()
	k.off--
	k.mu.Unlock()
}

// end ends s's transaction and gives its connection back to the pool.
// A read-only transaction has nothing to lose: errors only mean that the
// connection is gone, which the pool then replaces.
func (s *keptSnap) end() {
	_ = s.tx.Rollback()
	_ = s.conn.Close()
}

// Glance runs fn as View does, except that it may run it on a snapshot
// kept from an earlier read (custos.Glancer): if that snapshot cannot
// answer one of fn's statements, fn runs again from its start in View.
// A read by id or by lookup key is one statement (readSubject), so a
// kept snapshot spares it BEGIN and COMMIT, and most of its page reads.
func (db *DB) Glance(ctx context.Context, fn func(tx custos.Tx) error) error {
	tx, err := db.view(ctx, fn, true)
	if tx != nil && tx.stale {
		db.kept.stale.Add(1)
		return db.View(ctx, fn)
	}
	return err
}

var _ custos.Glancer = (*DB)(nil)

// errStale is what a statement a kept snapshot cannot answer fails with;
// Glance then runs fn again in View.
var errStale = &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: errors.New("sqlite: kept snapshot out of date")}

// checkKept fails a statement of a transaction on a kept snapshot when a
// commit since the snapshot began changed anything but the audit log, or
// when the statement reads the audit log.
func (tx *Tx) checkKept(query string) error {
	if !tx.kept {
		return nil
	}
	if tx.gen.loadData() != tx.snap || readsAudit(query) {
		tx.stale = true
		return errStale
	}
	return nil
}

// auditTables matches statements about the audit log's tables
// (audit_events, audit_checkpoints).
var auditTables = regexp.MustCompile(`(?i)\baudit_\w+`)

var auditReads sqlutil.QueryKinds

// readsAudit reports whether query names a table of the audit log.
func readsAudit(query string) bool {
	return auditReads.Of(query, auditTables.MatchString)
}

// auditWrites matches the statements that change the audit log alone:
// inserts of events. (Their index is in a file of its own, auditindex.go.)
var auditWrites = regexp.MustCompile(`(?is)^\s*INSERT\s+(OR\s+\w+\s+)?INTO\s+"?audit_events"?[\s(]`)

var dataKinds sqlutil.QueryKinds

// changesData reports whether query may change anything but the audit
// log: every statement but a SELECT and an insert into the audit log's
// tables. Erring towards yes only ends kept snapshots sooner.
func changesData(query string) bool {
	return dataKinds.Of(query, func(query string) bool {
		return !selectOnly.MatchString(query) && !auditWrites.MatchString(query)
	})
}

// selectOnly matches a plain SELECT (SQLite's SELECT changes nothing; a
// WITH may lead to a write, and counts as one).
var selectOnly = regexp.MustCompile(`(?is)^\s*SELECT\s`)

// view runs fn in a read-only transaction on the read pool. With keep, the
// transaction may be a kept snapshot, and a snapshot young enough is kept
// for the next read when fn succeeds; the Tx is returned so that Glance
// can see whether a kept snapshot failed a statement (Tx.stale).
//
// The transaction begins with fn's first statement: a read the read cache
// answers whole takes no connection at all.
func (db *DB) view(ctx context.Context, fn func(tx custos.Tx) error, keep bool) (*Tx, error) {
	if err := db.checkOpen(); err != nil {
		return nil, err
	}
	var stamp cacheStamp
	if db.rc != nil {
		// Before the snapshot: fills are checked against this stamp.
		stamp = db.rc.begin()
	}
	tx := &Tx{now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, cache: db.rcache, view: true, aix: db.aix}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	if db.rc != nil {
		tx.rc, tx.stamp = db.rc, stamp
	}
	var snap *keptSnap
	tx.begin = func(ctx context.Context) error {
		if keep {
			if snap = db.kept.take(db.gen, time.Now()); snap != nil {
				db.kept.reused.Add(1)
				tx.tx, tx.gen, tx.snap, tx.kept = snap.tx, db.gen, snap.snap, true
				return nil
			}
			db.kept.begun.Add(1)
		}
		// Noted before the transaction begins: its snapshot then holds
		// every change that advanced the counter up to this value.
		data := db.gen.loadData()
		c, err := db.conn(ctx, db.read)
		if err != nil {
			return err
		}
		// Not bound to ctx: database/sql rolls a transaction back when
		// its context ends, and a kept one outlives this read's request.
		// Each statement still runs under ctx (Tx.stmtCtx).
		sqlTx, err := c.BeginTx(context.WithoutCancel(ctx), &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return errors.Join(internal("begin", err), c.Close())
		}
		snap = &keptSnap{conn: c, tx: sqlTx, snap: data, began: time.Now()}
		tx.tx = sqlTx
		return nil
	}
	returned := false
	defer func() {
		if !returned && snap != nil { // fn panicked
			snap.end()
		}
	}()
	err := fn(tx)
	if err == nil {
		err = tx.finish(ctx)
	}
	returned = true
	if snap != nil {
		if err == nil && keep && !tx.stale {
			db.kept.put(snap)
		} else {
			if rerr := rollbackError(snap.tx.Rollback()); rerr != nil && err == nil {
				err = internal("rollback", rerr)
			}
			if cerr := snap.conn.Close(); cerr != nil && err == nil {
				err = internal("release", cerr)
			}
		}
	}
	// The connection is back in the pool: prepare what ran as text.
	if db.rcache != nil && db.rcache.pending() {
		db.rcache.prepareWanted()
	}
	return tx, err
}
