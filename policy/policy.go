// Package policy holds custos's access decision: one pure function that, for
// a principal, an action, declared purposes and a set of fields or record
// types, says per item plain, masked or denied, with a reason code
// (DESIGN.md "Access decision"). It does no I/O; core/ gathers the input and
// applies the result.
package policy

import (
	"slices"
	"strings"
	"time"

	"custos"
)

// Reason codes. They are stable: clients and audit reviewers key on them.
const (
	ReasonPrincipalUnknown  = "principal_unknown"
	ReasonPrincipalBlocked  = "principal_blocked"
	ReasonPrerequisites     = "staff_prerequisites_unmet"
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
	// Grant returns the id of an active grant that lets the principal see
	// a confidential field (or "record:type") in plain for the purpose, or
	// "" (step 5). Core builds it per subject from the principal's grants
	// loaded beforehand, with GrantCovers; nil means none.
	Grant func(purpose, field string) string
}

// Decision is the output of Decide.
type Decision struct {
	Allowed bool   // false: the whole request is refused with Reason
	Reason  string // reason for a refusal, or "" when allowed
	Fields  map[string]custos.FieldDecision
	// Records is nil (read as empty; not to be written) when the request
	// named no record type.
	Records map[string]custos.FieldDecision
	// Grants names, per field or record type let through in plain by a
	// grant, the grant's id (for the audit event); nil when no grant was
	// used.
	Grants map[string]string
	// Unmet lists the staff prerequisites missing or expired when the
	// request was refused with ReasonPrerequisites.
	Unmet []string
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
//  1. the principal is known and not blocked, and a staff principal's
//     prerequisites (NDA, training, background check) are current at Now;
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
	if p.Kind == custos.KindStaff {
		if unmet := p.Prerequisites.Missing(req.Now); len(unmet) > 0 {
			d := deny(ReasonPrerequisites)
			d.Unmet = unmet
			return d
		}
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
	// Records and Grants stay nil (read as empty) until something goes in:
	// most decisions name no record and use no grant, and every read makes
	// one or two (BENCHMARKS.md, sixtieth session).
	d := Decision{Allowed: true, Fields: make(map[string]custos.FieldDecision, len(req.Fields))}
	if len(req.Records) > 0 {
		d.Records = make(map[string]custos.FieldDecision, len(req.Records))
	}
	for _, name := range req.Fields {
		f := cat.Field(name)
		if f == nil {
			d.Fields[name] = custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldUnknown}
			continue
		}
		best := custos.FieldDecision{Outcome: custos.Denied, Reason: ReasonFieldNotInPurpose}
		for _, pr := range pairs {
			fd, grant := decideOne(req, pr.role, pr.purpose, slices.Contains(pr.purpose.Fields, name), f.Category, f.Level, f.Secret, name, write)
			if b := better(best, fd); b != best {
				best = b
				setGrant(&d.Grants, name, grant)
			}
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
			fd, grant := decideOne(req, pr.role, pr.purpose, slices.Contains(pr.purpose.Records, name), rt.Category, rt.Level, false, "record:"+name, write)
			// Records are free-form documents: there is no masked form of
			// one, so anything short of plain is left out.
			if !write && fd.Outcome == custos.Masked {
				fd.Outcome = custos.Denied
			}
			if b := better(best, fd); b != best {
				best = b
				setGrant(&d.Grants, "record:"+name, grant)
			}
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

func setGrant(m *map[string]string, name, grant string) {
	switch {
	case grant == "":
		delete(*m, name)
	case *m == nil:
		*m = map[string]string{name: grant}
	default:
		(*m)[name] = grant
	}
}

func decideOne(req Request, role *custos.Role, pu *custos.Purpose, inPurpose bool, category string, level custos.Level, secret bool, name string, write bool) (custos.FieldDecision, string) {
	fd := decideLevel(req, role, pu, inPurpose, category, level, secret, name, write)
	if fd.Reason == ReasonConfidential && req.Grant != nil {
		if id := req.Grant(pu.Name, name); id != "" {
			return custos.FieldDecision{Outcome: custos.Plain, Reason: ReasonGrant}, id
		}
	}
	return fd, ""
}

func decideLevel(req Request, role *custos.Role, pu *custos.Purpose, inPurpose bool, category string, level custos.Level, secret bool, name string, write bool) custos.FieldDecision {
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
		return custos.FieldDecision{Outcome: custos.Masked, Reason: ReasonConfidential}
	}
}

// GrantCovers reports whether grant g lets principal p use the field (a
// catalog field name, or "record:type") of the subject for the purpose by
// the method at now: g is approved and in its period, held by p, for the
// purpose and method, names the field or its category, and its scope
// includes the subject (listed, or created inside its window).
func GrantCovers(cat *custos.Catalog, g *custos.Grant, p custos.PrincipalID, purpose, field, method string, subject custos.SubjectID, subjectCreated, now time.Time) bool {
	if g == nil || g.Holder != p || !g.Active(now) || g.Purpose != purpose || g.Method != method {
		return false
	}
	var category string
	if typ, ok := strings.CutPrefix(field, "record:"); ok {
		if rt := cat.RecordType(typ); rt != nil {
			category = rt.Category
		}
	} else if f := cat.Field(field); f != nil {
		category = f.Category
	}
	if !slices.Contains(g.Fields, field) && (category == "" || !slices.Contains(g.Categories, category)) {
		return false
	}
	sc := g.Scope
	if len(sc.Subjects) > 0 {
		return slices.Contains(sc.Subjects, subject)
	}
	if sc.CreatedAfter == nil && sc.CreatedBefore == nil {
		return false // an empty scope covers nobody
	}
	if sc.CreatedAfter != nil && subjectCreated.Before(*sc.CreatedAfter) {
		return false
	}
	return sc.CreatedBefore == nil || subjectCreated.Before(*sc.CreatedBefore)
}
