package sqlite

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

const principalColumns = `id, name, kind, roles, blocked, created_at`

// InsertPrincipal stores p. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertPrincipal(ctx context.Context, p *custos.Principal) error {
	roles, err := encodeList(p.Roles)
	if err != nil {
		return internal("principal", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO principals (`+principalColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		string(p.ID), p.Name, p.Kind, roles, boolInt(p.Blocked), sqlutil.Micros(p.CreatedAt))
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

func scanPrincipal(s scanner) (*custos.Principal, error) {
	var (
		p         custos.Principal
		id, roles string
		blocked   int
		created   int64
	)
	if err := s.Scan(&id, &p.Name, &p.Kind, &roles, &blocked, &created); err != nil {
		return nil, err
	}
	var err error
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
