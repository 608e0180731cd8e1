package custos

import (
	"context"
	"time"
)

// PrincipalID identifies a staff member, service or partner ("prn_…").
type PrincipalID string

// Principal kinds.
const (
	KindService = "service"
	KindStaff   = "staff"
	KindPartner = "partner"
)

// Principal is someone or something that acts on personal data.
type Principal struct {
	ID        PrincipalID `json:"id"`
	Name      string      `json:"name"`
	Kind      string      `json:"kind"`
	Roles     []string    `json:"roles"`
	Blocked   bool        `json:"blocked"`
	CreatedAt time.Time   `json:"created_at"`
}

// APIKey is a credential of a principal. Only the SHA-256 of the token is
// stored; the token itself is returned once, at creation.
type APIKey struct {
	ID          string      `json:"id"`
	PrincipalID PrincipalID `json:"principal_id"`
	Hash        []byte      `json:"-"`
	Token       string      `json:"token,omitempty"` // only in the creation response
	CreatedAt   time.Time   `json:"created_at"`
}

// PrincipalService manages principals and their keys. Requires the
// principal.manage action.
type PrincipalService interface {
	// CreatePrincipal returns EINVALID for an unknown role or kind.
	CreatePrincipal(ctx context.Context, p *Principal) error
	// FindPrincipals lists all principals.
	FindPrincipals(ctx context.Context) ([]*Principal, error)
	// CreateAPIKey makes a key for a principal; the token is set once.
	CreateAPIKey(ctx context.Context, id PrincipalID) (*APIKey, error)
	// Authenticate returns the principal owning token, or EUNAUTHORIZED.
	Authenticate(ctx context.Context, token string) (*Principal, error)
}
