package postgres

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertShred appends e to the shred ledger and sets e.Seq to its
// sequence number; the e.Seq given is ignored.
//
// It takes the append lock first (see Tx.AuditHead), so ledger entries
// commit in seq order and a reader paging with ListShreds(afterSeq) never
// steps over an entry that commits later with a smaller seq. It is the
// same lock as the audit chain's, so a transaction that shreds and audits
// cannot deadlock against another that takes them in the other order.
func (tx *Tx) InsertShred(ctx context.Context, e *custos.ShredEntry) error {
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
