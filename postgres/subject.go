package postgres

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertSubject stores s. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertSubject(ctx context.Context, s *custos.StoredSubject) error {
	return tx.insert(ctx, "Subject", `INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4)`,
		string(s.ID), sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.CreatedAt), sqlutil.Micros(s.UpdatedAt))
}

// GetSubject returns the subject with id, or ENOTFOUND.
func (tx *Tx) GetSubject(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, error) {
	var (
		sealed                       []byte
		created, updated, restricted int64
	)
	// In a write transaction the row is locked until commit: a correction,
	// an erasure and a record append on the same subject (from any node)
	// take turns instead of overwriting each other or racing a delete.
	q := `SELECT sealed, created_at, updated_at, restricted_until FROM subjects WHERE id = $1`
	if tx.write {
		q += ` FOR UPDATE`
	}
	err := tx.scanRow(ctx, q, []any{string(id)}, &sealed, &created, &updated, &restricted)
	if err != nil {
		return nil, formatError(err, "Subject")
	}
	m, err := sqlutil.DecodeSealed(sealed)
	if err != nil {
		return nil, internal("subject", err)
	}
	return &custos.StoredSubject{ID: id, Sealed: m, CreatedAt: sqlutil.Time(created), UpdatedAt: sqlutil.Time(updated),
		RestrictedUntil: sqlutil.OptTime(restricted)}, nil
}

// UpdateSubject replaces the sealed fields and updated time of s.ID; the
// creation time is kept. Returns ENOTFOUND.
func (tx *Tx) UpdateSubject(ctx context.Context, s *custos.StoredSubject) error {
	n, err := tx.affected(ctx, `UPDATE subjects SET sealed = $1, updated_at = $2 WHERE id = $3`,
		sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.UpdatedAt), string(s.ID))
	return mustAffect(n, err, "Subject")
}

// DeleteSubject deletes the subject row. Its lookups and records must be
// deleted first. Returns ENOTFOUND.
func (tx *Tx) DeleteSubject(ctx context.Context, id custos.SubjectID) error {
	n, err := tx.affected(ctx, `DELETE FROM subjects WHERE id = $1`, string(id))
	return mustAffect(n, err, "Subject")
}

// CountSubjects returns the number of subjects.
func (tx *Tx) CountSubjects(ctx context.Context) (int, error) {
	var n int
	if err := tx.scanRow(ctx, `SELECT COUNT(*) FROM subjects`, nil, &n); err != nil {
		return 0, formatError(err, "Subject")
	}
	return n, nil
}

// mustAffect turns a statement that changed no row into ENOTFOUND.
func mustAffect(n int64, err error, entity string) error {
	if err != nil {
		return formatError(err, entity)
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "%s not found.", entity)
	}
	return nil
}
