package postgres

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"

	"custos"
	"custos/internal/sqlutil"
)

const auditColumns = `seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash`

// AuditHead returns the last event's seq and hash, or (0, nil) when the
// log is empty.
//
// In an Update it first takes the append lock, a transaction-level
// advisory lock shared by every custos node on the database, and keeps it
// until the transaction ends: appenders — on this node or another — queue
// there, each reads the head its predecessor committed and inserts head+1,
// so the chain has no gap and no fork. The lock is released at commit or
// rollback, so a crashed appender frees it. In a View it only reads.
//
// At the end of a transaction (work registered with AtEnd), the lock is
// already held and the head is read once: later calls return the head as
// the events inserted since have moved it.
func (tx *Tx) AuditHead(ctx context.Context) (int64, []byte, error) {
	if e := tx.end; e != nil && e.known {
		return e.seq, e.hash, nil
	}
	if err := tx.lockAppend(ctx); err != nil { // nothing to send at the end: runEnds holds it
		return 0, nil, formatError(err, "Audit event")
	}
	var (
		seq  int64
		hash []byte
	)
	err := tx.scanRow(ctx, headSQL, nil, &seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	} else if err != nil {
		return 0, nil, formatError(err, "Audit event")
	}
	if e := tx.end; e != nil {
		e.known, e.seq, e.hash = true, seq, orNil(hash)
	}
	return seq, orNil(hash), nil
}

// headSQL reads the chain head.
const headSQL = `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`

// InsertAuditEvent stores e as given: the caller sets Seq, PrevHash and
// Hash. Returns ECONFLICT if the seq exists.
//
// At the end of a transaction an event that follows the head AuditHead
// returned is kept and written with the others of that end by one
// statement (flushEvents), before the next checkpoint and before commit.
func (tx *Tx) InsertAuditEvent(ctx context.Context, e *custos.AuditEvent) error {
	if end := tx.end; end != nil && end.known && e.Seq == end.seq+1 {
		end.events = append(end.events, e)
		end.seq, end.hash = e.Seq, e.Hash
		return nil
	}
	if err := tx.flushEvents(ctx); err != nil {
		return err
	}
	args, err := auditArgs(e)
	if err != nil {
		return err
	}
	return tx.insert(ctx, "Audit event", `INSERT INTO audit_events (`+auditColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, args...)
}

// auditArgs are e's values in auditColumns order.
func auditArgs(e *custos.AuditEvent) ([]any, error) {
	fields, err := sqlutil.EncodeList(e.Fields)
	if err != nil {
		return nil, internal("audit event", err)
	}
	purposes, err := sqlutil.EncodeList(e.Purposes)
	if err != nil {
		return nil, internal("audit event", err)
	}
	return []any{e.Seq, sqlutil.Micros(e.Time), string(e.ActorID), e.Action, string(e.SubjectID), fields, purposes,
		e.Decision, e.Reason, e.RequestID, e.PrevHash, e.Hash}, nil
}

// InsertAuditEvents stores events chained by the caller, in order, in
// multi-row statements; ECONFLICT if a seq exists. At the end of a
// transaction, events that follow the head AuditHead returned are kept
// and written with the others of that end, as InsertAuditEvent does.
func (tx *Tx) InsertAuditEvents(ctx context.Context, es []*custos.AuditEvent) error {
	if len(es) == 0 {
		return nil
	}
	if end := tx.end; end != nil && end.known && follows(end.seq, es) {
		end.events = append(end.events, es...)
		last := es[len(es)-1]
		end.seq, end.hash = last.Seq, last.Hash
		return nil
	}
	if err := tx.flushEvents(ctx); err != nil {
		return err
	}
	return sqlutil.Chunks(len(es), func(lo, hi int) error {
		args := make([]any, 0, 12*(hi-lo))
		for _, e := range es[lo:hi] {
			a, err := auditArgs(e)
			if err != nil {
				return err
			}
			args = append(args, a...)
		}
		return sqlutil.InsertRows(ctx, stmtQuerier{tx}, "Audit event",
			`audit_events (`+auditColumns+`) VALUES `+sqlutil.Values(hi-lo, 12), hi-lo, args)
	})
}

// follows reports whether es are the seqs after seq, one by one.
func follows(seq int64, es []*custos.AuditEvent) bool {
	for _, e := range es {
		if e.Seq != seq+1 {
			return false
		}
		seq = e.Seq
	}
	return true
}

// FindAuditEvents returns the events matching every set field of f, in
// seq order: Seq > f.AfterSeq, Since <= Time < Until, and at most f.Limit
// events when it is positive (the caller caps it).
func (tx *Tx) FindAuditEvents(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, cond+" $"+strconv.Itoa(len(args)))
	}
	add("seq >", f.AfterSeq)
	if f.SubjectID != nil {
		add("subject_id =", string(*f.SubjectID))
	}
	if f.ActorID != nil {
		add("actor_id =", string(*f.ActorID))
	}
	if f.Action != nil {
		add("action =", *f.Action)
	}
	if f.Since != nil {
		add("time >=", sqlutil.Micros(*f.Since))
	}
	if f.Until != nil {
		add("time <", sqlutil.Micros(*f.Until))
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	events := []*custos.AuditEvent{}
	err := tx.query(ctx, q, args, func(s scanner) error {
		var (
			e            custos.AuditEvent
			t            int64
			actor, sub   string
			fields, purp []byte
		)
		if err := s.Scan(&e.Seq, &t, &actor, &e.Action, &sub, &fields, &purp, &e.Decision, &e.Reason,
			&e.RequestID, &e.PrevHash, &e.Hash); err != nil {
			return err
		}
		var err error
		if e.Fields, err = sqlutil.DecodeList(fields); err != nil {
			return internal("audit fields", err)
		}
		if e.Purposes, err = sqlutil.DecodeList(purp); err != nil {
			return internal("audit purposes", err)
		}
		e.Time, e.ActorID, e.SubjectID = sqlutil.Time(t), custos.PrincipalID(actor), custos.SubjectID(sub)
		e.PrevHash, e.Hash = orNil(e.PrevHash), orNil(e.Hash)
		events = append(events, &e)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Audit event")
	}
	return events, nil
}

// InsertCheckpoint stores a signed checkpoint. Returns ECONFLICT if one
// exists for c.Seq.
func (tx *Tx) InsertCheckpoint(ctx context.Context, c *custos.AuditCheckpoint) error {
	if err := tx.flushEvents(ctx); err != nil {
		return err
	}
	return tx.insert(ctx, "Audit checkpoint", `INSERT INTO audit_checkpoints (seq, hash, time, key_id, signature)
		VALUES ($1, $2, $3, $4, $5)`, c.Seq, c.Hash, sqlutil.Micros(c.Time), c.KeyID, c.Signature)
}

// insertEventsSQL inserts a batch of audit events, one array per column:
// one statement, prepared once, whatever the batch size. A seq that exists
// fails it (unique violation), which aborts the transaction: the events
// are chained from a head read under the append lock, so that never
// happens unless something is badly wrong.
const insertEventsSQL = `INSERT INTO audit_events (` + auditColumns + `)
	SELECT seq, time, actor_id, action, subject_id, fields::jsonb, purposes::jsonb, decision, reason, request_id, prev_hash, hash
	FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		$8::text[], $9::text[], $10::text[], $11::bytea[], $12::bytea[])
		AS e(seq, time, actor_id, action, subject_id, fields, purposes, decision, reason, request_id, prev_hash, hash)`

// flushBatch bounds the events one insertEventsSQL statement carries.
const flushBatch = 1000

// flushEvents writes the audit events kept at the end of a transaction.
// A failure leaves the transaction aborted.
func (tx *Tx) flushEvents(ctx context.Context) error {
	end := tx.end
	if end == nil {
		return nil
	}
	if err := tx.flushShreds(ctx); err != nil {
		return err
	}
	for len(end.events) > 0 {
		batch := end.events[:min(len(end.events), flushBatch)]
		end.events = end.events[len(batch):]
		args, err := eventArgs(batch)
		if err != nil {
			return err
		}
		if _, err := tx.exec(ctx, insertEventsSQL, args...); err != nil {
			return formatError(err, "Audit event")
		}
	}
	return nil
}

// eventArgs returns the arguments of insertEventsSQL for events.
func eventArgs(events []*custos.AuditEvent) ([]any, error) {
	cols, err := eventColumns(events)
	if err != nil {
		return nil, err
	}
	n := len(events)
	seqs, prevs, hashes := make([]int64, n), make([][]byte, n), make([][]byte, n)
	for i, e := range events {
		seqs[i], prevs[i], hashes[i] = e.Seq, e.PrevHash, e.Hash
	}
	return append(append([]any{seqs}, cols...), prevs, hashes), nil
}

// eventColumns are the arrays of events' columns from time to
// request_id, in auditColumns order: what insertEventsSQL and
// serverChainSQL both take.
func eventColumns(events []*custos.AuditEvent) ([]any, error) {
	n := len(events)
	var (
		times                         = make([]int64, n)
		actors, actions, subs, fields = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		purposes, decisions, reasons  = make([]string, n), make([]string, n), make([]string, n)
		requests                      = make([]string, n)
	)
	for i, e := range events {
		f, err := sqlutil.EncodeList(e.Fields)
		if err != nil {
			return nil, internal("audit event", err)
		}
		p, err := sqlutil.EncodeList(e.Purposes)
		if err != nil {
			return nil, internal("audit event", err)
		}
		times[i], actors[i], actions[i], subs[i] = sqlutil.Micros(e.Time), string(e.ActorID), e.Action, string(e.SubjectID)
		fields[i], purposes[i], decisions[i], reasons[i], requests[i] = string(f), string(p), e.Decision, e.Reason, e.RequestID
	}
	return []any{times, actors, actions, subs, fields, purposes, decisions, reasons, requests}, nil
}
