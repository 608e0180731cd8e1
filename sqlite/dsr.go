package sqlite

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

// InsertRightsRequest stores a new rights request.
func (tx *Tx) InsertRightsRequest(ctx context.Context, r *custos.StoredRightsRequest) error {
	args, err := sqlutil.RightsArgs(r)
	if err != nil {
		return internal("rights request", err)
	}
	_, err = tx.exec(ctx, (sqlutil.InsertRightsSQL), args...)
	return formatError(err, "Rights request")
}

// GetRightsRequest returns the request with id, or ENOTFOUND.
func (tx *Tx) GetRightsRequest(ctx context.Context, id string) (*custos.StoredRightsRequest, error) {
	var r *custos.StoredRightsRequest
	err := tx.queryRow(ctx, (sqlutil.GetRightsSQL), []any{id}, func(s scanner) (err error) {
		r, err = sqlutil.ScanRights(s)
		return err
	})
	if err != nil {
		return nil, formatError(err, "Rights request")
	}
	return r, nil
}

// UpdateRightsRequest saves r; ENOTFOUND if it does not exist.
func (tx *Tx) UpdateRightsRequest(ctx context.Context, r *custos.StoredRightsRequest) error {
	args, err := sqlutil.RightsUpdateArgs(r)
	if err != nil {
		return internal("rights request", err)
	}
	n, err := tx.affected(ctx, (sqlutil.UpdateRightsSQL), args...)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Rights request not found.")
	}
	return formatError(err, "Rights request")
}

// ListRightsRequests returns requests matching f, earliest deadline first.
func (tx *Tx) ListRightsRequests(ctx context.Context, f custos.RightsFilter) ([]*custos.StoredRightsRequest, error) {
	q, args := sqlutil.ListRightsSQL(f)
	out := []*custos.StoredRightsRequest{}
	err := tx.query(ctx, (q), args, func(s scanner) error {
		r, err := sqlutil.ScanRights(s)
		if err == nil {
			out = append(out, r)
		}
		return err
	})
	if err != nil {
		return nil, formatError(err, "Rights request")
	}
	return out, nil
}
