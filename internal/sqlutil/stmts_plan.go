package sqlutil

import (
	"context"
	"encoding/json"
	"strings"

	"custos"
)

// Collection plans and data-use grants: each row carries the indexed
// columns and the whole object as a JSON document (no personal data).

// docOf returns the JSON document of v.
func docOf(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

// scanDoc reads one doc column into a new T.
func scanDoc[T any](s Scanner) (*T, error) {
	var doc string
	if err := s.Scan(&doc); err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// whereClause joins conditions into " WHERE …", or "" when there are none.
func whereClause(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return ` WHERE ` + strings.Join(conds, " AND ")
}

// updated maps the rows an UPDATE changed: ENOTFOUND when none.
func (st Stmts) updated(n int64, err error, entity string) error {
	if err != nil {
		return st.Q.Error(err, entity)
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "%s not found.", entity)
	}
	return nil
}

// InsertPlan stores p. Returns ECONFLICT if the id exists.
func (st Stmts) InsertPlan(ctx context.Context, p *custos.Plan) error {
	doc, err := docOf(p)
	if err != nil {
		return st.Q.Error(err, "Plan")
	}
	return st.Q.Insert(ctx, "Plan", `INSERT INTO plans (id, status, purpose, filed_at, doc) VALUES (?, ?, ?, ?, ?)`,
		string(p.ID), p.Status, p.Purpose, Micros(p.FiledAt), doc)
}

// GetPlan returns the plan with id, or ENOTFOUND.
func (st Stmts) GetPlan(ctx context.Context, id custos.PlanID) (*custos.Plan, error) {
	return queryOne(ctx, st.Q, "Plan", `SELECT doc FROM plans WHERE id = ?`, []any{string(id)}, scanDoc[custos.Plan])
}

// UpdatePlan saves p. Returns ENOTFOUND if it does not exist.
func (st Stmts) UpdatePlan(ctx context.Context, p *custos.Plan) error {
	doc, err := docOf(p)
	if err != nil {
		return st.Q.Error(err, "Plan")
	}
	n, err := st.Q.Exec(ctx, `UPDATE plans SET status = ?, doc = ? WHERE id = ?`, p.Status, doc, string(p.ID))
	return st.updated(n, err, "Plan")
}

// ListPlans returns matching plans, oldest first (ties by id).
func (st Stmts) ListPlans(ctx context.Context, f custos.PlanFilter) ([]*custos.Plan, error) {
	var conds []string
	var args []any
	if f.Status != nil {
		conds, args = append(conds, "status = ?"), append(args, *f.Status)
	}
	if f.Purpose != nil {
		conds, args = append(conds, "purpose = ?"), append(args, *f.Purpose)
	}
	return queryAll(ctx, st.Q, "Plan", `SELECT doc FROM plans`+whereClause(conds)+` ORDER BY filed_at, id`, args, scanDoc[custos.Plan])
}

// InsertGrant stores g. Returns ECONFLICT if the id exists.
func (st Stmts) InsertGrant(ctx context.Context, g *custos.Grant) error {
	doc, err := docOf(g)
	if err != nil {
		return st.Q.Error(err, "Grant")
	}
	return st.Q.Insert(ctx, "Grant", `INSERT INTO grants (id, holder, status, end_at, expired, applied_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		string(g.ID), string(g.Holder), g.Status, Micros(g.End), st.Q.Bool(g.Expired), Micros(g.AppliedAt), doc)
}

// GetGrant returns the grant with id, or ENOTFOUND.
func (st Stmts) GetGrant(ctx context.Context, id custos.GrantID) (*custos.Grant, error) {
	return queryOne(ctx, st.Q, "Grant", `SELECT doc FROM grants WHERE id = ?`, []any{string(id)}, scanDoc[custos.Grant])
}

// UpdateGrant saves g. Returns ENOTFOUND if it does not exist.
func (st Stmts) UpdateGrant(ctx context.Context, g *custos.Grant) error {
	doc, err := docOf(g)
	if err != nil {
		return st.Q.Error(err, "Grant")
	}
	n, err := st.Q.Exec(ctx, `UPDATE grants SET status = ?, end_at = ?, expired = ?, doc = ? WHERE id = ?`,
		g.Status, Micros(g.End), st.Q.Bool(g.Expired), doc, string(g.ID))
	return st.updated(n, err, "Grant")
}

// ListGrants returns matching grants, oldest first (ties by id).
func (st Stmts) ListGrants(ctx context.Context, f custos.GrantFilter) ([]*custos.Grant, error) {
	var conds []string
	var args []any
	if f.Holder != nil {
		conds, args = append(conds, "holder = ?"), append(args, string(*f.Holder))
	}
	if f.Status != nil {
		conds, args = append(conds, "status = ?"), append(args, *f.Status)
	}
	if f.EndBefore != nil {
		conds, args = append(conds, "end_at <= ?"), append(args, Micros(*f.EndBefore))
	}
	if f.Expired != nil {
		conds, args = append(conds, "expired = ?"), append(args, st.Q.Bool(*f.Expired))
	}
	return queryAll(ctx, st.Q, "Grant", `SELECT doc FROM grants`+whereClause(conds)+` ORDER BY applied_at, id`, args, scanDoc[custos.Grant])
}
