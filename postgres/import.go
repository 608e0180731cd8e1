package postgres

import (
	"context"

	"custos"
)

// GetImportRow returns line of job, or ENOTFOUND if it was not handled yet.
func (tx *Tx) GetImportRow(ctx context.Context, job string, line int) (*custos.ImportRow, error) {
	r := &custos.ImportRow{Job: job, Line: line}
	var sub string
	if err := tx.scanRow(ctx, `SELECT status, subject_id FROM import_rows WHERE job = $1 AND line = $2`,
		[]any{job, line}, &r.Status, &sub); err != nil {
		return nil, formatError(err, "Import row")
	}
	r.SubjectID = custos.SubjectID(sub)
	return r, nil
}

// InsertImportRow records that a line was handled. Returns ECONFLICT if it
// was recorded already.
func (tx *Tx) InsertImportRow(ctx context.Context, r *custos.ImportRow) error {
	return tx.insert(ctx, "Import row", `INSERT INTO import_rows (job, line, status, subject_id) VALUES ($1, $2, $3, $4)`,
		r.Job, r.Line, r.Status, string(r.SubjectID))
}
