package sqlite

import (
	"context"
	"encoding/json"

	"custos"
	"custos/internal/sqlutil"
)

const principalColumns = `id, name, kind, roles, blocked, created_at, prerequisites`

// InsertPrincipal stores p. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertPrincipal(ctx context.Context, p *custos.Principal) error {
	roles, err := encodeList(p.Roles)
	if err != nil {
		return internal("principal", err)
	}
	pre, err := encodePrerequisites(p.Prerequisites)
	if err != nil {
		return internal("principal", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO principals (`+principalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		string(p.ID), p.Name, p.Kind, roles, boolInt(p.Blocked), sqlutil.Micros(p.CreatedAt), pre)
	return formatError(err, "Principal")
}

// GetPrincipal returns the principal with id, or ENOTFOUND.
func (tx *Tx) GetPrincipal(ctx context.Context, id custos.PrincipalID) (*custos.Principal, error) {
	var p *custos.Principal
	err := tx.queryRow(ctx, `SELECT `+principalColumns+` FROM principals WHERE id = ?`, []any{string(id)},
		func(s scanner) (err error) {
			p, err = scanPrincipal(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Principal")
	}
	return p, nil
}

// ListPrincipals returns all principals, oldest first.
func (tx *Tx) ListPrincipals(ctx context.Context) ([]*custos.Principal, error) {
	ps := []*custos.Principal{}
	err := tx.query(ctx, `SELECT `+principalColumns+` FROM principals ORDER BY created_at, id`, nil, func(s scanner) error {
		p, err := scanPrincipal(s)
		if err != nil {
			return err
		}
		ps = append(ps, p)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Principal")
	}
	return ps, nil
}

// UpdatePrincipal saves p's blocked flag and prerequisites. Returns
// ENOTFOUND if it does not exist.
func (tx *Tx) UpdatePrincipal(ctx context.Context, p *custos.Principal) error {
	pre, err := encodePrerequisites(p.Prerequisites)
	if err != nil {
		return internal("principal", err)
	}
	n, err := tx.affected(ctx, `UPDATE principals SET blocked = ?, prerequisites = ? WHERE id = ?`, boolInt(p.Blocked), pre, string(p.ID))
	if err != nil {
		return formatError(err, "Principal")
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Principal not found.")
	}
	return nil
}

func encodePrerequisites(p *custos.Prerequisites) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	return string(b), err
}

func decodePrerequisites(s string) (*custos.Prerequisites, error) {
	if s == "" {
		return nil, nil
	}
	var p custos.Prerequisites
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func scanPrincipal(s scanner) (_ *custos.Principal, err error) {
	var (
		p         custos.Principal
		id, roles string
		blocked   int
		created   int64
		pre       string
	)
	if err := s.Scan(&id, &p.Name, &p.Kind, &roles, &blocked, &created, &pre); err != nil {
		return nil, err
	}
	if p.Prerequisites, err = decodePrerequisites(pre); err != nil {
		return nil, internal("principal prerequisites", err)
	}
	if p.Roles, err = decodeList(roles); err != nil {
		return nil, internal("principal roles", err)
	}
	p.ID, p.Blocked, p.CreatedAt = custos.PrincipalID(id), blocked != 0, sqlutil.Time(created)
	return &p, nil
}

// InsertAPIKey stores k without its token: only the hash is kept. Returns
// ECONFLICT if the id or the hash exists.
func (tx *Tx) InsertAPIKey(ctx context.Context, k *custos.APIKey) error {
	_, err := tx.exec(ctx, `INSERT INTO api_keys (id, principal_id, hash, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, string(k.PrincipalID), k.Hash, sqlutil.Micros(k.CreatedAt))
	return formatError(err, "API key")
}

// FindAPIKey returns the key with this SHA-256 hash (Token empty), or
// ENOTFOUND.
func (tx *Tx) FindAPIKey(ctx context.Context, hash []byte) (*custos.APIKey, error) {
	k := &custos.APIKey{}
	var principal string
	var created int64
	if err := tx.scanRow(ctx, `SELECT id, principal_id, hash, created_at FROM api_keys WHERE hash = ?`,
		[]any{hash}, &k.ID, &principal, &k.Hash, &created); err != nil {
		return nil, formatError(err, "API key")
	}
	k.PrincipalID, k.CreatedAt = custos.PrincipalID(principal), sqlutil.Time(created)
	return k, nil
}
