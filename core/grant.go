package core

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/policy"
)

var _ custos.GrantService = (*Service)(nil)

// Bounds on data-use requests.
const (
	MaxGrantPeriod   = 366 * 24 * time.Hour
	maxGrantSubjects = 10000
)

// checkGrant validates a data-use request (U1) for its applicant p.
func (s *Service) checkGrant(p *custos.Principal, g *custos.Grant, now time.Time) []custos.Violation {
	var vs []custos.Violation
	pu := s.catalog.Purpose(g.Purpose)
	if pu == nil {
		vs = append(vs, custos.Violation{Field: "purpose", Rule: "purpose_unknown", Detail: "not a purpose in the catalog"})
	} else {
		ok := false
		for _, r := range p.Roles {
			if role := s.catalog.Role(r); role != nil && slices.Contains(role.Purposes, g.Purpose) {
				ok = true
			}
		}
		if !ok {
			vs = append(vs, custos.Violation{Field: "purpose", Rule: policy.ReasonPurposeNotForRole, Detail: "no role of yours may act for this purpose"})
		}
	}
	if len(g.Fields)+len(g.Categories) == 0 {
		vs = append(vs, custos.Violation{Field: "fields", Rule: "required", Detail: "at least one field or category"})
	}
	for i, f := range g.Fields {
		name := "fields[" + strconv.Itoa(i) + "]"
		if typ, ok := strings.CutPrefix(f, "record:"); ok {
			if s.catalog.RecordType(typ) == nil {
				vs = append(vs, custos.Violation{Field: name, Rule: "record_type_unknown"})
			}
			if pu != nil && !slices.Contains(pu.Records, typ) {
				vs = append(vs, custos.Violation{Field: name, Rule: "field_not_for_purpose", Detail: "the purpose does not use this record type; a grant cannot widen it"})
			}
		} else if s.catalog.Field(f) == nil {
			vs = append(vs, custos.Violation{Field: name, Rule: "field_unknown", Detail: "not a field in the catalog"})
		} else if pu != nil && !slices.Contains(pu.Fields, f) {
			vs = append(vs, custos.Violation{Field: name, Rule: "field_not_for_purpose", Detail: "the purpose does not use this field; a grant cannot widen it"})
		}
	}
	for i, c := range g.Categories {
		if !slices.Contains(custos.Categories, c) {
			vs = append(vs, custos.Violation{Field: "categories[" + strconv.Itoa(i) + "]", Rule: "enum", Detail: strings.Join(custos.Categories, ", ")})
		}
	}
	sc := g.Scope
	switch {
	case len(sc.Subjects) == 0 && sc.CreatedAfter == nil && sc.CreatedBefore == nil:
		vs = append(vs, custos.Violation{Field: "scope", Rule: "required", Detail: "subject ids, or a created_after/created_before window"})
	case len(sc.Subjects) > 0 && (sc.CreatedAfter != nil || sc.CreatedBefore != nil):
		vs = append(vs, custos.Violation{Field: "scope", Rule: "one_of", Detail: "subject ids or a window, not both"})
	case len(sc.Subjects) > maxGrantSubjects:
		vs = append(vs, custos.Violation{Field: "scope.subjects", Rule: "max_items", Detail: "at most 10000 ids"})
	case sc.CreatedAfter != nil && sc.CreatedBefore != nil && !sc.CreatedAfter.Before(*sc.CreatedBefore):
		vs = append(vs, custos.Violation{Field: "scope.created_before", Rule: "after_start", Detail: "must be after created_after"})
	}
	for i, id := range sc.Subjects {
		if !custos.ValidID("sub", string(id)) {
			vs = append(vs, custos.Violation{Field: "scope.subjects[" + strconv.Itoa(i) + "]", Rule: "id_format", Detail: "a sub_ id"})
			break
		}
	}
	if !slices.Contains(custos.UseMethods, g.Method) {
		vs = append(vs, custos.Violation{Field: "method", Rule: "enum", Detail: strings.Join(custos.UseMethods, ", ")})
	}
	switch {
	case g.Start.IsZero() || g.End.IsZero():
		vs = append(vs, custos.Violation{Field: "end", Rule: "required", Detail: "start and end, RFC 3339 times"})
	case !g.Start.Before(g.End):
		vs = append(vs, custos.Violation{Field: "end", Rule: "after_start", Detail: "must be after start"})
	case !g.End.After(now):
		vs = append(vs, custos.Violation{Field: "end", Rule: "future", Detail: "must be after now"})
	case g.End.Sub(g.Start) > MaxGrantPeriod:
		vs = append(vs, custos.Violation{Field: "end", Rule: "max_period", Detail: "at most 366 days after start"})
	}
	vs = append(vs, textRule("reason", g.Reason, maxPlanText)...)
	return vs
}

func grantNames(g *custos.Grant) []string {
	out := slices.Clone(g.Fields)
	for _, c := range g.Categories {
		out = append(out, "category:"+c)
	}
	return out
}

// ApplyGrant implements custos.GrantService: the caller applies for itself.
func (s *Service) ApplyGrant(ctx context.Context, g *custos.Grant) error {
	ev := event(ctx, custos.AuditGrantApply, "", []string{g.Purpose}, grantNames(g))
	if err := s.requireAction(ctx, ev, custos.ActUseApply); err != nil {
		return err
	}
	p := custos.ActorFromContext(ctx)
	now := time.Now().UTC().Truncate(time.Microsecond)
	g.Reason = strings.TrimSpace(g.Reason)
	if vs := s.checkGrant(p, g, now); len(vs) > 0 {
		return s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The data-use request was not filed.", Violations: vs})
	}
	g.ID = custos.GrantID(custos.NewID("grt"))
	g.Holder, g.Status, g.ReviewedBy, g.ReviewedAt, g.Review, g.Expired = p.ID, custos.StatusPending, "", nil, "", false
	g.Start, g.End = g.Start.UTC().Truncate(time.Microsecond), g.End.UTC().Truncate(time.Microsecond)
	ev.Reason = "grant " + string(g.ID)
	return s.run(ctx, ev, func(tx custos.Tx) error {
		g.AppliedAt = tx.Now()
		return tx.InsertGrant(ctx, g)
	})
}

// ReviewGrant implements custos.GrantService.
func (s *Service) ReviewGrant(ctx context.Context, id custos.GrantID, r custos.Review) (*custos.Grant, error) {
	action := custos.AuditGrantReject
	if r.Approve {
		action = custos.AuditGrantApprove
	}
	ev := event(ctx, action, "", nil, nil)
	ev.Reason = "grant " + string(id)
	if err := s.requireAction(ctx, ev, custos.ActUseApprove); err != nil {
		return nil, err
	}
	if vs := textRule("reason", r.Reason, maxPlanText); len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "A review states its reason.", Violations: vs})
	}
	actor := custos.ActorFromContext(ctx)
	var out *custos.Grant
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		g, err := tx.GetGrant(ctx, id)
		if err != nil {
			return err
		}
		ev.Purposes, ev.Fields = []string{g.Purpose}, grantNames(g)
		if g.Holder == actor.ID {
			return selfReview("data-use request")
		}
		if g.Status != custos.StatusPending {
			return notPending("data-use request", g.Status)
		}
		now := tx.Now()
		g.Status, g.ReviewedBy, g.ReviewedAt, g.Review = custos.StatusRejected, actor.ID, &now, strings.TrimSpace(r.Reason)
		if r.Approve {
			if !g.End.After(now) {
				return &custos.Error{Code: custos.ECONFLICT, Message: "The data-use request's period has ended.",
					Violations: []custos.Violation{{Field: "end", Rule: "grant_ended"}}}
			}
			g.Status = custos.StatusApproved
		}
		out = g
		return tx.UpdateGrant(ctx, g)
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Data-use request not found.")
	}
	return out, err
}

// FindGrants implements custos.GrantService: approvers see every request,
// applicants only their own.
func (s *Service) FindGrants(ctx context.Context, f custos.GrantFilter) ([]*custos.Grant, error) {
	ev := event(ctx, custos.AuditGrantList, "", nil, nil)
	if err := s.requireAny(ctx, ev, custos.ActUseApprove, custos.ActUseApply); err != nil {
		return nil, err
	}
	if p := custos.ActorFromContext(ctx); !s.may(p, custos.ActUseApprove) {
		f.Holder = &p.ID
	}
	var out []*custos.Grant
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListGrants(ctx, f)
		return err
	})
	return out, err
}

// ExpireGrants marks every approved grant whose end has passed as expired
// and audits each as grant.expired, in one transaction. The decision
// already stops honouring a grant at its end; this records that it ended.
// The leader node runs it periodically. It returns how many expired.
func (s *Service) ExpireGrants(ctx context.Context) (int, error) {
	n := 0
	err := s.store.Update(ctx, func(tx custos.Tx) error {
		n = 0
		now, approved, no := tx.Now(), custos.StatusApproved, false
		gs, err := tx.ListGrants(ctx, custos.GrantFilter{Status: &approved, EndBefore: &now, Expired: &no})
		if err != nil {
			return err
		}
		for _, g := range gs {
			g.Expired = true
			if err := tx.UpdateGrant(ctx, g); err != nil {
				return err
			}
			e := &custos.AuditEvent{ActorID: "system", Action: custos.AuditGrantExpired, Purposes: []string{g.Purpose},
				Fields: grantNames(g), Decision: custos.DecisionAllow, Reason: "grant " + string(g.ID) + " of " + string(g.Holder)}
			if err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// activeGrants returns the actor's grants in force at now, or nil.
func activeGrants(ctx context.Context, tx custos.Tx, p *custos.Principal, now time.Time) ([]*custos.Grant, error) {
	if p == nil {
		return nil, nil
	}
	approved := custos.StatusApproved
	gs, err := tx.ListGrants(ctx, custos.GrantFilter{Holder: &p.ID, Status: &approved})
	if err != nil {
		return nil, err
	}
	out := gs[:0]
	for _, g := range gs {
		if g.Active(now) {
			out = append(out, g)
		}
	}
	return out, nil
}

// grantHook builds the decision's step-5 hook for one subject from the
// actor's active grants: pure, over data loaded beforehand.
func (s *Service) grantHook(gs []*custos.Grant, p *custos.Principal, method string, sub custos.SubjectID, created, now time.Time) func(purpose, field string) string {
	if len(gs) == 0 {
		return nil
	}
	return func(purpose, field string) string {
		for _, g := range gs {
			if policy.GrantCovers(s.catalog, g, p.ID, purpose, field, method, sub, created, now) {
				return string(g.ID)
			}
		}
		return ""
	}
}

// needsGrant reports whether some item came out masked only for being
// confidential, so that a grant could change it.
func needsGrant(ds ...map[string]custos.FieldDecision) bool {
	for _, d := range ds {
		for _, fd := range d {
			if fd.Reason == policy.ReasonConfidential {
				return true
			}
		}
	}
	return false
}

// grantReason renders the grants used by a read for its audit event.
func grantReason(used map[string]string) string {
	var ids []string
	for _, id := range used {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	slices.Sort(ids)
	return "grant " + strings.Join(ids, ",")
}
