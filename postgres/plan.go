package postgres

import (
	"context"
	"encoding/json"
	"strconv"
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
	_, err = tx.exec(ctx, `INSERT INTO plans (id, status, purpose, filed_at, doc) VALUES ($1, $2, $3, $4, $5)`,
		string(p.ID), p.Status, p.Purpose, sqlutil.Micros(p.FiledAt), doc)
	return formatError(err, "Plan")
}

// GetPlan returns the plan with id, or ENOTFOUND.
func (tx *Tx) GetPlan(ctx context.Context, id custos.PlanID) (*custos.Plan, error) {
	var doc string
	if err := tx.scanRow(ctx, `SELECT doc FROM plans WHERE id = $1`, []any{string(id)}, &doc); err != nil {
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
	n, err := tx.affected(ctx, `UPDATE plans SET status = $1, doc = $2 WHERE id = $3`, p.Status, string(doc), string(p.ID))
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
		args = append(args, *f.Status)
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	if f.Purpose != nil {
		args = append(args, *f.Purpose)
		where = append(where, "purpose = $"+strconv.Itoa(len(args)))
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
	return tx.insert(ctx, "Grant", `INSERT INTO grants (id, holder, status, end_at, expired, applied_at, doc) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		string(g.ID), string(g.Holder), g.Status, sqlutil.Micros(g.End), g.Expired, sqlutil.Micros(g.AppliedAt), string(doc))
}

// GetGrant returns the grant with id, or ENOTFOUND.
func (tx *Tx) GetGrant(ctx context.Context, id custos.GrantID) (*custos.Grant, error) {
	var doc string
	if err := tx.scanRow(ctx, `SELECT doc FROM grants WHERE id = $1`, []any{string(id)}, &doc); err != nil {
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
	n, err := tx.affected(ctx, `UPDATE grants SET status = $1, end_at = $2, expired = $3, doc = $4 WHERE id = $5`,
		g.Status, sqlutil.Micros(g.End), g.Expired, string(doc), string(g.ID))
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
		args = append(args, string(*f.Holder))
		where = append(where, "holder = $"+strconv.Itoa(len(args)))
	}
	if f.Status != nil {
		args = append(args, *f.Status)
		where = append(where, "status = $"+strconv.Itoa(len(args)))
	}
	if f.EndBefore != nil {
		args = append(args, sqlutil.Micros(*f.EndBefore))
		where = append(where, "end_at <= $"+strconv.Itoa(len(args)))
	}
	if f.Expired != nil {
		args = append(args, *f.Expired)
		where = append(where, "expired = $"+strconv.Itoa(len(args)))
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
