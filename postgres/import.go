package postgres

import (
	"context"
	"encoding/json"
	"strings"

	"custos"
	"custos/internal/sqlutil"
)

// GetImportRow returns line of job, or ENOTFOUND if it was not handled yet.
func (tx *Tx) GetImportRow(ctx context.Context, job string, line int) (*custos.ImportRow, error) {
	r := &custos.ImportRow{Job: job, Line: line}
	var (
		sub string
		vs  []byte
	)
	if err := tx.scanRow(ctx, `SELECT status, subject_id, violations, message FROM import_rows WHERE job = $1 AND line = $2`,
		[]any{job, line}, &r.Status, &sub, &vs, &r.Message); err != nil {
		return nil, formatError(err, "Import row")
	}
	r.SubjectID = custos.SubjectID(sub)
	if err := json.Unmarshal(vs, &r.Violations); err != nil {
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
	return tx.insert(ctx, "Import row", `INSERT INTO import_rows (job, line, status, subject_id, violations, message) VALUES ($1, $2, $3, $4, $5, $6)`,
		r.Job, r.Line, r.Status, string(r.SubjectID), b, r.Message)
}

// GetImportRows returns the rows of job recorded for lines, by line.
func (tx *Tx) GetImportRows(ctx context.Context, job string, lines []int) (map[int]*custos.ImportRow, error) {
	out := map[int]*custos.ImportRow{}
	err := sqlutil.Chunks(len(lines), func(lo, hi int) error {
		args := make([]any, 0, 1+hi-lo)
		args = append(args, job)
		for _, l := range lines[lo:hi] {
			args = append(args, l)
		}
		q := `SELECT line, status, subject_id, violations, message FROM import_rows WHERE job = ? AND line IN (` +
			strings.TrimSuffix(strings.Repeat("?, ", hi-lo), ", ") + `)`
		return tx.query(ctx, sqlutil.Dollar(q), args, func(s scanner) error {
			r := &custos.ImportRow{Job: job}
			var (
				sub string
				vs  []byte
			)
			if err := s.Scan(&r.Line, &r.Status, &sub, &vs, &r.Message); err != nil {
				return err
			}
			r.SubjectID = custos.SubjectID(sub)
			if err := json.Unmarshal(vs, &r.Violations); err != nil {
				return internal("import row violations", err)
			}
			if len(r.Violations) == 0 {
				r.Violations = nil
			}
			out[r.Line] = r
			return nil
		})
	})
	if err != nil {
		return nil, formatError(err, "Import row")
	}
	return out, nil
}

// InsertImportRows records many lines; ECONFLICT if one was recorded.
func (tx *Tx) InsertImportRows(ctx context.Context, rs []*custos.ImportRow) error {
	return sqlutil.Chunks(len(rs), func(lo, hi int) error {
		args := make([]any, 0, 6*(hi-lo))
		for _, r := range rs[lo:hi] {
			vs := r.Violations
			if vs == nil {
				vs = []custos.Violation{}
			}
			b, err := json.Marshal(vs)
			if err != nil {
				return internal("import row violations", err)
			}
			args = append(args, r.Job, r.Line, r.Status, string(r.SubjectID), b, r.Message)
		}
		return sqlutil.InsertRows(ctx, stmtQuerier{tx}, "Import row",
			`INSERT INTO import_rows (job, line, status, subject_id, violations, message) VALUES `+sqlutil.Values(hi-lo, 6), hi-lo, args)
	})
}
