package sqlite

import (
	"context"
	"encoding/json"

	"custos"
)

// GetImportRow returns line of job, or ENOTFOUND if it was not handled yet.
func (tx *Tx) GetImportRow(ctx context.Context, job string, line int) (*custos.ImportRow, error) {
	r := &custos.ImportRow{Job: job, Line: line}
	var sub, vs string
	if err := tx.scanRow(ctx, `SELECT status, subject_id, violations, message FROM import_rows WHERE job = ? AND line = ?`,
		[]any{job, line}, &r.Status, &sub, &vs, &r.Message); err != nil {
		return nil, formatError(err, "Import row")
	}
	r.SubjectID = custos.SubjectID(sub)
	if err := json.Unmarshal([]byte(vs), &r.Violations); err != nil {
		return nil, internal("import row violations", err)
	}
	if len(r.Violations) == 0 {
		r.Violations = nil
	}
	return r, nil
}

// InsertImportRow records that a line was handled, with its reasons.
// Returns ECONFLICT if it was recorded already.
func (tx *Tx) InsertImportRow(ctx context.Context, r *custos.ImportRow) error {
	vs := r.Violations
	if vs == nil {
		vs = []custos.Violation{}
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return internal("import row violations", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO import_rows (job, line, status, subject_id, violations, message) VALUES (?, ?, ?, ?, ?, ?)`,
		r.Job, r.Line, r.Status, string(r.SubjectID), string(b), r.Message)
	return formatError(err, "Import row")
}
