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
	ID      PrincipalID `json:"id"`
	Name    string      `json:"name"`
	Kind    string      `json:"kind"`
	Roles   []string    `json:"roles"`
	Blocked bool        `json:"blocked"`
	// Prerequisites are a staff member's compliance prerequisites; data
	// access is refused while any is missing or expired (DESIGN.md step 1).
	Prerequisites *Prerequisites `json:"prerequisites,omitempty"`
	CreatedAt     time.Time      `json:"created_at"`
}

// Prerequisites are the compliance prerequisites a staff principal needs
// before it may touch personal data (S4).
type Prerequisites struct {
	NDASignedAt        *time.Time `json:"nda_signed_at,omitempty"`
	TrainingValidUntil *time.Time `json:"training_valid_until,omitempty"`
	BackgroundCheckAt  *time.Time `json:"background_check_at,omitempty"`
}

// Missing returns the prerequisites not met at t: "nda", "training"
// (absent or expired), "background_check"; nil when all are met.
func (p *Prerequisites) Missing(t time.Time) []string {
	if p == nil {
		return []string{"nda", "training", "background_check"}
	}
	var out []string
	if p.NDASignedAt == nil || p.NDASignedAt.After(t) {
		out = append(out, "nda")
	}
	if p.TrainingValidUntil == nil || !t.Before(*p.TrainingValidUntil) {
		out = append(out, "training")
	}
	if p.BackgroundCheckAt == nil || p.BackgroundCheckAt.After(t) {
		out = append(out, "background_check")
	}
	return out
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
