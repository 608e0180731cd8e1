package sqlutil

import (
	"encoding/json"
	"strings"

	"custos"
)

// Rights request statements, shared by both stores (SQLite placeholders;
// PostgreSQL passes them through Dollar).
const (
	InsertRightsSQL = `INSERT INTO rights_requests (id, subject_id, status, filed_at, deadline, doc, sealed) VALUES (?, ?, ?, ?, ?, ?, ?)`
	GetRightsSQL    = `SELECT doc, sealed FROM rights_requests WHERE id = ?`
	UpdateRightsSQL = `UPDATE rights_requests SET status = ?, deadline = ?, doc = ?, sealed = ? WHERE id = ?`
)

// RightsArgs are the InsertRightsSQL arguments for r.
func RightsArgs(r *custos.StoredRightsRequest) ([]any, error) {
	doc, err := json.Marshal(r.Request)
	if err != nil {
		return nil, err
	}
	q := r.Request
	return []any{q.ID, string(q.SubjectID), q.Status, Micros(q.FiledAt), Micros(q.Deadline), string(doc), r.Sealed}, nil
}

// RightsUpdateArgs are the UpdateRightsSQL arguments for r.
func RightsUpdateArgs(r *custos.StoredRightsRequest) ([]any, error) {
	doc, err := json.Marshal(r.Request)
	if err != nil {
		return nil, err
	}
	q := r.Request
	return []any{q.Status, Micros(q.Deadline), string(doc), r.Sealed, q.ID}, nil
}

// ScanRights reads one (doc, sealed) row.
func ScanRights(s Scanner) (*custos.StoredRightsRequest, error) {
	var (
		doc    string
		sealed []byte
	)
	if err := s.Scan(&doc, &sealed); err != nil {
		return nil, err
	}
	var q custos.RightsRequest
	if err := json.Unmarshal([]byte(doc), &q); err != nil {
		return nil, err
	}
	return &custos.StoredRightsRequest{Request: &q, Sealed: sealed}, nil
}

// ListRightsSQL builds the query for f and its arguments.
func ListRightsSQL(f custos.RightsFilter) (string, []any) {
	var where []string
	var args []any
	if f.Status != "" {
		where = append(where, "status = ?")
		args = append(args, f.Status)
	} else {
		where = append(where, "status IN (?, ?, ?)")
		args = append(args, custos.RightsReceived, custos.RightsReview, custos.RightsInProgress)
	}
	if f.SubjectID != "" {
		where = append(where, "subject_id = ?")
		args = append(args, string(f.SubjectID))
	}
	if !f.DueBefore.IsZero() {
		where = append(where, "deadline < ?")
		args = append(args, Micros(f.DueBefore))
	}
	limit := f.Limit
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	args = append(args, limit)
	return `SELECT doc, sealed FROM rights_requests WHERE ` + strings.Join(where, " AND ") + ` ORDER BY deadline, id LIMIT ?`, args
}
