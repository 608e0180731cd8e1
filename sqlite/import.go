package sqlite

import (
	"context"

	"custos"
)

// GetImportRow returns line of job, or ENOTFOUND if it was not handled yet.
func (tx *Tx) GetImportRow(ctx context.Context, job string, line int) (*custos.ImportRow, error) {
	r := &custos.ImportRow{Job: job, Line: line}
	var sub string
	if err := tx.scanRow(ctx, `SELECT status, subject_id FROM import_rows WHERE job = ? AND line = ?`,
		[]any{job, line}, &r.Status, &sub); err != nil {
		return nil, formatError(err, "Import row")
	}
	r.SubjectID = custos.SubjectID(sub)
	return r, nil
}

// InsertImportRow records that a line was handled. Returns ECONFLICT if it
// was recorded already.
func (tx *Tx) InsertImportRow(ctx context.Context, r *custos.ImportRow) error {
	_, err := tx.exec(ctx, `INSERT INTO import_rows (job, line, status, subject_id) VALUES (?, ?, ?, ?)`,
		r.Job, r.Line, r.Status, string(r.SubjectID))
	return formatError(err, "Import row")
}
