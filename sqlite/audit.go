package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"

	"custos"
	"custos/internal/sqlutil"
)

const auditColumns = `seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash`

// AuditHead returns the last event's seq and hash, or (0, nil) when the
// log is empty. Appenders are already serialised by the single write
// connection, whose transactions hold the write lock from BEGIN. In a commit
// group's transaction the head is read from the table once and then
// followed in memory through InsertAuditEvent (and reset when a member's
// savepoint is rolled back), which saves one query per append.
func (tx *Tx) AuditHead(ctx context.Context) (int64, []byte, error) {
	if tx.head != nil && tx.head.known {
		return tx.head.seq, bytes.Clone(tx.head.hash), nil
	}
	var (
		seq  int64
		hash []byte
	)
	err := tx.scanRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`, nil, &seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		seq, hash = 0, nil
	} else if err != nil {
		return 0, nil, formatError(err, "Audit event")
	}
	if tx.head != nil {
		*tx.head = auditHead{known: true, seq: seq, hash: bytes.Clone(hash)}
	}
	return seq, hash, nil
}

// InsertAuditEvent stores e as given: the caller sets Seq, PrevHash and
// Hash. Returns ECONFLICT if the seq exists.
func (tx *Tx) InsertAuditEvent(ctx context.Context, e *custos.AuditEvent) error {
	if tx.buffering && tx.head != nil && tx.head.known && e.Seq == tx.head.seq+1 {
		// End work (finish): held back and written with the others.
		tx.auditBuf = append(tx.auditBuf, e)
		*tx.head = auditHead{known: true, seq: e.Seq, hash: bytes.Clone(e.Hash)}
		return nil
	}
	return tx.InsertAuditEvents(ctx, []*custos.AuditEvent{e})
}

// InsertAuditEvents stores events chained by the caller, in order, in
// multi-row statements (sqlutil.Chunks), and moves the commit group's
// head past the last; ECONFLICT if a seq exists.
//
// Until the twenty-third session this ran one single-row statement per
// event: a multi-row INSERT into a table with a unique key made SQLite
// copy every page it changed into a statement journal, to be able to
// undo the statement alone, and with the per-event indexes the table had
// before migration 0009 that was a random page of the subject index per
// event (40 % of a read group's audit insert). InsertMany's OR FAIL keeps
// no such journal, and the table is now its rowid B-tree alone, so an
// import batch's 500 events take four statements instead of 500
// (BENCHMARKS.md, twenty-third session).
func (tx *Tx) InsertAuditEvents(ctx context.Context, es []*custos.AuditEvent) error {
	q := stmtQuerier{tx}
	err := sqlutil.Chunks(len(es), func(lo, hi int) error {
		args := make([]any, 0, 12*(hi-lo))
		for _, e := range es[lo:hi] {
			args = append(args, e.Seq, sqlutil.Micros(e.Time), string(e.ActorID), e.Action, string(e.SubjectID), encodeList(e.Fields), encodeList(e.Purposes),
				e.Decision, e.Reason, e.RequestID, e.PrevHash, e.Hash)
		}
		return sqlutil.InsertRows(ctx, q, "Audit event", `audit_events (`+auditColumns+`) VALUES `+sqlutil.Values(hi-lo, 12), hi-lo, args)
	})
	if err == nil && tx.unfiled != nil {
		tx.unfiled.Add(int64(len(es)))
	}
	// Still inside the transaction, which holds the write lock: a writer
	// that kept the head past its own last group sees the log moved
	// (DB.keptHeadFor). Advanced whether or not the insert succeeded; an
	// advance for nothing only has that writer read the head again.
	tx.audits.addAudit()
	if tx.head != nil && len(es) > 0 {
		switch last := es[len(es)-1]; {
		case err != nil:
			tx.head.known = false
		case tx.head.known && last.Seq > tx.head.seq:
			*tx.head = auditHead{known: true, seq: last.Seq, hash: bytes.Clone(last.Hash)}
		}
	}
	return err
}

// FindAuditEvents returns the events matching every set field of f, in
// seq order: Seq > f.AfterSeq, Since <= Time < Until, and at most f.Limit
// events when it is positive (the caller caps it).
func (tx *Tx) FindAuditEvents(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	filters, args := auditFilters(f)
	events := []*custos.AuditEvent{}
	// find adds the events matching where, in seq order, up to f.Limit,
	// and says whether that is reached.
	find := func(where string, args []any) (full bool, err error) {
		q := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + where + ` ORDER BY seq`
		if f.Limit > 0 {
			q, args = q+` LIMIT ?`, append(args, f.Limit-len(events))
		}
		err = tx.query(ctx, q, args, func(s scanner) error {
			e, err := scanAuditEvent(s)
			if err == nil {
				events = append(events, e)
			}
			return err
		})
		return f.Limit > 0 && len(events) >= f.Limit, err
	}
	// Through the index's entries up to its mark, when f has a filter
	// they can narrow, then a scan of the events past the mark
	// (auditindex.go).
	var mark int64
	if lo, hi, ok := auditProbe(f); ok && tx.aix != nil {
		var full bool
		var err error
		mark, full, err = tx.aix.probe(ctx, f.AfterSeq, lo, hi, func(seqs []int64) (bool, error) {
			return find(`seq IN (SELECT value FROM json_each(?)) AND `+filters, append([]any{seqList(seqs)}, args...))
		})
		if err != nil {
			return nil, formatError(err, "Audit event")
		}
		if full {
			return events, nil
		}
	}
	if _, err := find(`seq > ? AND `+filters, append([]any{mark}, args...)); err != nil {
		return nil, formatError(err, "Audit event")
	}
	return events, nil
}

// scanAuditEvent reads one row of auditColumns.
func scanAuditEvent(s scanner) (*custos.AuditEvent, error) {
	var (
		e                        custos.AuditEvent
		t                        int64
		actor, sub, fields, purp string
	)
	if err := s.Scan(&e.Seq, &t, &actor, &e.Action, &sub, &fields, &purp, &e.Decision, &e.Reason,
		&e.RequestID, &e.PrevHash, &e.Hash); err != nil {
		return nil, err
	}
	var err error
	if e.Fields, err = decodeList(fields); err != nil {
		return nil, internal("audit fields", err)
	}
	if e.Purposes, err = decodeList(purp); err != nil {
		return nil, internal("audit purposes", err)
	}
	e.Time, e.ActorID, e.SubjectID = sqlutil.Time(t), custos.PrincipalID(actor), custos.SubjectID(sub)
	return &e, nil
}

// InsertCheckpoint stores a signed checkpoint. Returns ECONFLICT if one
// exists for c.Seq.
func (tx *Tx) InsertCheckpoint(ctx context.Context, c *custos.AuditCheckpoint) error {
	_, err := tx.exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?)`,
		c.Seq, c.Hash, sqlutil.Micros(c.Time), c.KeyID, c.Signature)
	return formatError(err, "Audit checkpoint")
}
