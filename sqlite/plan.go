package sqlite

import (
	"context"
	"encoding/json"
	"strings"

	"custos"
	"custos/internal/sqlutil"
)

// InsertPlan stores p. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertPlan(ctx context.Context, p *custos.Plan) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return internal("plan", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO plans (id, status, purpose, filed_at, doc) VALUES (?, ?, ?, ?, ?)`,
		string(p.ID), p.Status, p.Purpose, sqlutil.Micros(p.FiledAt), string(doc))
	return formatError(err, "Plan")
}

// GetPlan returns the plan with id, or ENOTFOUND.
func (tx *Tx) GetPlan(ctx context.Context, id custos.PlanID) (*custos.Plan, error) {
	var doc string
	if err := tx.scanRow(ctx, `SELECT doc FROM plans WHERE id = ?`, []any{string(id)}, &doc); err != nil {
		return nil, formatError(err, "Plan")
	}
	var p custos.Plan
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return nil, internal("plan", err)
	}
	return &p, nil
}

// UpdatePlan saves p. Returns ENOTFOUND if it does not exist.
func (tx *Tx) UpdatePlan(ctx context.Context, p *custos.Plan) error {
	doc, err := json.Marshal(p)
	if err != nil {
		return internal("plan", err)
	}
	n, err := tx.affected(ctx, `UPDATE plans SET status = ?, doc = ? WHERE id = ?`, p.Status, string(doc), string(p.ID))
	if err != nil {
		return formatError(err, "Plan")
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Plan not found.")
	}
	return nil
}

// ListPlans returns matching plans, oldest first (ties by id).
func (tx *Tx) ListPlans(ctx context.Context, f custos.PlanFilter) ([]*custos.Plan, error) {
	var where []string
	var args []any
	if f.Status != nil {
		where, args = append(where, "status = ?"), append(args, *f.Status)
	}
	if f.Purpose != nil {
		where, args = append(where, "purpose = ?"), append(args, *f.Purpose)
	}
	q := `SELECT doc FROM plans`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	out := []*custos.Plan{}
	err := tx.query(ctx, q+` ORDER BY filed_at, id`, args, func(s scanner) error {
		var doc string
		if err := s.Scan(&doc); err != nil {
			return err
		}
		var p custos.Plan
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			return internal("plan", err)
		}
		out = append(out, &p)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Plan")
	}
	return out, nil
}

// InsertGrant stores g. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertGrant(ctx context.Context, g *custos.Grant) error {
	doc, err := json.Marshal(g)
	if err != nil {
		return internal("grant", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO grants (id, holder, status, end_at, expired, applied_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		string(g.ID), string(g.Holder), g.Status, sqlutil.Micros(g.End), boolInt(g.Expired), sqlutil.Micros(g.AppliedAt), string(doc))
	return formatError(err, "Grant")
}

// GetGrant returns the grant with id, or ENOTFOUND.
func (tx *Tx) GetGrant(ctx context.Context, id custos.GrantID) (*custos.Grant, error) {
	var doc string
	if err := tx.scanRow(ctx, `SELECT doc FROM grants WHERE id = ?`, []any{string(id)}, &doc); err != nil {
		return nil, formatError(err, "Grant")
	}
	var g custos.Grant
	if err := json.Unmarshal([]byte(doc), &g); err != nil {
		return nil, internal("grant", err)
	}
	return &g, nil
}

// UpdateGrant saves g. Returns ENOTFOUND if it does not exist.
func (tx *Tx) UpdateGrant(ctx context.Context, g *custos.Grant) error {
	doc, err := json.Marshal(g)
	if err != nil {
		return internal("grant", err)
	}
	n, err := tx.affected(ctx, `UPDATE grants SET status = ?, end_at = ?, expired = ?, doc = ? WHERE id = ?`,
		g.Status, sqlutil.Micros(g.End), boolInt(g.Expired), string(doc), string(g.ID))
	if err != nil {
		return formatError(err, "Grant")
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Grant not found.")
	}
	return nil
}

// ListGrants returns matching grants, oldest first (ties by id).
func (tx *Tx) ListGrants(ctx context.Context, f custos.GrantFilter) ([]*custos.Grant, error) {
	var where []string
	var args []any
	if f.Holder != nil {
		where, args = append(where, "holder = ?"), append(args, string(*f.Holder))
	}
	if f.Status != nil {
		where, args = append(where, "status = ?"), append(args, *f.Status)
	}
	if f.EndBefore != nil {
		where, args = append(where, "end_at <= ?"), append(args, sqlutil.Micros(*f.EndBefore))
	}
	if f.Expired != nil {
		where, args = append(where, "expired = ?"), append(args, boolInt(*f.Expired))
	}
	q := `SELECT doc FROM grants`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	out := []*custos.Grant{}
	err := tx.query(ctx, q+` ORDER BY applied_at, id`, args, func(s scanner) error {
		var doc string
		if err := s.Scan(&doc); err != nil {
			return err
		}
		var g custos.Grant
		if err := json.Unmarshal([]byte(doc), &g); err != nil {
			return internal("grant", err)
		}
		out = append(out, &g)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Grant")
	}
	return out, nil
}
