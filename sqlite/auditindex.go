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
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"custos"
	"custos/internal/sqlutil"
)

// The audit log's index, filed in blocks (migration 0009), in a file of
// its own (since migration 0016).
//
// An index entry lands on a page of its B-tree, and SQLite's WAL takes
// whole pages: with the indexes on subject_id, actor_id, action and time,
// every read's audit event wrote a random 4 KiB subject leaf and the last
// leaf of three more trees, most of a read's commit (BENCHMARKS.md,
// thirteenth session). So committed events are filed into audit_blocks
// afterwards, auditFileChunk at a time, sorted: keyed by (block, key,
// seq) with a block of 2^auditBlockShift consecutive events, one filing
// writes only into the pages of the blocks it covers. Until filed, an
// event is found by a scan of the events past the mark, audit_index.filed
// (FindAuditEvents).
//
// Who files: a goroutine of every process, the filer, in a transaction
// on the index file that reads where filing stopped, files from there and
// moves the mark. The index is in a file of its own, custos.db-auditindex,
// with its own WAL and write lock, so that filing never holds the store's
// one write lock. Until the fifty-eighth session the writer filed between
// its groups, holding that lock 5–9 ms a chunk, and every write waited,
// a read's audit event included: a read's p99 at 16 clients was about that
// hold plus a millisecond (BENCHMARKS.md, fifty-sixth and fifty-seventh
// sessions). Filing is an optimisation only: a failure leaves the events
// to the scan and to the next round. The file holds derived data and is
// in no backup; a store without it, or with one that is not its own,
// files its whole log again (reconcile).

// auditBlockShift sets the block size: 1,024 events, a filing's chunk
// (auditFileChunk). The filer's filings end where a chunk ends, on a
// block's edge, so each files whole blocks after the last one filed: the
// B-tree grows at its right edge, and of the pages filed before only the
// last ones are written again. Until the fifty-sixth session a filing
// ended at the head, and the next one finished that block, writing its
// pages again; reads' p99 is 5–15 % lower since (BENCHMARKS.md). A forced
// filing (a backlog while idle, a repair) still ends at the head, and
// the next one finishes that chunk.
//
// With blocks of 16,384 events (migrations 0009 to 0014), every chunk's
// subject entries went to random leaves of its block, up to some 250,
// rewritten by each of the block's sixteen chunks, and its actor, action
// and time entries split pages in the middle of the tree. The smaller
// blocks write 16–20 % fewer WAL pages a read and gave reads a 10–17 %
// lower p99 (BENCHMARKS.md, fifty-fifth session). Migration 0015 filed
// the existing events again in blocks of this size.
const auditBlockShift = 10

// auditFileChunk is how many unfiled events make the writer kick the
// filer after a group; the filer then files whole chunks, up to the last
// seq before a multiple of auditFileChunk, a block's edge
// (auditBlockShift), and at most auditFileIdleMax events a transaction.
// Filing takes 5–9 µs an event. A backlog (a store loaded from a dump, or
// whose index file is new, starts with every event unfiled) is filed once
// no group has committed for auditIdleWait, up to auditFileIdleMax at a
// time, so that it does not take the processors from requests.
// auditFilerRuns is false in tests that file by hand. Variables so that
// tests can file small logs.
var (
	auditIdleWait          = 10 * time.Millisecond
	auditFileChunk   int64 = 1024
	auditFileIdleMax int64 = 16 * 1024
	auditFilerRuns         = true
)

// Each event's entries: its subject, actor, action and time, under these
// prefixes. Times are microseconds as 20 digits, so that keys sort as
// the times do; a time before 1970, which custos never writes, is filed
// as 0.
const (
	auditKeySubject = "s"
	auditKeyActor   = "a"
	auditKeyAction  = "c"
	auditKeyTime    = "t"
)

// auditEntryKeys are the SQL expressions of an audit_events row's four
// keys, which filing stores and CheckAuditIndex looks for (and migration
// 0009 wrote alike). auditTimeKey is the time's in Go.
var auditEntryKeys = []string{
	`'` + auditKeySubject + `' || subject_id`,
	`'` + auditKeyActor + `' || actor_id`,
	`'` + auditKeyAction + `' || action`,
	`'` + auditKeyTime + `' || printf('%020d', max(time, 0))`,
}

// auditTimeKey is the key of time t.
func auditTimeKey(t time.Time) string {
	return fmt.Sprintf("%s%020d", auditKeyTime, max(sqlutil.Micros(t), 0))
}

// AuditIndexSuffix names the audit index's file: the store's path and
// this (custos.db-auditindex, with its own -wal and -shm while open).
const AuditIndexSuffix = "-auditindex"

// auditIndex is the audit log's index, in a SQLite file of its own: the
// table audit_blocks, and audit_index's one row, with the seq every event
// up to is filed under (filed) and the hash of the store's first audit
// event (first_hash), which ties the file to its store's log.
type auditIndex struct {
	path string
	// mu holds the filer's connection, conn, on which the index file is
	// main and the store's file is attached, as m, to be read. Filing,
	// the check and the repair run on it.
	mu   sync.Mutex
	pool *sql.DB // conn's, of one connection
	conn *sql.Conn
	// read is the queries' pool, on the index file alone.
	read *sql.DB
	// kick wakes the filer; done is closed when it has stopped (nil
	// when none was started).
	kick chan struct{}
	done chan struct{}
	// opened says what opening found to mend, for the node's log ("":
	// the store's own index, up to date or behind).
	opened string
}

// auditIndexDSN is the connection string of the index file's filer
// connection (write) or of its queries' pool. synchronous is NORMAL: the
// file holds derived data only, and what a power loss takes from it is
// filed again (open checks it against the store's log: reconcile).
func auditIndexDSN(path string, write bool) string {
	dsn := path + "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	if write {
		return dsn + "&_pragma=temp_store(MEMORY)"
	}
	return dsn + "&_query_only=on"
}

// openAuditIndex opens the store's audit index file, creating it if
// needed, and reconciles it with the store's log, before the writer
// starts (Open). A file SQLite finds damaged, or that is no database, is
// moved aside (to the name plus ".damaged-" and the time, with its WAL,
// for whoever wants to see what happened to it) and a new one begun: the
// index is derived, and the filer files the log again.
func (db *DB) openAuditIndex(ctx context.Context) error {
	err := db.openAuditIndexFile(ctx)
	if !isDamaged(err) {
		return err
	}
	if cerr := db.aix.close(); cerr != nil {
		return errors.Join(err, cerr)
	}
	aside := fmt.Sprintf("%s.damaged-%s", db.aix.path, db.now().UTC().Format("20060102T150405.000000000"))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if rerr := os.Rename(db.aix.path+suffix, aside+suffix); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			return errors.Join(err, internal("move the damaged audit index aside", rerr))
		}
	}
	if err := db.openAuditIndexFile(ctx); err != nil {
		return err
	}
	db.aix.opened = fmt.Sprintf("the file was damaged (%v) and is moved aside to %s; %s", err, filepath.Base(aside), db.aix.opened)
	return nil
}

// AuditIndexOpened says what opening the store found to mend in its audit
// index file (reconcile), for the node's log: "" when the file was the
// store's own and not ahead of its log.
func (db *DB) AuditIndexOpened() string {
	if db.aix == nil {
		return ""
	}
	return db.aix.opened
}

// isDamaged says whether err is SQLite's finding that a file is damaged
// (SQLITE_CORRUPT) or no database (SQLITE_NOTADB).
func isDamaged(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && (se.Code()&0xff == sqlite3.SQLITE_CORRUPT || se.Code()&0xff == sqlite3.SQLITE_NOTADB)
}

// openAuditIndexFile is openAuditIndex's one try.
func (db *DB) openAuditIndexFile(ctx context.Context) error {
	ix := &auditIndex{path: db.path + AuditIndexSuffix}
	db.aix = ix // Close closes what opened
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	var err error
	if ix.pool, err = sql.Open("sqlite", auditIndexDSN(ix.path, true)); err != nil {
		return internal("open audit index", err)
	}
	ix.pool.SetMaxOpenConns(1)
	if ix.conn, err = ix.pool.Conn(ctx); err != nil {
		return internal("open audit index", err)
	}
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS audit_blocks (block INTEGER NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
			PRIMARY KEY (block, key, seq)) STRICT, WITHOUT ROWID`,
		`CREATE TABLE IF NOT EXISTS audit_index (one INTEGER PRIMARY KEY CHECK (one = 1), filed INTEGER NOT NULL,
			first_hash BLOB) STRICT`,
		`INSERT INTO audit_index (one, filed) VALUES (1, 0) ON CONFLICT (one) DO NOTHING`,
	} {
		if _, err := ix.conn.ExecContext(ctx, q); err != nil {
			return internal("open audit index", err)
		}
	}
	if _, err := ix.conn.ExecContext(ctx, `ATTACH DATABASE ? AS m`, db.path); err != nil {
		return internal("open audit index", err)
	}
	behind, err := ix.reconcile(ctx)
	if err != nil {
		return internal("open audit index", err)
	}
	db.auditBehind.Store(behind)
	if ix.read, err = sql.Open("sqlite", auditIndexDSN(ix.path, false)); err != nil {
		return internal("open audit index", err)
	}
	ix.read.SetMaxOpenConns(readConns)
	ix.read.SetMaxIdleConns(readConns)
	return nil
}

// reconcile makes the index describe the store's log. A file that is not
// this log's (another store's, or one kept beside a restored database:
// its first event's hash differs) is emptied, to be filed again. Entries
// past the log's head are deleted and the mark lowered to it: the filer
// files events once committed, before the syncer's fsync, so after a
// power loss the index may hold events the store's file lost, and their
// seqs are then given to other events.
func (ix *auditIndex) reconcile(ctx context.Context) (behind int64, err error) {
	err = ix.write(ctx, func(tx *sql.Tx) error {
		var filed, head int64
		var stored, first []byte
		if err := tx.QueryRowContext(ctx, `SELECT filed, first_hash, (SELECT hash FROM m.audit_events ORDER BY seq LIMIT 1),
			(SELECT coalesce(max(seq), 0) FROM m.audit_events) FROM audit_index`).Scan(&filed, &stored, &first, &head); err != nil {
			return err
		}
		ix.opened, behind = "", head-min(filed, head)
		if !bytes.Equal(stored, first) {
			behind = head
			if _, err := tx.ExecContext(ctx, `DELETE FROM audit_blocks`); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE audit_index SET filed = 0, first_hash = ?`, first); err != nil {
				return err
			}
			switch {
			case stored != nil:
				ix.opened = fmt.Sprintf("the file was another audit log's and is emptied; %d events to file in the background", head)
			case head > 0:
				ix.opened = fmt.Sprintf("a new index; %d events to file in the background", head)
			}
			return nil
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_blocks WHERE block >= ? AND seq > ?`, head>>auditBlockShift, head); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_index SET filed = min(filed, ?)`, head); err != nil {
			return err
		}
		if filed > head {
			ix.opened = fmt.Sprintf("the index went past the log's last event (filed to %d, the log ends at %d: events lost to a power loss, or a database restored older) and is cut back to it", filed, head)
		}
		return nil
	})
	return behind, err
}

// write runs fn in a transaction on the filer's connection. Its first
// statement writes to the index file, so that the transaction takes the
// index file's write lock at once, waiting for another process's filer
// under the busy timeout, and never the store's: it only reads that.
// (BEGIN IMMEDIATE would take the write lock of every attached file.)
func (ix *auditIndex) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	tx, err := ix.conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE audit_index SET filed = filed`); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// close closes the index's connections, once the filer has stopped.
// Close may be called again: the connection then says it is closed
// already, and the pools nothing. A call after it fails as the store's
// own pools do, with the connection or pool closed.
func (ix *auditIndex) close() error {
	var errs []error
	if ix.conn != nil {
		if err := ix.conn.Close(); !errors.Is(err, sql.ErrConnDone) {
			errs = append(errs, err)
		}
	}
	for _, pool := range []*sql.DB{ix.pool, ix.read} {
		if pool != nil {
			errs = append(errs, pool.Close())
		}
	}
	return errors.Join(errs...)
}

// filer files the audit index while the store is open: when the writer
// kicks it, after a group once auditFileChunk events wait, every whole
// chunk; and a backlog (on start, or one a filing left)
// once no group has committed for auditIdleWait, up to the head. It runs
// beside the writer: filing takes the index file's lock, and no write
// waits for it (BENCHMARKS.md, fifty-eighth session).
func (db *DB) filer() {
	defer close(db.aix.done)
	backlog := true
	for {
		var idle <-chan time.Time
		groups := db.groups.Load()
		if backlog {
			idle = time.After(auditIdleWait)
		}
		select {
		case <-db.closed:
			return
		case <-db.aix.kick:
			// Every whole chunk, auditFileIdleMax at a time: groups
			// larger than that (an import's, a seed's) kick once. Past
			// one transaction's worth, that is a backlog (after an
			// upgrade or a restore) while writes go on: a pause as long
			// as each filing took, so that the filer takes at most half
			// a processor from the requests (a million events about
			// 12 s, some 80,000 events a second, far more than writes
			// add), and it files at full speed once no group commits.
			for {
				t0 := time.Now()
				n, rest, err := db.fileAuditEvents(false, auditFileIdleMax)
				if err != nil || n == 0 || rest < auditFileChunk || !filerPause(db.closed, time.Since(t0)) {
					backlog = backlog || rest > 0
					break
				}
			}
		case <-idle:
			if db.groups.Load() != groups {
				continue // writes came: not idle
			}
			_, rest, err := db.fileAuditEvents(true, auditFileIdleMax)
			backlog = err == nil && rest > 0
		}
	}
}

// filerPause waits d, and says false if the store closes first. A
// variable so that a test can see the pauses.
var filerPause = func(closed <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-closed:
		return false
	case <-t.C:
		return true
	}
}

// kickFiler wakes the filer, after a group, once a chunk of events waits.
func (db *DB) kickFiler() {
	if db.aix != nil && db.aix.kick != nil && db.auditUnfiled.Load() >= auditFileChunk {
		select {
		case db.aix.kick <- struct{}{}:
		default: // it is awake
		}
	}
}

// fileAuditEvents files up to most unfiled audit events into the index,
// when there are auditFileChunk of them or force is set. The filer runs
// it, and tests and the repair. Unless forced, it files whole chunks
// only: it stops where a chunk ends (the seq after the last one filed a
// multiple of auditFileChunk), which in a build is a block's edge, so
// that the next filing starts a block rather than finishing one. It
// returns how many it filed and how many it left, and sets
// db.auditUnfiled to the latter plus what the groups added meanwhile; a
// failure sets it to what they added, so that the writer kicks again
// after another chunk.
func (db *DB) fileAuditEvents(force bool, most int64) (filed, rest int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	t0 := time.Now()
	// The groups add to auditUnfiled while the filing runs: it keeps what
	// they added since here (an event both counts and finds in its
	// snapshot is counted twice, which only kicks sooner). Storing rest
	// alone lost events a group inserted meanwhile, and the writer then
	// did not kick for a whole chunk waiting.
	before := db.auditUnfiled.Load()
	err = db.aix.write(ctx, func(tx *sql.Tx) error {
		var from, head int64
		if err := tx.QueryRowContext(ctx, `SELECT filed, (SELECT coalesce(max(seq), 0) FROM m.audit_events) FROM audit_index`).
			Scan(&from, &head); err != nil {
			return err
		}
		if head <= from || (!force && head-from < auditFileChunk) {
			rest = max(head-from, 0)
			return nil
		}
		to := min(head, from+most)
		if !force {
			// Whole chunks. There are auditFileChunk events or more
			// after from, so one ends by to, unless most is smaller.
			to = (to+1)/auditFileChunk*auditFileChunk - 1
			if to <= from {
				rest = head - from
				return nil
			}
		}
		// OR IGNORE: an entry filed already (it cannot be, below the
		// mark) must not stop the filing for good.
		selects := make([]string, len(auditEntryKeys))
		for i, k := range auditEntryKeys {
			selects[i] = `SELECT seq >> ?1, ` + k + `, seq FROM m.audit_events WHERE seq > ?2 AND seq <= ?3`
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO audit_blocks (block, key, seq) `+
			strings.Join(selects, ` UNION ALL `)+` ORDER BY 1, 2, 3`, auditBlockShift, from, to); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE audit_index SET filed = ?,
			first_hash = coalesce(first_hash, (SELECT hash FROM m.audit_events ORDER BY seq LIMIT 1))`, to); err != nil {
			return err
		}
		filed, rest = to-from, head-to
		return nil
	})
	if err != nil {
		db.auditUnfiled.Add(-before)
		return 0, 0, formatError(err, "Audit index")
	}
	db.auditUnfiled.Add(rest - before)
	db.auditBehind.Store(rest)
	if filed > 0 {
		db.filings.Add(1)
		db.filed.Add(uint64(filed))
		db.filingNanos.Add(int64(time.Since(t0)))
	}
	return filed, rest, nil
}

// auditProbe is the condition on the filed entries that f's most
// selective filter gives — subject, actor, time, action, in that order —
// as key ranges [lo, hi] (inclusive), or ok false when f has none of
// them. Every event f matches has an entry in the range; the query
// applies f's filters to the events themselves as well.
func auditProbe(f custos.AuditFilter) (lo, hi string, ok bool) {
	switch {
	case f.SubjectID != nil:
		k := auditKeySubject + string(*f.SubjectID)
		return k, k, true
	case f.ActorID != nil:
		k := auditKeyActor + string(*f.ActorID)
		return k, k, true
	case f.Since != nil || f.Until != nil:
		lo, hi = auditKeyTime, auditKeyTime+"~" // "~" sorts after every digit
		if f.Since != nil {
			lo = auditTimeKey(*f.Since)
		}
		if f.Until != nil {
			hi = auditTimeKey(*f.Until)
		}
		return lo, hi, true
	case f.Action != nil:
		k := auditKeyAction + *f.Action
		return k, k, true
	}
	return "", "", false
}

// auditProbeBatch is about how many events a query reads at once through
// the index: the seqs of whole blocks, at least this many unless the
// blocks end. A query with a small limit stops after the first batches
// that hold enough events.
const auditProbeBatch = 512

// probe finds the filed events whose entries lie in [lo, hi] (inclusive)
// past seq after, block by block in seq order, and hands their seqs to
// batch, whole blocks at a time, sorted; batch says when the caller has
// enough (full). probe returns the mark: every event up to it is filed.
// It reads the index in one snapshot, apart from the caller's
// transaction on the store: the index holds committed events only, so an
// event the caller's snapshot cannot see yet is not found by its seq
// either, and every event it can see is found, through the index up to
// the mark and by the caller's scan past it.
func (ix *auditIndex) probe(ctx context.Context, after int64, lo, hi string, batch func(seqs []int64) (full bool, err error)) (mark int64, full bool, err error) {
	tx, err := ix.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, false, err
	}
	defer tx.Rollback()
	if err := tx.QueryRowContext(ctx, `SELECT filed FROM audit_index`).Scan(&mark); err != nil || after >= mark {
		return mark, false, err
	}
	// One seek a block (CROSS JOIN: the blocks outside), in block order.
	// The entries' own block only: an entry under another could put an
	// event out of order or twice.
	rows, err := tx.QueryContext(ctx, probeQuery, (after+1)>>auditBlockShift, mark>>auditBlockShift, lo, hi, after, mark, auditBlockShift)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	var seqs []int64
	cur := int64(-1)
	for rows.Next() {
		var block, seq int64
		if err := rows.Scan(&block, &seq); err != nil {
			return 0, false, err
		}
		if block != cur && len(seqs) >= auditProbeBatch {
			if full, err := batch(seqs); full || err != nil {
				return mark, full, err
			}
			seqs = seqs[:0]
		}
		cur, seqs = block, append(seqs, seq)
	}
	if err := rows.Err(); err != nil {
		return 0, false, err
	}
	if len(seqs) > 0 {
		full, err = batch(seqs)
	}
	return mark, full, err
}

// probeQuery finds the entries in [?3, ?4] of the events in (?5, ?6] in
// blocks ?1 to ?2 (?7 is auditBlockShift).
const probeQuery = `WITH RECURSIVE b(n) AS (VALUES (?1) UNION ALL SELECT n + 1 FROM b WHERE n < ?2)
	SELECT x.block, x.seq FROM b CROSS JOIN audit_blocks AS x
	WHERE x.block = b.n AND x.key >= ?3 AND x.key <= ?4 AND x.seq > ?5 AND x.seq <= ?6 AND x.seq >> ?7 = x.block`

// seqList is seqs sorted, as a JSON array (for json_each).
func seqList(seqs []int64) string {
	slices.Sort(seqs)
	b := make([]byte, 0, 8*len(seqs)+2)
	b = append(b, '[')
	for i, s := range seqs {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, s, 10)
	}
	return string(append(b, ']'))
}

// auditFilters are the conditions on the events themselves of f: its
// filters and seq > f.AfterSeq.
func auditFilters(f custos.AuditFilter) (string, []any) {
	var conds []string
	var args []any
	add := func(cond string, arg any) { conds, args = append(conds, cond), append(args, arg) }
	add("seq > ?", f.AfterSeq)
	if f.SubjectID != nil {
		add("subject_id = ?", string(*f.SubjectID))
	}
	if f.ActorID != nil {
		add("actor_id = ?", string(*f.ActorID))
	}
	if f.Action != nil {
		add("action = ?", *f.Action)
	}
	if f.Since != nil {
		add("time >= ?", sqlutil.Micros(*f.Since))
	}
	if f.Until != nil {
		add("time < ?", sqlutil.Micros(*f.Until))
	}
	return strings.Join(conds, " AND "), args
}

// CheckAuditIndex returns the first audit event up to the filing mark
// that lacks one of its four entries in the index, or 0 when none does
// (custos audit verify). The entries are derived data outside the hash
// chain: someone who can write the index file could delete them to hide
// events from audit queries, and this finds that.
func (db *DB) CheckAuditIndex(ctx context.Context) (int64, error) {
	if db.aix == nil {
		return 0, nil // opened for migrations only: no index
	}
	var seq int64
	err := func() error {
		db.aix.mu.Lock()
		defer db.aix.mu.Unlock()
		// One statement, one snapshot of both files. The keys'
		// columns are the event's: audit_blocks has none of them.
		return db.aix.conn.QueryRowContext(ctx, `SELECT coalesce(min(e.seq), 0) FROM m.audit_events AS e
			WHERE e.seq <= (SELECT filed FROM audit_index) AND ? > (SELECT count(*) FROM audit_blocks AS x
				WHERE x.block = e.seq >> ? AND x.seq = e.seq AND x.key IN (`+strings.Join(auditEntryKeys, ", ")+`))`,
			len(auditEntryKeys), auditBlockShift).Scan(&seq)
	}()
	if err != nil {
		return 0, formatError(err, "Audit index")
	}
	return seq, nil
}

// RepairAuditIndex files again every audit event from the first one
// CheckAuditIndex finds, and returns it (0: nothing to repair). The
// entries still there are kept (filing ignores them); entries under a
// block other than their event's are dropped.
func (db *DB) RepairAuditIndex(ctx context.Context) (int64, error) {
	seq, err := db.CheckAuditIndex(ctx)
	if err != nil || seq == 0 {
		return seq, err
	}
	err = db.aix.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM audit_blocks WHERE block <> seq >> ?`, auditBlockShift); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE audit_index SET filed = min(filed, ?)`, seq-1)
		return err
	})
	if err != nil {
		return 0, formatError(err, "Audit index")
	}
	for {
		_, rest, err := db.fileAuditEvents(true, auditFileIdleMax)
		if err != nil {
			return 0, err
		}
		if rest == 0 {
			return seq, nil
		}
	}
}
