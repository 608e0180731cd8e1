package core

import (
	"context"
	"maps"
	"slices"
	"time"

	"custos"
	"custos/mask"
	"custos/validate"
)

// Self-service: what the privacy portal shows and does for a customer whose
// identity a one-time code verified (WithSelf). Every call is audited with
// the portal as actor.

// AuditPortalSignIn and AuditPortalView are the portal's audit actions.
const (
	AuditPortalSignIn = "portal.signin"
	AuditPortalView   = "portal.view"
)

// SignInSubject finds the customer a sign-in names by mobile or e-mail,
// through the blind index. It returns "" (and no error) when there is none,
// so that the portal can answer alike whether or not an account exists.
func (s *Service) SignInSubject(ctx context.Context, field, value string) (custos.SubjectID, error) {
	if field != "mobile" && field != "email" {
		return "", custos.Invalid("Sign in with a mobile number or an e-mail address.", custos.Violation{Field: "field", Rule: "enum", Detail: "mobile or email"})
	}
	def := s.catalog.Field(field)
	if def == nil || !def.Lookup {
		return "", custos.Invalid("This catalog cannot look customers up by "+field+".", custos.Violation{Field: "field", Rule: "not_lookup_key"})
	}
	fn, ok := validate.Lookup(def.Validator)
	if !ok {
		return "", custos.Invalid("No validator.", custos.Violation{Field: field, Rule: "validator_unknown"})
	}
	norm, rule, detail := fn(value, validate.Options{Enum: def.Enum, MaxLen: def.MaxLen, Now: time.Now()})
	if rule != "" {
		return "", custos.Invalid("Not a valid "+field+".", custos.Violation{Field: field, Rule: rule, Detail: detail})
	}
	hash := s.indexer.Load().Index(field, norm)
	var id custos.SubjectID
	err := s.store.View(ctx, func(tx custos.Tx) error {
		var err error
		id, err = tx.FindLookup(ctx, field, hash)
		if custos.ErrorCode(err) == custos.ENOTFOUND {
			return nil
		}
		return err
	})
	return id, err
}

// SelfField is one held field as the customer sees it in the portal.
type SelfField struct {
	Name     string
	Category string
	Masked   string
}

// SelfPurpose is a consent-based purpose of the current notice and the
// customer's decision on it.
type SelfPurpose struct {
	Name       string
	Fields     []string
	Sensitive  []string // sensitive categories it uses, each with its own decision
	Action     string   // granted, refused, withdrawn or "" (not decided)
	Categories map[string]string
}

// SelfView is the portal's home page: what is held (masked as the catalog
// says), the consent-based purposes, and the customer's requests.
type SelfView struct {
	SubjectID custos.SubjectID
	Fields    []SelfField
	Records   map[string]int
	Purposes  []SelfPurpose
	Notice    *custos.Notice
	Requests  []*custos.RightsRequest
	Minor     bool
}

// SelfView returns the customer's own view. Requires WithSelf.
func (s *Service) SelfView(ctx context.Context) (*SelfView, error) {
	id := Self(ctx)
	ev := rightsEvent(ctx, AuditPortalView, id)
	if id == "" {
		return nil, custos.Errorf(custos.EUNAUTHORIZED, "Sign in first.")
	}
	v := &SelfView{SubjectID: id, Records: map[string]int{}}
	var (
		st   *custos.StoredSubject
		dk   *custos.DataKey
		cons *consentView
	)
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		var err error
		if st, err = tx.GetSubject(ctx, id); err != nil {
			return err
		}
		if dk, err = tx.GetDataKey(ctx, id); err != nil {
			return err
		}
		recs, err := tx.ListRecords(ctx, id, "")
		if err != nil {
			return err
		}
		for _, r := range recs {
			if !restricted(r.RestrictedUntil, tx.Now()) {
				v.Records[r.Type]++
			}
		}
		cs, err := tx.ListConsents(ctx, id)
		if err != nil {
			return err
		}
		if cons, err = s.newConsentView(ctx, tx, cs); err != nil {
			return err
		}
		if v.Notice, err = currentNotice(ctx, tx); err != nil {
			return err
		}
		ev.Fields = storedFields(st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, err
	}
	plain := map[string]string{}
	for _, name := range storedFields(st) {
		f := s.catalog.Field(name)
		if f == nil || f.Secret {
			continue
		}
		pt, err := aead.Open(st.Sealed[name], dekAAD("subjects", name, id, "", dk.Version))
		if err != nil {
			return nil, err
		}
		plain[name] = string(pt)
		v.Fields = append(v.Fields, SelfField{Name: name, Category: f.Category, Masked: mask.Apply(f.Mask, string(pt))})
	}
	if age, ok := ageAt(plain, time.Now()); ok && age < MinorAge {
		v.Minor = true
	}
	if v.Notice != nil {
		for _, np := range v.Notice.Content.Purposes {
			if np.LegalBasis != "consent" {
				continue
			}
			sp := SelfPurpose{Name: np.Name, Fields: np.Fields, Sensitive: s.sensitiveCategories(&np), Categories: map[string]string{}}
			if c := cons.latest[consentKey{np.Name, ""}]; c != nil {
				sp.Action = c.Action
			}
			for _, cat := range sp.Sensitive {
				if c := cons.latest[consentKey{np.Name, custos.ScopeSensitive + cat}]; c != nil {
					sp.Categories[cat] = c.Action
				}
			}
			v.Purposes = append(v.Purposes, sp)
		}
	}
	v.Requests, err = s.RightsRequests(ctx, custos.RightsFilter{})
	return v, err
}

// SelfConsent gives (with a decision for each sensitive category the
// purpose uses) or withdraws consent to one purpose from the portal.
func (s *Service) SelfConsent(ctx context.Context, purpose string, grant bool, categories map[string]bool) error {
	id := Self(ctx)
	if id == "" {
		return custos.Errorf(custos.EUNAUTHORIZED, "Sign in first.")
	}
	fctx := fulfiller(ctx)
	if !grant {
		_, err := s.WithdrawConsent(fctx, id, purpose, "", "portal")
		return err
	}
	n, err := s.Notice(ctx, 0)
	if err != nil {
		return err
	}
	yes := true
	c := custos.ConsentCapture{NoticeVersion: n.Version, Kind: custos.CaptureChange, Channel: "portal", InitiatedBy: "customer",
		Evidence: "privacy portal, signed in with a one-time code", Decisions: []custos.ConsentDecision{{Purpose: purpose, Granted: &yes}}}
	for _, cat := range slices.Sorted(maps.Keys(categories)) {
		g := categories[cat]
		c.Decisions = append(c.Decisions, custos.ConsentDecision{Purpose: purpose, Category: cat, Granted: &g})
	}
	_, err = s.CaptureConsent(fctx, id, c)
	return err
}
