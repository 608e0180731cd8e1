package sqlutil

import (
	"context"
	"encoding/json"

	"custos"
)

// Principals and API keys.

const principalColumns = `id, name, kind, roles, blocked, created_at, prerequisites`

func (st Stmts) principalSelect() string {
	return `SELECT id, name, kind, roles, ` + st.Q.BoolColumn("blocked") + `, created_at, prerequisites FROM principals`
}

// InsertPrincipal stores p. Returns ECONFLICT if the id exists.
func (st Stmts) InsertPrincipal(ctx context.Context, p *custos.Principal) error {
	roles, err := EncodeList(p.Roles)
	if err != nil {
		return st.Q.Error(err, "Principal")
	}
	pre, err := encodePrerequisites(p.Prerequisites)
	if err != nil {
		return st.Q.Error(err, "Principal")
	}
	return st.Q.Insert(ctx, "Principal", `INSERT INTO principals (`+principalColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		string(p.ID), p.Name, p.Kind, string(roles), st.Q.Bool(p.Blocked), Micros(p.CreatedAt), pre)
}

// GetPrincipal returns the principal with id, or ENOTFOUND.
func (st Stmts) GetPrincipal(ctx context.Context, id custos.PrincipalID) (*custos.Principal, error) {
	return queryOne(ctx, st.Q, "Principal", st.principalSelect()+` WHERE id = ?`, []any{string(id)}, scanPrincipal)
}

// ListPrincipals returns all principals, oldest first (ties by id).
func (st Stmts) ListPrincipals(ctx context.Context) ([]*custos.Principal, error) {
	return queryAll(ctx, st.Q, "Principal", st.principalSelect()+` ORDER BY created_at, id`, nil, scanPrincipal)
}

// UpdatePrincipal saves p's blocked flag and prerequisites. Returns
// ENOTFOUND if it does not exist.
func (st Stmts) UpdatePrincipal(ctx context.Context, p *custos.Principal) error {
	pre, err := encodePrerequisites(p.Prerequisites)
	if err != nil {
		return st.Q.Error(err, "Principal")
	}
	n, err := st.Q.Exec(ctx, `UPDATE principals SET blocked = ?, prerequisites = ? WHERE id = ?`, st.Q.Bool(p.Blocked), pre, string(p.ID))
	return st.updated(n, err, "Principal")
}

func encodePrerequisites(p *custos.Prerequisites) (string, error) {
	if p == nil {
		return "", nil
	}
	b, err := json.Marshal(p)
	return string(b), err
}

func scanPrincipal(s Scanner) (*custos.Principal, error) {
	var (
		p              custos.Principal
		id, roles, pre string
		blocked        int
		created        int64
	)
	if err := s.Scan(&id, &p.Name, &p.Kind, &roles, &blocked, &created, &pre); err != nil {
		return nil, err
	}
	if pre != "" {
		p.Prerequisites = &custos.Prerequisites{}
		if err := json.Unmarshal([]byte(pre), p.Prerequisites); err != nil {
			return nil, err
		}
	}
	var err error
	if p.Roles, err = DecodeList([]byte(roles)); err != nil {
		return nil, err
	}
	p.ID, p.Blocked, p.CreatedAt = custos.PrincipalID(id), blocked != 0, Time(created)
	return &p, nil
}

// InsertAPIKey stores k without its token: only the hash is kept. Returns
// ECONFLICT if the id or the hash exists.
func (st Stmts) InsertAPIKey(ctx context.Context, k *custos.APIKey) error {
	return st.Q.Insert(ctx, "API key", `INSERT INTO api_keys (id, principal_id, hash, created_at) VALUES (?, ?, ?, ?)`,
		k.ID, string(k.PrincipalID), k.Hash, Micros(k.CreatedAt))
}

// FindAPIKey returns the key with this SHA-256 hash (Token empty), or
// ENOTFOUND.
func (st Stmts) FindAPIKey(ctx context.Context, hash []byte) (*custos.APIKey, error) {
	return queryOne(ctx, st.Q, "API key", `SELECT id, principal_id, hash, created_at FROM api_keys WHERE hash = ?`, []any{hash},
		func(s Scanner) (*custos.APIKey, error) {
			k := &custos.APIKey{}
			var principal string
			var created int64
			if err := s.Scan(&k.ID, &principal, &k.Hash, &created); err != nil {
				return nil, err
			}
			k.PrincipalID, k.CreatedAt = custos.PrincipalID(principal), Time(created)
			return k, nil
		})
}
