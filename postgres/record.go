package postgres

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertRecord stores r; its subject must exist. Returns ECONFLICT if the
// id exists.
func (tx *Tx) InsertRecord(ctx context.Context, r *custos.StoredRecord) error {
	return tx.insert(ctx, "Record", `INSERT INTO records (id, subject_id, type, category, occurred_at, created_at, sealed, restricted_until)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		string(r.ID), string(r.SubjectID), r.Type, r.Category, sqlutil.Micros(r.OccurredAt), sqlutil.Micros(r.CreatedAt), r.Sealed,
		sqlutil.OptMicros(r.RestrictedUntil))
}

// ListRecords returns a subject's records, newest first (by occurred_at,
// then id); typ "" for all types.
func (tx *Tx) ListRecords(ctx context.Context, id custos.SubjectID, typ string) ([]*custos.StoredRecord, error) {
	q := `SELECT id, type, category, occurred_at, created_at, sealed, restricted_until FROM records WHERE subject_id = $1`
	args := []any{string(id)}
	if typ != "" {
		q += ` AND type = $2`
		args = append(args, typ)
	}
	q += ` ORDER BY occurred_at DESC, id DESC`
	recs := []*custos.StoredRecord{}
	err := tx.query(ctx, q, args, func(s scanner) error {
		r := &custos.StoredRecord{SubjectID: id}
		var rid string
		var occurred, created, restricted int64
		if err := s.Scan(&rid, &r.Type, &r.Category, &occurred, &created, &r.Sealed, &restricted); err != nil {
			return err
		}
		r.RestrictedUntil = sqlutil.OptTime(restricted)
		r.ID, r.OccurredAt, r.CreatedAt, r.Sealed = custos.RecordID(rid), sqlutil.Time(occurred), sqlutil.Time(created), orNil(r.Sealed)
		recs = append(recs, r)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Record")
	}
	return recs, nil
}

// DeleteRecords deletes a subject's records and returns how many.
func (tx *Tx) DeleteRecords(ctx context.Context, id custos.SubjectID) (int, error) {
	n, err := tx.affected(ctx, `DELETE FROM records WHERE subject_id = $1`, string(id))
	if err != nil {
		return 0, formatError(err, "Record")
	}
	return int(n), nil
}
