package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// The audit log's index by subject, filed in blocks (migration 0009).
//
// An index entry keyed by subject lands on a random leaf of its B-tree,
// and SQLite's WAL takes whole pages: with audit_events_subject_id every
// read's audit event wrote a 4 KiB frame for a 40-byte entry, which was
// most of a read's commit (1.9 → 0.7 pages per write without it,
// BENCHMARKS.md, tenth and thirteenth sessions). So the writer files
// committed events into audit_subject_blocks afterwards, auditFileChunk
// or more at a time, sorted: keyed by (block, subject, seq) with a block
// of 2^auditBlockShift consecutive events, one filing writes only into
// the pages of the blocks it covers. Until filed, an event is found by a
// scan of the events after audit_subject_indexed.seq (FindAuditEvents).
//
// Who files: the writer of any process, between two commit groups, in a
// transaction of its own that reads where filing stopped, files from
// there and moves the mark. Filing is an optimisation only: a failure
// leaves the events to the scan and to the next round.

// auditBlockShift sets the block size: 16,384 events, about 45 leaf
// pages of entries. A query by subject probes each block once (610 probes
// at ten million events). Changing it needs a migration: filed entries
// carry their block.
const auditBlockShift = 14

// auditFileChunk is how many unfiled events make the writer file them;
// auditFileMax bounds one filing, so that the groups waiting behind it
// wait for a few milliseconds, not for a whole backlog (a store loaded
// from a dump starts with every event unfiled). auditFileEvery is how
// many commit groups the writer runs between two looks at the log's
// head; auditIdleWait how long it waits for a write before it files a
// backlog. Variables so that tests can file small logs.
var (
	auditIdleWait        = time.Millisecond
	auditFileChunk int64 = 4096
	auditFileMax   int64 = 4 * 4096
	auditFileEvery       = 16
)

// fileAuditEvents files the unfiled audit events into
// audit_subject_blocks when there are auditFileChunk of them or force is
// set, at most auditFileMax per call. It runs on the write connection
// between groups. It returns how many it filed.
func (db *DB) fileAuditEvents(force bool) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), db.timeout)
	defer cancel()
	var filed int64
	err := db.run(ctx, db.write, nil, nil, func(tx *Tx) error {
		var from, head int64
		if err := tx.scanRow(ctx, `SELECT coalesce((SELECT seq FROM audit_subject_indexed), 0),
			coalesce((SELECT max(seq) FROM audit_events), 0)`, nil, &from, &head); err != nil {
			return err
		}
		if head <= from || (!force && head-from < auditFileChunk) {
			return nil
		}
		to := min(head, from+auditFileMax)
		// OR IGNORE: an entry filed already (it cannot be, below the
		// mark) must not stop the filing for good.
		if _, err := tx.exec(ctx, `INSERT OR IGNORE INTO audit_subject_blocks (block, subject_id, seq)
			SELECT seq >> ?, subject_id, seq FROM audit_events WHERE seq > ? AND seq <= ? ORDER BY 1, 2, 3`,
			auditBlockShift, from, to); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `INSERT INTO audit_subject_indexed (one, seq) VALUES (1, ?)
			ON CONFLICT (one) DO UPDATE SET seq = excluded.seq`, to); err != nil {
			return err
		}
		filed = to - from
		return nil
	})
	if err != nil {
		return 0, formatError(err, "Audit index")
	}
	return filed, nil
}

// auditSubjectSeqs is the subquery of the seqs of subject's events after
// after: those filed, probed block by block, and those not yet filed,
// scanned. filedTo is audit_subject_indexed.seq in the reading
// transaction.
func auditSubjectSeqs(subject string, after, filedTo int64) (string, []any) {
	var b strings.Builder
	var args []any
	if filedTo > after {
		// One probe per block: (block, subject) is the key's prefix,
		// which a range over block alone would not use for subject.
		b.WriteString(`WITH RECURSIVE blocks(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM blocks WHERE n < ?)
			SELECT x.seq FROM blocks JOIN audit_subject_blocks AS x ON x.block = blocks.n AND x.subject_id = ? AND x.seq > ? AND x.seq <= ?
			UNION ALL `)
		args = append(args, (after+1)>>auditBlockShift, filedTo>>auditBlockShift, subject, after, filedTo)
	}
	b.WriteString(`SELECT seq FROM audit_events WHERE seq > ? AND subject_id = ?`)
	args = append(args, max(after, filedTo), subject)
	return b.String(), args
}

// auditFiledTo returns the seq every audit event up to is filed under in
// audit_subject_blocks, in tx's snapshot.
func (tx *Tx) auditFiledTo(ctx context.Context) (int64, error) {
	var seq int64
	err := tx.scanRow(ctx, `SELECT seq FROM audit_subject_indexed`, nil, &seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return seq, err
}
