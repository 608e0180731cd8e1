package postgres

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/internal/promtext"
	"custos/internal/queue"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// DefaultWriters is how many commit groups a node runs at once when
// Options.Writers is zero.
const DefaultWriters = 2

// MaxGroup bounds how many Update calls share one commit. Each member
// that writes gets a subtransaction id; PostgreSQL keeps up to 64 of them
// per transaction in shared memory and beyond that makes every other
// snapshot look them up on disk, so a group stays below that.
const MaxGroup = 48

// writeReq is one Update waiting for a group writer.
type writeReq struct {
	ctx      context.Context
	fn       func(tx custos.Tx) error
	done     chan error
	attempts int // times fn was aborted as a deadlock victim or serialisation failure
	yields   int // times fn waited longer than memberLockWait and was rolled back
}

// memberLockWait bounds how long a member waits for a lock (lock_timeout)
// when members before it in its group ran statements. A member waiting on
// a row that another group holds until it commits, while its own group
// holds rows that other group waits for, is a deadlock that PostgreSQL
// would break only after deadlock_timeout (1 s by default); big groups
// make such cycles common. Past this wait the member yields: it is rolled
// back to its savepoint and runs again in the next group, at its head if
// it is the oldest one carried over, where its group holds no locks yet
// and it waits as long as it takes. The group's end takes the append
// lock with the session's lock_timeout (by default none).
const memberLockWait = 50 * time.Millisecond

// lockLimitSQL sets memberLockWait for the rest of a member.
var lockLimitSQL = fmt.Sprintf(`SET LOCAL lock_timeout = %d`, memberLockWait.Milliseconds())

// maxYields bounds how often a member yields before it is refused.
const maxYields = 16

// endPhase is the state of a transaction's end (Tx.runEnds).
type endPhase struct {
	known  bool   // seq and hash hold the head
	seq    int64  // the chain head as this transaction sees it,
	hash   []byte // counting the kept events
	events []*custos.AuditEvent
	// shreds are the shred entries inserted at the end, written with the
	// events (InsertShred).
	shreds []*custos.ShredEntry
}

// AtEnd registers fn to run at the end of the transaction, after the
// Update function that registered it returned nil, just before commit
// (custos.AtEnder). In a commit group the work of every member runs there
// together: the append lock is taken once and the chain head read once
// for the whole group, and the audit events are written by one statement,
// so the lock is held for two round trips and one commit flush whatever
// the group's size (see runGroup).
func (tx *Tx) AtEnd(fn func(tx custos.Tx) error) { tx.ends = append(tx.ends, fn) }

// runEnds runs the work registered with AtEnd, under the append lock.
// end, when not nil, holds the head the caller read after taking the lock
// itself; otherwise runEnds takes the lock and the first AuditHead reads
// the head. The audit events the work inserts are kept in tx.end, for the
// caller to write (flushEvents, or commitEvents with the commit).
func (tx *Tx) runEnds(ctx context.Context, end *endPhase) error {
	if end == nil {
		if err := tx.lockAppend(ctx); err != nil {
			return formatError(err, "Audit event")
		}
		end = &endPhase{}
	}
	tx.end = end
	for _, fn := range tx.ends {
		if err := fn(tx); err != nil {
			return err
		}
	}
	return nil
}

// Update runs fn in a READ COMMITTED write transaction and returns once
// that transaction is committed. fn's error undoes everything fn wrote
// and is returned unchanged.
//
// Group commit: a few writer goroutines (Options.Writers) each take the
// Update calls waiting when they start a transaction (up to MaxGroup) and
// run them in it one after the other, each inside its own SAVEPOINT, so
// that a failing fn rolls back only its own writes. The work the members
// left for the end (AtEnd: their audit appends) then runs once for the
// group, and the group commits once; every caller is answered after the
// commit. The writers run their groups' statements side by side, and
// queue only for the append lock, which each group holds for its end
// and its commit flush. Writers of this and other nodes do not wait for
// each other except on the rows they both touch and on that lock, and
// where a group of read audits alone waits in the node for this node's
// other end on its way (joinLate, latejoin.go).
//
// A member aborted as a deadlock victim or for a serialisation failure is
// rolled back to its savepoint and run again in the next group (up to
// maxAttempts), and so is one that waited longer than memberLockWait for
// a lock (up to maxYields); a group whose end or commit is aborted so is
// run again as a whole. fn must be
// safe to repeat, which core's are (they read, decide and write inside
// fn). A call waits for a writer until ctx's deadline, or at most the
// query timeout when ctx has none (queue.Hand). Once taken by a writer,
// fn runs to its end even if ctx is cancelled: the answer says whether it
// was committed.
func (db *DB) Update(ctx context.Context, fn func(tx custos.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return internal("update", err)
	}
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.queued.Add(1)
	err := db.hand(ctx, r)
	db.queued.Add(-1)
	if err != nil {
		return err
	}
	return <-r.done
}

var errClosed = queue.ClosedError("postgres")

// hand passes r to a group writer (queue.Hand: until ctx's deadline,
// or at most the query timeout without one).
func (db *DB) hand(ctx context.Context, r *writeReq) error {
	return queue.Hand(ctx, db.reqs, r, db.timeout, db.closed, errClosed)
}

// maxAttempts bounds how often a member or a group aborted by PostgreSQL
// is run again.
const maxAttempts = 4

// writer is one group-commit loop; it exits when the store is closed.
func (db *DB) writer() {
	defer db.writers.Done()
	var carry []*writeReq // members a group left to the next one
	for {
		group := make([]*writeReq, 0, MaxGroup)
		group = append(group, carry...)
		if len(group) == 0 {
			select {
			case r := <-db.reqs:
				group = append(group, r)
			case <-db.closed:
				return
			}
		}
		// No yield before the group, unlike SQLite's writer: with
		// two writers and a network round trip per statement, 3
		// interleaved pairs gave creates at c=16 +0 to +29 % but reads
		// at c=64 −6 to −14 % (BENCHMARKS.md, tenth session).
		group = queue.Gather(db.reqs, group, MaxGroup, 0)
		group = db.joinLate(group)
		carry = db.commitGroup(group)
	}
}

// commitGroup runs group in one transaction, answers the members it ran
// and returns those it left for the next transaction.
func (db *DB) commitGroup(group []*writeReq) (carry []*writeReq) {
	errs := make([]error, len(group))
	again := make([]bool, len(group))
	ran := len(group)
	deferring := true
	stale := 0
	for attempt := 1; ; attempt++ {
		clear(errs)
		clear(again)
		var err error
		ran, err = db.runGroup(group, errs, again, deferring)
		for n := db.largest.Load(); int64(ran) > n && !db.largest.CompareAndSwap(n, int64(ran)); n = db.largest.Load() {
		}
		if err == nil {
			break
		}
		var es *errStaleGen
		if errors.As(err, &es) && stale < maxAttempts {
			// The cache generation moved under a member's read: the
			// group runs again, where that member fails with
			// ErrStaleRead (runGroup) and core reads again.
			stale++
			attempt--
			continue
		}
		var de *errDeferred
		if deferring && errors.As(err, &de) {
			// A deferred statement failed, or its check did (a
			// duplicate): run the group again with every statement
			// answered where it is made, so that its member sees the
			// failure and deals with it (core names the duplicate
			// field), as outside a group.
			deferring = false
			db.undeferred.Add(1)
			attempt--
			continue
		}
		if retryable(err) && attempt < maxAttempts {
			continue
		}
		if errors.As(err, &es) {
			err = internal("read cache check", err)
		}
		// Nothing of the group is committed: every member not failed
		// with its own error gets the group's.
		for i := range errs[:ran] {
			if errs[i] == nil || again[i] {
				errs[i], again[i] = err, false
			}
		}
		break
	}
	// Counted before the callers are answered, so that a caller sees its
	// own write in GroupStats.
	db.groups.Add(1)
	db.members.Add(int64(ran))
	for i, r := range group[:ran] {
		if again[i] {
			carry = append(carry, r)
			continue
		}
		r.done <- errs[i]
	}
	return append(carry, group[ran:]...)
}

// GroupStats counts the commit-group writers' work since the store was
// opened: how many groups they ran and how many Update calls those held
// (members per group is how many writes share one commit), how many
// statements went out deferred (a group of creates' inserts, sent in one
// round trip), how many groups ran again without deferring because a
// deferred statement failed (a duplicate among the creates), and how many
// statements took the append lock (AppendLocks: a group's end takes it
// once, whatever its members append there).
//
// OneTrip counts the group ends sent in one round trip, their events
// chained on the server, and OneTripFellBack those of them that found a
// checkpoint due and ended the usual way (serverchain.go).
//
// Async counts the groups committed with synchronous_commit off: audit
// events alone, answered before their flush (Options.ReadAuditCommitted).
//
// ReadStatements and BatchedReads count the statements that read subjects
// by id or lookup key for Glances and the reads they carried
// (readbatch.go).
//
// LateJoins counts the groups of read audits that waited in the node for
// its other group's end, and LateJoined the requests they took meanwhile
// (latejoin.go).
type GroupStats struct {
	Groups, Members, Deferred, Undeferred, AppendLocks int64
	OneTrip, OneTripFellBack, Async                    int64
	ReadStatements, BatchedReads                       int64
	LateJoins, LateJoined                              int64
	// CacheHits, CacheMisses and CacheStale are ReadCacheStats'; CacheWarmed
	// counts the customers the warm-up after a start put in the cache
	// (warm.go), CacheKeysFilled the blind-index keys loaded for customers
	// reads by id put there (keyfill.go).
	CacheHits, CacheMisses, CacheStale, CacheWarmed, CacheKeysFilled int64
}

// GroupStats reports the writers' counters.
func (db *DB) GroupStats() GroupStats {
	st := GroupStats{Groups: db.groups.Load(), Members: db.members.Load(),
		Deferred: db.deferredSent.Load(), Undeferred: db.undeferred.Load(), AppendLocks: db.appendLocks.Load(),
		OneTrip: db.hint.sent.Load(), OneTripFellBack: db.hint.fellBack.Load(), Async: db.asyncCommits.Load(),
		ReadStatements: db.byID.statements.Load() + db.byKey.statements.Load(),
		BatchedReads:   db.byID.reads.Load() + db.byKey.reads.Load(),
		LateJoins:      db.lateJoins.Load(), LateJoined: db.lateJoined.Load()}
	if rc := db.rc; rc != nil {
		st.CacheHits, st.CacheMisses, st.CacheStale, st.CacheWarmed = rc.hits.Load(), rc.misses.Load(), rc.stale.Load(), rc.warmed.Load()
	}
	if db.kf != nil {
		st.CacheKeysFilled = db.kf.filled.Load()
	}
	return st
}

// WriteMetrics appends the writers' counters to w in Prometheus' text
// format (for /metrics).
func (db *DB) WriteMetrics(w io.Writer) {
	st := db.GroupStats()
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_pg_commit_groups_total", Help: "Commit groups this node's PostgreSQL writers ran.", Value: fmt.Sprint(st.Groups)},
		{Name: "custos_pg_group_members_total", Help: "Write requests in those groups.", Value: fmt.Sprint(st.Members)},
		{Name: "custos_pg_deferred_statements_total", Help: "Statements the groups sent deferred, several members' in one round trip.", Value: fmt.Sprint(st.Deferred)},
		{Name: "custos_pg_groups_undeferred_total", Help: "Groups run again without deferring after a deferred statement failed.", Value: fmt.Sprint(st.Undeferred)},
		{Name: "custos_pg_append_locks_total", Help: "Statements that took the audit append lock.", Value: fmt.Sprint(st.AppendLocks)},
		{Name: "custos_pg_one_trip_ends_total", Help: "Group ends sent in one round trip, their audit events chained on the server.", Value: fmt.Sprint(st.OneTrip)},
		{Name: "custos_pg_one_trip_fallbacks_total", Help: "Of those, ends that found a checkpoint due and ended the usual way.", Value: fmt.Sprint(st.OneTripFellBack)},
		{Name: "custos_pg_read_statements_total", Help: "Statements that read customers by id or lookup key for reads, several concurrent reads in one.", Value: fmt.Sprint(st.ReadStatements)},
		{Name: "custos_pg_batched_reads_total", Help: "Reads those statements carried.", Value: fmt.Sprint(st.BatchedReads)},
		{Name: "custos_pg_group_late_joins_total", Help: "Groups of read audits that waited in the node for its other group's end instead of at the append lock.", Value: fmt.Sprint(st.LateJoins)},
		{Name: "custos_pg_group_late_joined_total", Help: "Requests those groups took while they waited.", Value: fmt.Sprint(st.LateJoined)},
		{Name: "custos_pg_groups_committed_async_total", Help: "Commit groups of audit events alone committed before their flush (read_audit_durability committed).", Value: fmt.Sprint(st.Async)},
	})
	promtext.WriteCounters(w, []promtext.Counter{
		{Name: "custos_pg_read_cache_hits_total", Help: "Reads by id and lookups answered from this node's read cache.", Value: fmt.Sprint(st.CacheHits)},
		{Name: "custos_pg_read_cache_misses_total", Help: "Reads by id and lookups the read cache could not answer.", Value: fmt.Sprint(st.CacheMisses)},
		{Name: "custos_pg_read_cache_stale_total", Help: "Reads answered from the read cache that found the data changed since and ran again from the tables.", Value: fmt.Sprint(st.CacheStale)},
		{Name: "custos_pg_read_cache_warmed_total", Help: "Customers the warm-up after a start read into the read cache, from the audit log's latest reads.", Value: fmt.Sprint(st.CacheWarmed)},
		{Name: "custos_pg_read_cache_keys_filled_total", Help: "Blind-index keys loaded into the read cache for customers reads by id put there, so that their lookups are answered from it.", Value: fmt.Sprint(st.CacheKeysFilled)},
	})
}

// Savepoint and transaction control, sent by the simple protocol (no
// parameters), several statements in one round trip where they follow
// each other. A group that begins with a member's statement marks its
// transaction as custos's own (markBumpsSQL, readcache.go); one that
// begins only at its end (beginOnlySQL), to append audit events, changes
// no row a read cache holds.
const (
	noLockLimitSQL = `SET LOCAL lock_timeout = DEFAULT`
	beginOnlySQL   = `BEGIN ISOLATION LEVEL READ COMMITTED`
	beginSQL       = beginOnlySQL + `; ` + markBumpsSQL + `; SAVEPOINT m`
	nextSQL        = `RELEASE m; SAVEPOINT m`
	undoSQL        = `ROLLBACK TO m`
	releaseSQL     = `RELEASE m`
	commitSQL      = `COMMIT`
	rollbackSQL    = `ROLLBACK`
)

// runGroup runs the members of group in one transaction, each in the
// savepoint m, then the work they registered with AtEnd, and commits.
// It returns how many members it ran (a member that took the append lock
// itself ends the group, so that the lock is not held while the members
// after it run) and, if the transaction as a whole failed, why; errs[i]
// is member i's own error.
//
// BEGIN and the savepoints are sent lazily (Tx.pending), with a member's
// first statement: a member that runs none, such as one that only
// registers an audit append, costs no round trip, and one that fails
// before its first statement has nothing to roll back.
func (db *DB) runGroup(group []*writeReq, errs []error, again []bool, deferring bool) (ran int, err error) {
	ran = len(group)
	ctx := context.Background()
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	conn, err := db.pool.Conn(cctx)
	cancel()
	if err != nil {
		return ran, internal("connect", err)
	}
	tx := &Tx{tx: conn, now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, write: true, shared: true,
		deferring: deferring, flushed: &db.deferredSent, locks: &db.appendLocks}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	defer func() {
		if tx.changed {
			db.rc.forget()
		}
	}()
	defer func() {
		if tx.begun {
			// After a failed COMMIT the transaction may be over already;
			// ROLLBACK then only warns.
			if _, rerr := control(ctx, conn, db.timeout, rollbackSQL); rerr != nil {
				// Never hand the pool a connection inside a transaction:
				// returning ErrBadConn from Raw makes database/sql drop it.
				if derr := conn.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(derr, driver.ErrBadConn) {
					err = errors.Join(err, internal("discard connection", derr))
				}
			}
		}
		if cerr := conn.Close(); cerr != nil && !errors.Is(cerr, sql.ErrConnDone) && err == nil {
			err = internal("release", cerr)
		}
	}()

	for i, r := range group {
		if i > 0 && tx.locked {
			ran = i
			break
		}
		if err := r.ctx.Err(); err != nil {
			errs[i] = internal("update", err)
			continue
		}
		// A member that audits a read answered from the read cache is
		// run only if the cache generation it rests on is still the one
		// the node knows; the group's end checks that it is the
		// database's (readcache.go).
		var proof *custos.ReadProof
		if db.rc != nil {
			// Only a node with a cache answers from it.
			proof = custos.ReadProofFrom(r.ctx)
		}
		if proof != nil && proof.Gen != 0 && proof.Gen != db.rc.known.Load() {
			db.rc.stale.Add(1)
			errs[i] = custos.ErrStaleRead
			continue
		}
		if tx.begun {
			tx.pending = nextSQL + "; " + lockLimitSQL
		} else {
			tx.pending = beginSQL
		}
		ends, locked := len(tx.ends), tx.locked
		begun, queued := tx.begun, len(tx.deferred)
		tx.memberSent = false
		errs[i] = callFn(r.fn, tx)
		used := tx.pending == ""
		tx.pending = ""
		if tx.broken != nil {
			return ran, internal("savepoint", tx.broken)
		}
		if errs[i] == nil {
			if proof != nil && proof.Gen != 0 {
				tx.noteGen(proof.Gen)
			}
			continue
		}
		// The member's writes, and the work it left for the end, are
		// undone; the savepoint stays for the next member. What it
		// queued and did not send is dropped; if it sent nothing, not
		// even its transaction control went out.
		tx.ends, tx.locked = tx.ends[:ends], locked
		if tx.memberSent {
			// A send emptied the queue: what it holds now came after,
			// from this member.
			tx.deferred = nil
		} else {
			tx.deferred = tx.deferred[:queued]
			used, tx.begun = false, begun
		}
		if used {
			if _, err := control(ctx, conn, db.timeout, undoSQL); err != nil {
				return ran, internal("rollback to savepoint", err)
			}
		}
		// A deadlock victim runs again in the next group, not this one:
		// the cycle it was in may go through rows that earlier members
		// of this group hold until it commits. So does a member that
		// waited too long for a lock, first in that group.
		switch {
		case retryable(errs[i]):
			if r.attempts++; r.attempts < maxAttempts {
				again[i] = true
			}
		case lockTimeout(errs[i]):
			if r.yields++; r.yields < maxYields {
				again[i] = true
			}
		}
	}
	if len(tx.ends) == 0 {
		if err := tx.flushDeferred(ctx); err != nil {
			return ran, err
		}
		if !tx.begun {
			return ran, nil // no member ran a statement
		}
		end := releaseSQL
		if tx.changed {
			end += "; " + bumpGenSQL
		}
		tag, err := control(ctx, conn, db.timeout, end+"; "+commitSQL)
		tx.begun = err != nil
		return ran, commitResult(tag, err)
	}
	// A group whose members sent no statement writes nothing but what
	// their end work appends: audit events and checkpoints (a read's
	// data came from a View). With Options.ReadAuditCommitted, and no
	// shred entry among them, it commits with synchronous_commit off.
	// A member's data came from synchronous commits, which PostgreSQL
	// makes visible only once flushed, so no answer shows a write a
	// crash could take back; what a crash can take is these events,
	// together with every later one (the WAL is flushed in order, so
	// the chain stays whole).
	tx.async = db.asyncAudit && !tx.begun && len(tx.deferred) == 0
	// The group's end holds the append lock for two round trips and the
	// commit flush: one releases the last savepoint (or begins the
	// transaction), takes the lock and reads the chain head; the other
	// writes the group's audit events and commits.
	first := releaseSQL + "; " + noLockLimitSQL
	if !tx.begun {
		first = beginOnlySQL
	}
	tx.begun = true
	db.ends.begin()
	defer db.ends.end()
	var end *endPhase
	switch outcome, tag, err := tx.oneTripEnd(ctx, conn, first, &db.hint); outcome {
	case oneTripEnded:
		tx.begun = err != nil
		var de *errDeferred
		if errors.As(err, &de) {
			return ran, err // commitGroup runs the group again without deferring
		}
		if es, ok := staleGenOf(err); ok {
			return ran, db.staleGen(es)
		}
		return ran, db.counted(tx.async, commitResult(tag, err))
	case oneTripFellBack:
		first = oneTripRollbackSQL
	}
	if len(tx.deferred) > 0 {
		// The deferred statements go in the same round trip.
		end, err = tx.deferredLockHead(ctx, first, tx.endSQL())
	} else {
		end, err = lockHead(ctx, conn, db.timeout, first, tx.endSQL())
	}
	if err != nil {
		var de *errDeferred
		if errors.As(err, &de) {
			return ran, err
		}
		if es, ok := staleGenOf(err); ok {
			return ran, db.staleGen(es)
		}
		return ran, formatError(err, "Audit event")
	}
	tx.locked = true
	tx.locks.Add(1)
	if err := tx.runEnds(ctx, end); err != nil {
		return ran, err
	}
	tx.async = tx.async && len(end.shreds) == 0
	if len(end.events) > flushBatch || len(end.shreds) > flushBatch {
		if err := tx.flushEvents(ctx); err != nil {
			return ran, err
		}
	}
	tag, err := commitEvents(ctx, conn, db.timeout, end, tx.async)
	if err == nil && tag == "COMMIT" && end.known {
		db.hint.set(end.seq, end.hash)
	}
	tx.begun = err != nil
	return ran, db.counted(tx.async, commitResult(tag, err))
}

// asyncCommitSQL lets a group of audit events alone commit without
// waiting for its commit record's flush (Options.ReadAuditCommitted).
const asyncCommitSQL = `SET LOCAL synchronous_commit = off`

// counted counts a group committed with asyncCommitSQL, when async says
// it was sent and err that the group committed, and returns err.
func (db *DB) counted(async bool, err error) error {
	if async && err == nil {
		db.asyncCommits.Add(1)
	}
	return err
}

// headHexSQL reads the chain head, the hash in hex: lockHead reads it as
// text.
const headHexSQL = `SELECT seq, encode(hash, 'hex') FROM audit_events ORDER BY seq DESC LIMIT 1`

// staleGen learns the cache generation a group's check found, and
// returns es for commitGroup, which runs the group again.
func (db *DB) staleGen(es *errStaleGen) error {
	if db.rc != nil {
		db.rc.learn(es.gen)
	}
	return es
}

// lockHead runs first (releasing the savepoint m, or beginning the
// transaction), takes the append lock, runs after (the read cache's
// statements, Tx.endSQL) and reads the chain head, in one
// round trip. The three statements go in one simple
// query; under READ COMMITTED each takes its snapshot when it starts, so
// the head is read after the lock is granted and sees what the previous
// holder committed.
func lockHead(ctx context.Context, conn *sql.Conn, timeout time.Duration, first string, after []string) (*endPhase, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	end := &endPhase{known: true}
	err := conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		q := append(append([]string{first, lockAppendSQL}, after...), headHexSQL)
		results, err := c.PgConn().Exec(ctx, strings.Join(q, "; ")).ReadAll()
		if err != nil {
			return err
		}
		rows := results[len(results)-1].Rows
		if len(rows) == 0 {
			return nil // an empty chain
		}
		if len(rows) != 1 || len(rows[0]) != 2 {
			return fmt.Errorf("audit head: unexpected result shape")
		}
		if end.seq, err = strconv.ParseInt(string(rows[0][0]), 10, 64); err != nil {
			return fmt.Errorf("audit head seq: %w", err)
		}
		return end.setHash(string(rows[0][1]))
	})
	return end, err
}

// setHash sets the head's hash from headHexSQL's text.
func (end *endPhase) setHash(hexHash string) error {
	hash, err := hex.DecodeString(hexHash)
	if err != nil {
		return fmt.Errorf("audit head hash: %w", err)
	}
	end.hash = orNil(hash)
	return nil
}

// deferredLockHead is lockHead after the deferred statements, in one pgx
// batch: first (releasing the savepoint m), the append lock and the chain
// head follow them. Each statement of the batch has its own snapshot
// under READ COMMITTED, as in lockHead's simple query.
func (tx *Tx) deferredLockHead(ctx context.Context, first string, after []string) (*endPhase, error) {
	end := &endPhase{known: true}
	tail := append(append(append(strings.Split(first, "; "), lockAppendSQL), after...), headHexSQL)
	err := tx.sendDeferred(ctx, tail, func(br pgx.BatchResults) error {
		for range tail[:len(tail)-1] {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		var hexHash string
		switch err := br.QueryRow().Scan(&end.seq, &hexHash); {
		case errors.Is(err, pgx.ErrNoRows):
			return nil // an empty chain
		case err != nil:
			return fmt.Errorf("audit head: %w", err)
		}
		return end.setHash(hexHash)
	})
	return end, err
}

// commitEvents writes end's shred entries and events (at most flushBatch
// of each) and commits, in one round trip: the statements go in one
// pipeline, and if an insert fails PostgreSQL skips the rest. With async
// the transaction commits with synchronous_commit off (asyncCommitSQL).
// It sets the entries' Seqs and returns the COMMIT's command tag.
func commitEvents(ctx context.Context, conn *sql.Conn, timeout time.Duration, end *endPhase, async bool) (tag string, err error) {
	if len(end.events) == 0 && len(end.shreds) == 0 {
		// Sent already (a checkpoint's insert flushes them first).
		if async {
			return control(ctx, conn, timeout, asyncCommitSQL+"; "+commitSQL)
		}
		return control(ctx, conn, timeout, commitSQL)
	}
	var eargs []any
	if len(end.events) > 0 {
		if eargs, err = eventArgs(end.events); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		b := &pgx.Batch{}
		if len(end.shreds) > 0 {
			b.Queue(insertShredsSQL, shredArgs(end.shreds)...)
		}
		if len(end.events) > 0 {
			b.Queue(insertEventsSQL, eargs...)
		}
		if async {
			b.Queue(asyncCommitSQL)
		}
		b.Queue(commitSQL)
		br := c.SendBatch(ctx, b)
		// Every result is read, the COMMIT's included: the server runs
		// the whole pipeline whatever this side makes of a result, so
		// the COMMIT's tag, not the reading of the entries' seqs, says
		// whether the transaction committed. Once it has, a failure to
		// read the seqs back leaves them 0 rather than failing a write
		// that is stored (its caller would void ledger entries of
		// erasures that happened).
		var serr, ierr error
		if len(end.shreds) > 0 {
			serr = readSeqs(br, end.shreds)
		}
		if len(end.events) > 0 {
			_, ierr = br.Exec()
		}
		if async {
			if _, aerr := br.Exec(); ierr == nil {
				ierr = aerr
			}
		}
		tag, err = commitOutcome(br, serr, ierr)
		return err
	})
	return tag, err
}

// commitOutcome reads the COMMIT that ends br, closes br, and says how
// the group's end went, given how its shred entries' insert (serr) and
// its events' insert (ierr) did: the COMMIT's tag decides.
func commitOutcome(br pgx.BatchResults, serr, ierr error) (string, error) {
	ct, cerr := br.Exec()
	tag := ct.String()
	closeErr := br.Close()
	switch {
	case cerr == nil && closeErr == nil && tag == "COMMIT":
		return tag, nil
	case serr != nil:
		return tag, errors.Join(formatError(serr, "Shred entry"), closeErr)
	case ierr != nil:
		return tag, errors.Join(formatError(ierr, "Audit event"), closeErr)
	}
	return tag, errors.Join(cerr, closeErr)
}

// pgxConn returns the pgx connection under a database/sql one.
func pgxConn(dc any) (*pgx.Conn, error) {
	c, ok := dc.(*stdlib.Conn)
	if !ok {
		return nil, fmt.Errorf("unexpected driver connection %T", dc)
	}
	return c.Conn(), nil
}

// commitResult maps the outcome of a COMMIT: PostgreSQL answers COMMIT
// of a failed transaction with ROLLBACK and no error.
func commitResult(tag string, err error) error {
	if err != nil {
		return formatError(fmt.Errorf("commit: %w", err), "Transaction")
	}
	if tag != "COMMIT" {
		return internal("commit", fmt.Errorf("transaction rolled back (%s)", tag))
	}
	return nil
}

// control runs statements without parameters on conn in one round trip
// and returns the command tag of the last.
func control(ctx context.Context, conn *sql.Conn, timeout time.Duration, query string) (tag string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = conn.Raw(func(dc any) error {
		c, err := pgxConn(dc)
		if err != nil {
			return err
		}
		ct, err := c.Exec(ctx, query)
		tag = ct.String()
		return err
	})
	return tag, err
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
