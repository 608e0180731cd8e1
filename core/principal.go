package core

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"custos"
	"custos/keys"
)

func (s *Service) requireAction(ctx context.Context, ev *custos.AuditEvent, action string) error {
	p := custos.ActorFromContext(ctx)
	if p == nil {
		return custos.Errorf(custos.EUNAUTHORIZED, "Authentication required.")
	}
	if p.Blocked {
		return s.refuse(ctx, ev, "principal_blocked")
	}
	for _, r := range p.Roles {
		if role := s.catalog.Role(r); role != nil && slices.Contains(role.Actions, action) {
			return nil
		}
	}
	return s.refuse(ctx, ev, "action_not_allowed")
}

// CreatePrincipal implements custos.PrincipalService.
func (s *Service) CreatePrincipal(ctx context.Context, p *custos.Principal) error {
	ev := event(ctx, custos.AuditPrincipalCreate, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActPrincipalManage); err != nil {
		return err
	}
	var vs []custos.Violation
	p.Name = strings.TrimSpace(p.Name)
	if n := utf8.RuneCountInString(p.Name); n == 0 || n > 100 {
		vs = append(vs, custos.Violation{Field: "name", Rule: "required", Detail: "1–100 characters"})
	}
	switch p.Kind {
	case custos.KindService, custos.KindStaff, custos.KindPartner:
	default:
		vs = append(vs, custos.Violation{Field: "kind", Rule: "enum", Detail: "service, staff or partner"})
	}
	if len(p.Roles) == 0 {
		vs = append(vs, custos.Violation{Field: "roles", Rule: "required"})
	}
	for _, r := range p.Roles {
		if s.catalog.Role(r) == nil {
			vs = append(vs, custos.Violation{Field: "roles", Rule: "unknown_role", Detail: "not a role in the catalog"})
		}
	}
	if len(vs) > 0 {
		return s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The principal was not created.", Violations: vs})
	}
	p.ID = custos.PrincipalID(custos.NewID("prn"))
	p.Prerequisites = normPrerequisites(p.Prerequisites)
	ev.Reason = "principal " + string(p.ID)
	return s.run(ctx, ev, func(tx custos.Tx) error {
		p.CreatedAt = tx.Now()
		return tx.InsertPrincipal(ctx, p)
	})
}

// FindPrincipals implements custos.PrincipalService.
func (s *Service) FindPrincipals(ctx context.Context) ([]*custos.Principal, error) {
	ev := event(ctx, custos.AuditPrincipalList, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActPrincipalManage); err != nil {
		return nil, err
	}
	var out []*custos.Principal
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListPrincipals(ctx)
		return err
	})
	return out, err
}

// CreateAPIKey implements custos.PrincipalService. Only the SHA-256 of the
// token is stored; the token is returned here once.
func (s *Service) CreateAPIKey(ctx context.Context, id custos.PrincipalID) (*custos.APIKey, error) {
	ev := event(ctx, custos.AuditAPIKeyCreate, "", nil, nil)
	ev.Reason = "principal " + string(id)
	if err := s.requireAction(ctx, ev, custos.ActPrincipalManage); err != nil {
		return nil, err
	}
	var k *custos.APIKey
	err := s.run(ctx, ev, func(tx custos.Tx) (err error) {
		k, err = s.newKey(ctx, tx, id)
		return err
	})
	return k, err
}

func (s *Service) newKey(ctx context.Context, tx custos.Tx, id custos.PrincipalID) (*custos.APIKey, error) {
	if _, err := tx.GetPrincipal(ctx, id); err != nil {
		return nil, err
	}
	token, hash, err := keys.NewToken(s.rand)
	if err != nil {
		return nil, err
	}
	k := &custos.APIKey{ID: custos.NewID("key"), PrincipalID: id, Hash: hash, CreatedAt: tx.Now()}
	if err := tx.InsertAPIKey(ctx, k); err != nil {
		return nil, err
	}
	k.Token = token
	return k, nil
}

// Authenticate implements custos.PrincipalService.
func (s *Service) Authenticate(ctx context.Context, token string) (*custos.Principal, error) {
	// Made only for a refusal: every request authenticates, and an error
	// built for each was two allocations and a Sprintf on the answered
	// ones too.
	unauth := func() error { return custos.Errorf(custos.EUNAUTHORIZED, "Invalid API key.") }
	if token == "" || len(token) > 200 {
		return nil, unauth()
	}
	hash := keys.TokenHash(token)
	if p := s.auth.get(hash); p != nil {
		return p, nil
	}
	var p *custos.Principal
	err := s.store.View(ctx, func(tx custos.Tx) error {
		k, err := tx.FindAPIKey(ctx, hash)
		if err != nil {
			return err
		}
		p, err = tx.GetPrincipal(ctx, k.PrincipalID)
		return err
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, unauth()
	} else if err != nil {
		return nil, err
	}
	s.auth.put(hash, p)
	return p, nil
}

// AuthCacheTTL is how long a verified API key is remembered, sparing two
// queries per request. Anything that later revokes a key or blocks a
// principal must call Service.ForgetCredentials so the change is immediate.
const AuthCacheTTL = 5 * time.Second

// authCache remembers verified API keys by their SHA-256 for AuthCacheTTL.
type authCache struct {
	mu sync.Mutex
	m  map[string]authEntry
}

type authEntry struct {
	p       *custos.Principal
	expires time.Time
}

func (c *authCache) get(hash []byte) *custos.Principal {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[string(hash)]
	if !ok || time.Now().After(e.expires) {
		return nil
	}
	cp := *e.p
	return &cp
}

func (c *authCache) put(hash []byte, p *custos.Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= 10000 {
		c.m = map[string]authEntry{} // bounded: start over rather than grow
	}
	cp := *p
	c.m[string(hash)] = authEntry{p: &cp, expires: time.Now().Add(AuthCacheTTL)}
}

// ForgetCredentials drops every remembered API key.
func (s *Service) ForgetCredentials() {
	s.auth.mu.Lock()
	s.auth.m = nil
	s.auth.mu.Unlock()
}

// MetaBootstrap is the meta key marking that the bootstrap admin exists.
const MetaBootstrap = "bootstrap_admin"

// Bootstrap creates the first admin principal and returns its API key
// token, once per store. Later calls return "" and no error.
func (s *Service) Bootstrap(ctx context.Context) (token string, err error) {
	err = s.store.Update(ctx, func(tx custos.Tx) error {
		// Taking the audit head first serialises nodes starting together
		// on one database, so exactly one creates the admin.
		if _, _, err := tx.AuditHead(ctx); err != nil {
			return err
		}
		if _, err := tx.GetMeta(ctx, MetaBootstrap); err == nil {
			return nil
		} else if custos.ErrorCode(err) != custos.ENOTFOUND {
			return err
		}
		// The bootstrap admin is the installation's own credential, not a
		// person: staff prerequisites (NDA, training) gate the people it
		// creates, not it.
		p := &custos.Principal{ID: custos.PrincipalID(custos.NewID("prn")), Name: "bootstrap admin", Kind: custos.KindService,
			Roles: []string{custos.RoleAdmin}, CreatedAt: tx.Now()}
		if err := tx.InsertPrincipal(ctx, p); err != nil {
			return err
		}
		k, err := s.newKey(ctx, tx, p.ID)
		if err != nil {
			return err
		}
		if err := tx.SetMeta(ctx, MetaBootstrap, string(p.ID)); err != nil {
			return err
		}
		if err := s.recordKeyIDs(ctx, tx); err != nil {
			return err
		}
		token = k.Token
		return s.appendAudit(ctx, tx, &custos.AuditEvent{ActorID: "system", Action: custos.AuditInit, Decision: custos.DecisionAllow,
			Reason: "bootstrap admin " + string(p.ID)})
	})
	return token, err
}

// MaxAuditPage is the most audit events one FindAuditEvents call returns;
// page on with AfterSeq.
const MaxAuditPage = 1000

// FindAuditEvents implements custos.AuditService. Reading the audit log is
// itself audited.
func (s *Service) FindAuditEvents(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	ev := event(ctx, custos.AuditAuditRead, "", nil, nil)
	if f.SubjectID != nil {
		ev.SubjectID = *f.SubjectID
	}
	if err := s.requireAction(ctx, ev, custos.ActAuditRead); err != nil {
		return nil, err
	}
	if f.Limit <= 0 {
		f.Limit = 100
	} else if f.Limit > MaxAuditPage {
		f.Limit = MaxAuditPage
	}
	var out []*custos.AuditEvent
	err := s.run(ctx, ev, func(tx custos.Tx) (err error) {
		out, err = tx.FindAuditEvents(ctx, f)
		return err
	})
	return out, err
}

// Meta keys naming the keys a store was set up with.
const (
	MetaKeyringID = "keyring_id"   // fingerprint of the index root (never changes on rotation)
	MetaSignerID  = "audit_key_id" // the audit signing key's id
)

// keyringID fingerprints the keyring by its index root, which rotation
// keeps, so the fingerprint names the installation and reveals nothing.
func (s *Service) keyringID() (string, error) {
	k, err := s.ring.Load().DeriveKey("keyring fingerprint")
	if err != nil {
		return "", err
	}
	defer keys.Zero(k)
	return hex.EncodeToString(k[:8]), nil
}

func (s *Service) recordKeyIDs(ctx context.Context, tx custos.Tx) error {
	id, err := s.keyringID()
	if err != nil {
		return err
	}
	if err := tx.SetMeta(ctx, MetaKeyringID, id); err != nil {
		return err
	}
	if s.signer != nil {
		return tx.SetMeta(ctx, MetaSignerID, s.signer.KeyID())
	}
	return nil
}

// CheckKeys refuses keys that are not the ones the store was set up with:
// a node started with another installation's key files would write data
// no other node can read and miss every existing lookup key. A store set
// up before fingerprints were recorded gets them now.
func (s *Service) CheckKeys(ctx context.Context) error {
	id, err := s.keyringID()
	if err != nil {
		return err
	}
	return s.store.Update(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetMeta(ctx, MetaBootstrap); custos.ErrorCode(err) == custos.ENOTFOUND {
			return nil // not set up yet: Bootstrap records them
		} else if err != nil {
			return err
		}
		want, err := tx.GetMeta(ctx, MetaKeyringID)
		if custos.ErrorCode(err) == custos.ENOTFOUND {
			return s.recordKeyIDs(ctx, tx)
		} else if err != nil {
			return err
		}
		if want != id {
			return custos.Errorf(custos.ESEALED, "The master key file belongs to another installation (keyring %s, store expects %s).", id, want)
		}
		if s.signer != nil {
			if sid, err := tx.GetMeta(ctx, MetaSignerID); err == nil && sid != s.signer.KeyID() {
				return custos.Errorf(custos.ESEALED, "The audit signing key belongs to another installation (key %s, store expects %s).", s.signer.KeyID(), sid)
			}
		}
		return nil
	})
}
