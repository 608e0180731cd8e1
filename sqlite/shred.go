package sqlite

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertShred appends e to the shred ledger and sets e.Seq to its
// sequence number; the e.Seq given is ignored.
func (tx *Tx) InsertShred(ctx context.Context, e *custos.ShredEntry) error {
	err := tx.scanRow(ctx, `INSERT INTO shred_ledger (subject_id, shred_at, reason, actor_id) VALUES (?, ?, ?, ?)
		RETURNING seq`, []any{string(e.SubjectID), sqlutil.Micros(e.ShredAt), e.Reason, string(e.ActorID)}, &e.Seq)
	return formatError(err, "Shred entry")
}

// ListShreds returns the ledger entries with Seq > afterSeq, in order.
func (tx *Tx) ListShreds(ctx context.Context, afterSeq int64) ([]*custos.ShredEntry, error) {
	entries := []*custos.ShredEntry{}
	err := tx.query(ctx, `SELECT seq, subject_id, shred_at, reason, actor_id FROM shred_ledger WHERE seq > ? ORDER BY seq`,
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
