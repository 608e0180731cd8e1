package postgres

import (
	"context"
	"fmt"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
)

// InsertShred appends e to the shred ledger and sets e.Seq to its
// sequence number; the e.Seq given is ignored.
//
// It takes the append lock first (see Tx.AuditHead), so ledger entries
// commit in seq order and a reader paging with ListShreds(afterSeq) never
// steps over an entry that commits later with a smaller seq. It is the
// same lock as the audit chain's, so a transaction that shreds and audits
// cannot deadlock against another that takes them in the other order.
//
// At the transaction's end (work registered with AtEnd), where the lock is
// held already, the entry is kept and written with the end's audit events
// in one statement for all of them, in the commit's round trip
// (commitEvents, flushEvents): e.Seq is set then. Erasures sharing a
// commit group each inserted theirs in a round trip of its own before,
// while every other group waited for the lock (BENCHMARKS.md,
// thirty-eighth session).
func (tx *Tx) InsertShred(ctx context.Context, e *custos.ShredEntry) error {
	if end := tx.end; end != nil {
		end.shreds = append(end.shreds, e)
		return nil
	}
	if err := tx.lockAppend(ctx); err != nil {
		return formatError(err, "Shred entry")
	}
	var seq int64
	err := tx.scanRow(ctx, `INSERT INTO shred_ledger (subject_id, shred_at, reason, actor_id) VALUES ($1, $2, $3, $4)
		RETURNING seq`, []any{string(e.SubjectID), sqlutil.Micros(e.ShredAt), e.Reason, string(e.ActorID)}, &seq)
	if err != nil {
		return formatError(err, "Shred entry")
	}
	e.Seq = seq
	return nil
}

// ListShreds returns the ledger entries with Seq > afterSeq, in order.
func (tx *Tx) ListShreds(ctx context.Context, afterSeq int64) ([]*custos.ShredEntry, error) {
	entries := []*custos.ShredEntry{}
	err := tx.query(ctx, `SELECT seq, subject_id, shred_at, reason, actor_id FROM shred_ledger WHERE seq > $1 ORDER BY seq`,
		[]any{afterSeq}, func(s scanner) error {
			var (
				e          custos.ShredEntry
				sub, actor string
				at         int64
			)
			if err := s.Scan(&e.Seq, &sub, &at, &e.Reason, &actor); err != nil {
				return err
			}
			e.SubjectID, e.ShredAt, e.ActorID = custos.SubjectID(sub), sqlutil.Time(at), custos.PrincipalID(actor)
			entries = append(entries, &e)
			return nil
		})
	if err != nil {
		return nil, formatError(err, "Shred entry")
	}
	return entries, nil
}

// insertShredsSQL inserts shred entries in the order given, numbering
// them in that order, and returns their seqs in that order.
const insertShredsSQL = `INSERT INTO shred_ledger (subject_id, shred_at, reason, actor_id)
	SELECT subject_id, shred_at, reason, actor_id
	FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) WITH ORDINALITY AS e(subject_id, shred_at, reason, actor_id, n)
	ORDER BY n
	RETURNING seq`

// shredArgs returns the arguments of insertShredsSQL for es.
func shredArgs(es []*custos.ShredEntry) []any {
	subs, ats := make([]string, len(es)), make([]int64, len(es))
	reasons, actors := make([]string, len(es)), make([]string, len(es))
	for i, e := range es {
		subs[i], ats[i], reasons[i], actors[i] = string(e.SubjectID), sqlutil.Micros(e.ShredAt), e.Reason, string(e.ActorID)
	}
	return []any{subs, ats, reasons, actors}
}

// shredSeqs returns a function that sets es' Seqs from insertShredsSQL's
// rows, one a call in order, and one that checks every entry got one.
func shredSeqs(es []*custos.ShredEntry) (row func(s scanner) error, done func() error) {
	i := 0
	row = func(s scanner) error {
		if i == len(es) {
			return fmt.Errorf("insert shred entries: more seqs than entries")
		}
		i++
		return s.Scan(&es[i-1].Seq)
	}
	done = func() error {
		if i != len(es) {
			return fmt.Errorf("insert shred entries: %d seqs for %d entries", i, len(es))
		}
		return nil
	}
	return row, done
}

// readSeqs is readShredSeqs; a test makes it fail.
var readSeqs = readShredSeqs

// readShredSeqs reads insertShredsSQL's seqs from br into es.
func readShredSeqs(br pgx.BatchResults, es []*custos.ShredEntry) error {
	row, done := shredSeqs(es)
	if err := eachRow(br, row); err != nil {
		return err
	}
	return done()
}

// flushShreds writes the shred entries kept at the end of a transaction,
// flushBatch at a time. A failure leaves the transaction aborted.
func (tx *Tx) flushShreds(ctx context.Context) error {
	end := tx.end
	for len(end.shreds) > 0 {
		batch := end.shreds[:min(len(end.shreds), flushBatch)]
		end.shreds = end.shreds[len(batch):]
		row, done := shredSeqs(batch)
		err := tx.query(ctx, insertShredsSQL, shredArgs(batch), row)
		if err == nil {
			err = done()
		}
		if err != nil {
			return formatError(err, "Shred entry")
		}
	}
	return nil
}
