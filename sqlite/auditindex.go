package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// The audit log's indexes, filed in blocks (migration 0009).
//
// An index entry lands on a page of its B-tree, and SQLite's WAL takes
// whole pages: with the indexes on subject_id, actor_id, action and time,
// every read's audit event wrote a random 4 KiB subject leaf and the last
// leaf of three more trees, most of a read's commit (BENCHMARKS.md,
// thirteenth session). So the writer files committed events into
// audit_blocks afterwards, auditFileChunk at a time, sorted: keyed by
// (block, key, seq) with a block of 2^auditBlockShift consecutive events,
// one filing writes only into the pages of the blocks it covers. Until
// filed, an event is found by a scan of the events after
// audit_blocks_filed.seq (FindAuditEvents).
//
// Who files: the writer of any process, after a commit group once its
// groups inserted auditFileChunk events, and while no write waits, in a
// transaction of its own that reads where filing stopped, files from
// there and moves the mark. Filing is an optimisation only: a failure
// leaves the events to the scan and to the next round.

// auditBlockShift sets the block size: 1,024 events, a filing's chunk
// (auditFileChunk). The writer's filings end where a chunk ends, on a
// block's edge, so each files whole blocks after the last one filed: the
// B-tree grows at its right edge, and of the pages filed before only the
// last ones are written again. Until the fifty-sixth session a filing
// ended at the head, and the next one finished that block, writing its
// pages again; reads' p99 is 5–15 % lower since (BENCHMARKS.md). A forced
// filing (a backlog while idle, a repair) still ends at the head, and
// the writer's next one finishes that chunk.
//
// With blocks of 16,384 events (migrations 0009 to 0014), every chunk's
// subject entries went to random leaves of its block, up to some 250,
// rewritten by each of the block's sixteen chunks, and its actor, action
// and time entries split pages in the middle of the tree. The smaller
// blocks write 16–20 % fewer WAL pages a read and gave reads a 10–17 %
// lower p99 (BENCHMARKS.md, fifty-fifth session). Migration 0015 filed
// the existing events again in blocks of this size.
const auditBlockShift = 10

// auditBlocksPerPart is how many blocks a query part probes, one seek a
// block in one statement: a query with a rare filter runs one statement
// per 16,384 events, as it did with blocks of that size (610 at ten
// million events).
const auditBlocksPerPart = 16

// auditFileChunk is how many unfiled events make the writer file them
// after a group, and how many it files there at most besides as many as
// that group inserted, in whole chunks: it files up to the last seq
// before a multiple of auditFileChunk, a block's edge (auditBlockShift).
// Filing takes 5–7 µs an event, so the requests waiting behind a filing
// wait 5–7 ms (custos_sqlite_audit_filing_seconds_total; at 16 clients a
// read's p99 is about that plus a millisecond, BENCHMARKS.md, fifty-sixth
// session), and a bulk group's filing keeps pace with the group.
// With 4,096 the wait was 25–45 ms, and reads' p99 at c=64 rose from
// 18–20 to 34–36 ms (BENCHMARKS.md, thirteenth session). A backlog (a
// store loaded from a dump starts with every event unfiled) is filed
// while no write waits, after auditIdleWait, up to auditFileIdleMax at a
// time. auditWriterFiles is false in tests that file by hand. Variables
// so that tests can file small logs.
var (
	auditIdleWait          = time.Millisecond
	auditFileChunk   int64 = 1024
	auditFileIdleMax int64 = 16 * 1024
	auditWriterFiles       = true
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

// fileAuditEvents files up to most unfiled audit events into
// audit_blocks, when there are auditFileChunk of them or force is set. It
// runs on the write connection between groups. Unless forced, it files
// whole chunks only: it stops where a chunk ends (the seq after the last
// one filed a multiple of auditFileChunk), which in a build is a block's
// edge, so that the next filing starts a block rather than finishing
// one. It returns how many it filed and how many it left, and sets
// db.auditUnfiled to the latter; a failure sets it to zero, so that the
// writer tries again after another chunk.
func (db *DB) fileAuditEvents(force bool, most int64) (filed, rest int64, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	t0 := time.Now()
	err = db.run(ctx, db.write, nil, nil, func(tx *Tx) error {
		var from, head int64
		if err := tx.scanRow(ctx, `SELECT coalesce((SELECT seq FROM audit_blocks_filed), 0),
			coalesce((SELECT max(seq) FROM audit_events), 0)`, nil, &from, &head); err != nil {
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
			selects[i] = `SELECT seq >> ?1, ` + k + `, seq FROM audit_events WHERE seq > ?2 AND seq <= ?3`
		}
		if _, err := tx.exec(ctx, `INSERT OR IGNORE INTO audit_blocks (block, key, seq) `+
			strings.Join(selects, ` UNION ALL `)+` ORDER BY 1, 2, 3`, auditBlockShift, from, to); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO audit_blocks_filed (one, seq) VALUES (1, ?)
			ON CONFLICT (one) DO UPDATE SET seq = excluded.seq`, to); err != nil {
			return err
		}
		filed, rest = to-from, head-to
		return nil
	})
	if err != nil {
		db.auditUnfiled.Store(0)
		return 0, 0, formatError(err, "Audit index")
	}
	db.auditUnfiled.Store(rest)
	if filed > 0 {
		db.filings.Add(1)
		db.filed.Add(uint64(filed))
		db.filingNanos.Add(int64(time.Since(t0)))
	}
	return filed, rest, nil
}

// auditFiledTo returns the seq every audit event up to is filed under in
// audit_blocks, in tx's snapshot.
func (tx *Tx) auditFiledTo(ctx context.Context) (int64, error) {
	var seq int64
	err := tx.scanRow(ctx, `SELECT seq FROM audit_blocks_filed`, nil, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
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

// auditBlockProbe is the condition of a query part that finds the
// events of n consecutive blocks through their entries in [lo, hi]: the
// key's prefix (block, key) is probed once a block, all in one
// statement, and the events read by seq.
func auditBlockProbe(n int) string {
	return `seq IN (SELECT seq FROM audit_blocks WHERE block IN (` + sqlutil.Placeholders(n) +
		`) AND key >= ? AND key <= ? AND seq > ? AND seq <= ?)`
}

// auditPart is one statement's condition of an audit query.
type auditPart struct {
	where string
	args  []any
}

// auditParts returns the conditions that find f's events in tx, to run in
// order, each part's events after the previous part's: f's filters on the
// events and seq > f.AfterSeq, and, when f has a filter the filed entries
// can narrow, one part for each block of filed events past f.AfterSeq
// (found through their entries) and a last one for the events past the
// filed ones (scanned). A query with a small limit then stops after the
// first blocks that hold enough events, and one with a rare filter costs
// one probe per block.
func (tx *Tx) auditParts(ctx context.Context, f custos.AuditFilter) ([]auditPart, error) {
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
	filters := strings.Join(conds, " AND ")
	lo, hi, ok := auditProbe(f)
	if !ok {
		return []auditPart{{filters, args}}, nil
	}
	filedTo, err := tx.auditFiledTo(ctx)
	if err != nil {
		return nil, err
	}
	var parts []auditPart
	for b := (f.AfterSeq + 1) >> auditBlockShift; f.AfterSeq < filedTo && b <= filedTo>>auditBlockShift; b += auditBlocksPerPart {
		n := min(auditBlocksPerPart, filedTo>>auditBlockShift-b+1)
		pargs := make([]any, 0, int(n)+4+len(args))
		for i := range n {
			pargs = append(pargs, b+i)
		}
		// The part's own events only, whatever the entries say: an
		// entry under the wrong block (filed by a binary with other
		// blocks) cannot put an event out of order or twice.
		after, upTo := max(f.AfterSeq, b<<auditBlockShift-1), min(filedTo, (b+n)<<auditBlockShift-1)
		pargs = append(append(pargs, lo, hi, after, upTo), args...)
		parts = append(parts, auditPart{auditBlockProbe(int(n)) + " AND " + filters, pargs})
	}
	return append(parts, auditPart{"seq > ? AND " + filters, append([]any{filedTo}, args...)}), nil
}

// CheckAuditIndex returns the first audit event up to the filing mark
// that lacks one of its four entries in audit_blocks, or 0 when none
// does (custos audit verify). The entries are derived data outside the
// hash chain: someone who can write the database could delete them to
// hide events from audit queries, and this finds that.
func (db *DB) CheckAuditIndex(ctx context.Context) (int64, error) {
	var seq int64
	err := db.run(ctx, db.read, nil, &sql.TxOptions{ReadOnly: true}, func(tx *Tx) error {
		// The keys' columns are the event's: audit_blocks has none of them.
		return tx.scanRow(ctx, `SELECT coalesce(min(e.seq), 0) FROM audit_events AS e
			WHERE e.seq <= coalesce((SELECT seq FROM audit_blocks_filed), 0) AND ? > (SELECT count(*) FROM audit_blocks AS x
				WHERE x.block = e.seq >> ? AND x.seq = e.seq AND x.key IN (`+strings.Join(auditEntryKeys, ", ")+`))`,
			[]any{len(auditEntryKeys), auditBlockShift}, &seq)
	})
	if err != nil {
		return 0, formatError(err, "Audit index")
	}
	return seq, nil
}

// RepairAuditIndex files again every audit event from the first one
// CheckAuditIndex finds, and returns it (0: nothing to repair). The
// entries still there are kept (filing ignores them).
func (db *DB) RepairAuditIndex(ctx context.Context) (int64, error) {
	seq, err := db.CheckAuditIndex(ctx)
	if err != nil || seq == 0 {
		return seq, err
	}
	// On the write connection, as filing runs, rather than as a commit
	// group member. Entries under a block other than their event's (a
	// binary with other blocks filed them) are dropped.
	err = db.run(ctx, db.write, nil, nil, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM audit_blocks WHERE block <> seq >> ?`, auditBlockShift); err != nil {
			return err
		}
		_, err := tx.exec(ctx, `UPDATE audit_blocks_filed SET seq = min(seq, ?)`, seq-1)
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
