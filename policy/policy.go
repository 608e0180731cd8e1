// Package policy holds custos's access decision: one pure function that, for
// a principal, an action, declared purposes and a set of fields or record
// types, says per item plain, masked or denied, with a reason code
// (DESIGN.md "Access decision"). It does no I/O; core/ gathers the input and
// applies the result.
package policy

import (
	"slices"
	"time"

	"custos"
)

// Reason codes. They are stable: clients and audit reviewers key on them.
const (
	ReasonPrincipalUnknown  = "principal_unknown"
	ReasonPrincipalBlocked  = "principal_blocked"
	ReasonActionNotAllowed  = "action_not_allowed"
	ReasonPurposeMissing    = "purpose_missing"
	ReasonPurposeUnknown    = "purpose_unknown"
	ReasonPurposeNotForRole = "purpose_not_for_role"
	ReasonFieldUnknown      = "field_unknown"
	ReasonFieldNotInPurpose = "field_not_for_purpose"
	ReasonCategoryNotInRole = "category_not_for_role"
	ReasonSecret            = "secret_never_returned"
	ReasonGeneral           = "general_plain"
	ReasonInternalPlain     = "internal_plain"
	ReasonInternalMasked    = "internal_masked"
	ReasonConfidential      = "confidential_masked"
	ReasonGrant             = "grant"
	ReasonNoConsent         = "no_consent"
	ReasonConsentWithdrawn  = "consent_withdrawn"
	ReasonNoticeOutdated    = "consent_notice_outdated"
	ReasonSensitiveConsent  = "sensitive_consent_missing"
	ReasonWriteAllowed      = "write_allowed"
)

// Request is the input of Decide.
type Request struct {
	Principal *custos.Principal // nil → principal_unknown
	Action    string            // custos.Act*
	Purposes  []string          // declared by the caller; at least one
	Fields    []string          // catalog field names in question
	Records   []string          // record types in question
	Now       time.Time

	// Basis reports whether the subject's consent or the purpose's other
	// legal basis covers using item (a field name, or "record:" + a record
	// type) for purpose (step 4): "" when it does, else the reason code
	// (no_consent, consent_withdrawn, consent_notice_outdated,
	// sensitive_consent_missing). Nil means covered; core sets it from the
	// subject's consents whenever a declared purpose rests on consent.
	Basis func(purpose, item string) string
	// Grant reports whether an active grant lets the principal see a
	// confidential field in plain for the purpose (step 5). Nil means none.
	Grant func(purpose, field string) bool
}

// Decision is the output of Decide.
type Decision struct {
	Allowed bool   // false: the whole request is refused with Reason
	Reason  string // reason for a refusal, or "" when allowed
	Fields  map[string]custos.FieldDecision
	Records map[string]custos.FieldDecision
}

// Write reports whether the action changes data, so that masked makes no
// sense and a field is either allowed or denied.
func Write(action string) bool {
	switch action {
	case custos.ActSubjectCreate, custos.ActSubjectUpdate, custos.ActRecordCreate, custos.ActImport:
		return true
	}
	return false
}

// rank orders outcomes so that the most permissive across roles and
// purposes wins.
func rank(o custos.Outcome) int {
	switch o {
	case custos.Plain:
		return 2
	case custos.Masked:
		return 1
	}
	return 0
}

// Decide runs the access decision. Steps, in order (DESIGN.md):
//  1. the principal is known and not blocked;
//  2. a purpose is declared, known, and some role of the principal may act
//     for it (and may perform the action at all);
//  3. the field's category is allowed for the purpose and the role;
//  4. consent or another legal basis covers the purpose (Request.Basis);
//  5. level: general → plain; internal → plain when the role has it, else
//     masked; confidential → masked unless a grant covers it.
//
// With several roles or purposes, each (role, purpose) pair is evaluated
// alone and the most permissive outcome wins, so permissions are never mixed
// across roles into a combination no single role has.
func Decide(cat *custos.Catalog, req Request) Decision {
	deny := func(reason string) Decision { return Decision{Reason: reason} }
	p := req.Principal
	if p == nil {
		return deny(ReasonPrincipalUnknown)
	}
	if p.Blocked {
		return deny(ReasonPrincipalBlocked)
	}
	var roles []*custos.Role
	for _, name := range p.Roles {
		if r := cat.Role(name); r != nil && slices.Contains(r.Actions, req.Action) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return deny(ReasonActionNotAllowed)
	}
	if len(req.Purposes) == 0 {
		return deny(ReasonPurposeMissing)
	}
	type pair struct {
		role    *custos.Role
		purpose *custos.Purpose
	}
	var pairs []pair
	for _, name := range req.Purposes {
		pu := cat.Purpose(name)
		if pu == nil {
			return deny(ReasonPurposeUnknown)
		}
		for _, r := range roles {
			if slices.Contains(r.Purposes, name) {
				pairs = append(pairs, pair{r, pu})
			}
		}
	}
	if len(pairs) == 0 {
		return deny(ReasonPurposeNotForRole)
	}

	write := Write(req.Action)
	d := Decision{Allowed: true, Fields: map[string]custos.FieldDecision{}, Records: map[string]custos.FieldDecision{}}
	for _, name := range req.Fields {
		f := cat.Field(name)
		if f == nil {
			d.Fields[name] = custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldUnknown}
			continue
		}
		best := custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldNotInPurpose}
		for _, pr := range pairs {
			fd := decideOne(req, pr.role, pr.purpose, slices.Contains(pr.purpose.Fields, name), f.Category, f.Level, f.Secret, name, write)
			best = better(best, fd)
		}
		d.Fields[name] = best
	}
	for _, name := range req.Records {
		rt := cat.RecordType(name)
		if rt == nil {
			d.Records[name] = custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldUnknown}
			continue
		}
		best := custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldNotInPurpose}
		for _, pr := range pairs {
			fd := decideOne(req, pr.role, pr.purpose, slices.Contains(pr.purpose.Records, name), rt.Category, rt.Level, false, "record:"+name, write)
			// Records are free-form documents: there is no masked form of
			// one, so anything short of plain is left out.
			if !write && fd.Outcome == custos.Masked {
				fd.Outcome = custos.Denied
			}
			best = better(best, fd)
		}
		d.Records[name] = best
	}
	return d
}

// better returns the more permissive of two decisions; between two
// denials it keeps the more specific reason than "not for this purpose".
func better(best, fd custos.FieldDecision) custos.FieldDecision {
	if rank(fd.Outcome) > rank(best.Outcome) || (best.Reason == ReasonFieldNotInPurpose && fd.Reason != ReasonFieldNotInPurpose) {
		return fd
	}
	return best
}

func decideOne(req Request, role *custos.Role, pu *custos.Purpose, inPurpose bool, category string, level custos.Level, secret bool, name string, write bool) custos.FieldDecision {
	denied := func(reason string) custos.FieldDecision {
		return custos.FieldDecision{Outcome: custos.Denied, Reason: reason}
	}
	// Step 3: the purpose must list the item, and the role must cover its category.
	if !inPurpose {
		return denied(ReasonFieldNotInPurpose)
	}
	if !slices.Contains(role.Categories, category) {
		return denied(ReasonCategoryNotInRole)
	}
	// Step 4: consent or another legal basis.
	if req.Basis != nil {
		if reason := req.Basis(pu.Name, name); reason != "" {
			return denied(reason)
		}
	}
	if write {
		return custos.FieldDecision{Outcome: custos.Plain, Reason: ReasonWriteAllowed}
	}
	// Step 5: level.
	if secret {
		return denied(ReasonSecret)
	}
	switch level {
	case custos.LevelGeneral:
		return custos.FieldDecision{Outcome: custos.Plain, Reason: ReasonGeneral}
	case custos.LevelInternal:
		if role.Internal {
			return custos.FieldDecision{Outcome: custos.Plain, Reason: ReasonInternalPlain}
		}
		return custos.FieldDecision{Outcome: custos.Masked, Reason: ReasonInternalMasked}
	default:
		if req.Grant != nil && req.Grant(pu.Name, name) {
			return custos.FieldDecision{Outcome: custos.Plain, Reason: ReasonGrant}
		}
		return custos.FieldDecision{Outcome: custos.Masked, Reason: ReasonConfidential}
	}
}
