package sqlutil

import (
	"context"
	"encoding/json"

	"custos"
)

// Import-row bookkeeping, shared by both stores. violations is TEXT on
// SQLite and JSONB on PostgreSQL: it is written as a JSON string and read
// as bytes, which both drivers convert.

const importRowColumns = `job, line, status, subject_id, violations, message`

// importRowArgs are one row's values in importRowColumns order.
func importRowArgs(r *custos.ImportRow) ([]any, error) {
	vs := r.Violations
	if vs == nil {
		vs = []custos.Violation{}
	}
	b, err := json.Marshal(vs)
	if err != nil {
		return nil, err
	}
	return []any{r.Job, r.Line, r.Status, string(r.SubjectID), string(b), r.Message}, nil
}

// scanImportRow reads line, status, subject_id, violations, message.
func scanImportRow(s Scanner, job string) (*custos.ImportRow, error) {
	r := &custos.ImportRow{Job: job}
	var (
		sub string
		vs  []byte
	)
	if err := s.Scan(&r.Line, &r.Status, &sub, &vs, &r.Message); err != nil {
		return nil, err
	}
	r.SubjectID = custos.SubjectID(sub)
	if err := json.Unmarshal(vs, &r.Violations); err != nil {
		return nil, err
	}
	if len(r.Violations) == 0 {
		r.Violations = nil
	}
	return r, nil
}

// GetImportRow returns line of job, or ENOTFOUND if it was not handled yet.
func (st Stmts) GetImportRow(ctx context.Context, job string, line int) (*custos.ImportRow, error) {
	var r *custos.ImportRow
	err := st.Q.QueryRow(ctx, `SELECT line, status, subject_id, violations, message FROM import_rows WHERE job = ? AND line = ?`,
		[]any{job, line}, func(s Scanner) (err error) {
			r, err = scanImportRow(s, job)
			return err
		})
	if err != nil {
		return nil, st.Q.Error(err, "Import row")
	}
	return r, nil
}

// InsertImportRow records that a line was handled, with its reasons.
// Returns ECONFLICT if it was recorded already.
func (st Stmts) InsertImportRow(ctx context.Context, r *custos.ImportRow) error {
	args, err := importRowArgs(r)
	if err != nil {
		return st.Q.Error(err, "Import row")
	}
	return st.Q.Insert(ctx, "Import row", `INSERT INTO import_rows (`+importRowColumns+`) VALUES (?, ?, ?, ?, ?, ?)`, args...)
}

// GetImportRows returns the rows of job recorded for lines, by line.
func (st Stmts) GetImportRows(ctx context.Context, job string, lines []int) (map[int]*custos.ImportRow, error) {
	out := map[int]*custos.ImportRow{}
	scan := func(s Scanner) error {
		r, err := scanImportRow(s, job)
		if err != nil {
			return err
		}
		out[r.Line] = r
		return nil
	}
	if len(lines) == 0 {
		return out, nil
	}
	all := make([]int64, len(lines))
	for i, l := range lines {
		all[i] = int64(l)
	}
	var err error
	if st.Q.ArrayParams() {
		// PostgreSQL: one probe of the key a line, each line's lookup a
		// subquery of its own (LATERAL … LIMIT 1, which the planner cannot
		// merge into a join). As "line = ANY(…)", or as a join on the
		// array, planned for a table that had grown since it was last
		// analysed (during a bulk load, before autovacuum came round), the
		// planner took the job for a few rows: the job alone was the index
		// condition and every row recorded for the job was read, 330 ms a
		// batch 370,000 lines into an import and growing with each batch
		// (BENCHMARKS.md, forty-fourth session). The key is (job, line),
		// so LIMIT 1 leaves out nothing.
		err = st.Q.Query(ctx, `SELECT r.line, r.status, r.subject_id, r.violations, r.message
			FROM unnest(?::integer[]) AS l(line) CROSS JOIN LATERAL (
				SELECT line, status, subject_id, violations, message FROM import_rows
				WHERE job = ? AND line = l.line LIMIT 1) AS r`,
			[]any{PlanEachTime{}, all, job}, scan)
	} else {
		err = queryIn(ctx, st.Q, `SELECT line, status, subject_id, violations, message FROM import_rows WHERE job = ? AND line `, job, all, scan)
	}
	if err != nil {
		return nil, st.Q.Error(err, "Import row")
	}
	return out, nil
}

// InsertImportRows records many lines; ECONFLICT if one was recorded.
func (st Stmts) InsertImportRows(ctx context.Context, rs []*custos.ImportRow) error {
	return Chunks(len(rs), func(lo, hi int) error {
		args := make([]any, 0, 6*(hi-lo))
		for _, r := range rs[lo:hi] {
			a, err := importRowArgs(r)
			if err != nil {
				return st.Q.Error(err, "Import row")
			}
			args = append(args, a...)
		}
		return InsertRows(ctx, st.Q, "Import row", `import_rows (`+importRowColumns+`) VALUES `+Values(hi-lo, 6), hi-lo, args)
	})
}
