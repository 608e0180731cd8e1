package core

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"custos"
)

var _ custos.PlanService = (*Service)(nil)

// Bounds on plan and grant texts.
const (
	maxPlanText   = 500 // description, necessity, reasons
	maxPlanShort  = 100 // department, source, frequency, format
	maxPlanItems  = 200
	maxPlanPeriod = 5 * 366 * 24 * time.Hour
)

// requireAny refuses the actor unless some role of it allows one of actions.
func (s *Service) requireAny(ctx context.Context, ev *custos.AuditEvent, actions ...string) error {
	for _, a := range actions {
		if p := custos.ActorFromContext(ctx); p != nil && !p.Blocked && s.may(p, a) {
			return nil
		}
	}
	return s.requireAction(ctx, ev, actions[0])
}

// may reports whether some role of p allows action.
func (s *Service) may(p *custos.Principal, action string) bool {
	for _, r := range p.Roles {
		if role := s.catalog.Role(r); role != nil && slices.Contains(role.Actions, action) {
			return true
		}
	}
	return false
}

func textRule(field, v string, max int) []custos.Violation {
	v = strings.TrimSpace(v)
	if v == "" {
		return []custos.Violation{{Field: field, Rule: "required"}}
	}
	if utf8.RuneCountInString(v) > max {
		return []custos.Violation{{Field: field, Rule: "max_length", Detail: "at most " + strconv.Itoa(max) + " characters"}}
	}
	return nil
}

// checkPlan validates a plan being filed (C2): every field and record type
// it lists must exist and be allowed by its purpose (C1), each with a
// stated necessity.
func (s *Service) checkPlan(p *custos.Plan, now time.Time) []custos.Violation {
	var vs []custos.Violation
	vs = append(vs, textRule("department", p.Department, maxPlanShort)...)
	vs = append(vs, textRule("description", p.Description, maxPlanText)...)
	pu := s.catalog.Purpose(p.Purpose)
	if pu == nil {
		vs = append(vs, custos.Violation{Field: "purpose", Rule: "purpose_unknown", Detail: "not a purpose in the catalog"})
	}
	if len(p.Fields)+len(p.Records) == 0 {
		vs = append(vs, custos.Violation{Field: "fields", Rule: "required", Detail: "at least one field or record type"})
	}
	if len(p.Fields)+len(p.Records) > maxPlanItems {
		vs = append(vs, custos.Violation{Field: "fields", Rule: "max_items", Detail: "at most 200 items"})
	}
	var allowedFields, allowedRecords []string
	if pu != nil {
		allowedFields, allowedRecords = pu.Fields, pu.Records
	}
	vs = append(vs, planItems("fields", p.Fields, pu != nil, allowedFields, func(n string) bool { return s.catalog.Field(n) != nil },
		"field_unknown", "not a field in the catalog", "")...)
	vs = append(vs, planItems("records", p.Records, pu != nil, allowedRecords, func(n string) bool { return s.catalog.RecordType(n) != nil },
		"record_type_unknown", "not a record type in the catalog", " records")...)
	if len(p.Sources) == 0 {
		vs = append(vs, custos.Violation{Field: "sources", Rule: "required", Detail: "where the data comes from"})
	}
	for i, src := range p.Sources {
		vs = append(vs, textRule("sources["+strconv.Itoa(i)+"]", src, maxPlanShort)...)
	}
	if !slices.Contains(custos.PlanMethods, p.Method) {
		vs = append(vs, custos.Violation{Field: "method", Rule: "enum", Detail: strings.Join(custos.PlanMethods, ", ")})
	}
	vs = append(vs, textRule("frequency", p.Frequency, maxPlanShort)...)
	vs = append(vs, textRule("format", p.Format, maxPlanShort)...)
	switch {
	case p.ValidUntil.IsZero():
		vs = append(vs, custos.Violation{Field: "valid_until", Rule: "required", Detail: "RFC 3339 time"})
	case !p.ValidUntil.After(now):
		vs = append(vs, custos.Violation{Field: "valid_until", Rule: "future", Detail: "must be after now"})
	case p.ValidUntil.Sub(now) > maxPlanPeriod:
		vs = append(vs, custos.Violation{Field: "valid_until", Rule: "max_period", Detail: "at most five years ahead"})
	}
	return vs
}

func planItemNames(p *custos.Plan) []string {
	var out []string
	for _, it := range p.Fields {
		out = append(out, it.Name)
	}
	for _, it := range p.Records {
		out = append(out, "record:"+it.Name)
	}
	return out
}

// FilePlan implements custos.PlanService.
func (s *Service) FilePlan(ctx context.Context, p *custos.Plan) error {
	ev := event(ctx, custos.AuditPlanFile, "", []string{p.Purpose}, planItemNames(p))
	if err := s.requireAction(ctx, ev, custos.ActPlanFile); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	p.Department, p.Description = strings.TrimSpace(p.Department), strings.TrimSpace(p.Description)
	if vs := s.checkPlan(p, now); len(vs) > 0 {
		return s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The collection plan was not filed.", Violations: vs})
	}
	p.ID = custos.PlanID(custos.NewID("pln"))
	p.Status, p.FiledBy, p.ReviewedBy, p.ReviewedAt, p.Reason = custos.StatusPending, custos.ActorFromContext(ctx).ID, "", nil, ""
	p.ValidUntil = p.ValidUntil.UTC().Truncate(time.Microsecond)
	ev.Reason = "plan " + string(p.ID)
	return s.run(ctx, ev, func(tx custos.Tx) error {
		p.FiledAt = tx.Now()
		return tx.InsertPlan(ctx, p)
	})
}

// selfReview refuses a reviewer who filed or applied for what it reviews
// (separation of duties, S4).
func selfReview(what string) error {
	return &custos.Error{Code: custos.EFORBIDDEN, Message: "You cannot review your own " + what + ": another approver must.",
		Violations: []custos.Violation{{Field: "reviewer", Rule: "self_approval", Detail: "approver must differ from the " + map[bool]string{true: "filer", false: "applicant"}[what == "collection plan"]}}}
}

func notPending(what, status string) error {
	return &custos.Error{Code: custos.ECONFLICT, Message: "The " + what + " was already reviewed (" + status + ").",
		Violations: []custos.Violation{{Field: "status", Rule: "not_pending", Detail: status}}}
}

// ReviewPlan implements custos.PlanService.
func (s *Service) ReviewPlan(ctx context.Context, id custos.PlanID, r custos.Review) (*custos.Plan, error) {
	action := custos.AuditPlanReject
	if r.Approve {
		action = custos.AuditPlanApprove
	}
	ev := event(ctx, action, "", nil, nil)
	ev.Reason = "plan " + string(id)
	if err := s.requireAction(ctx, ev, custos.ActPlanApprove); err != nil {
		return nil, err
	}
	if vs := textRule("reason", r.Reason, maxPlanText); len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "A review states its reason.", Violations: vs})
	}
	actor := custos.ActorFromContext(ctx)
	var out *custos.Plan
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		p, err := tx.GetPlan(ctx, id)
		if err != nil {
			return err
		}
		ev.Purposes, ev.Fields = []string{p.Purpose}, planItemNames(p)
		if p.FiledBy == actor.ID {
			return selfReview("collection plan")
		}
		if p.Status != custos.StatusPending {
			return notPending("collection plan", p.Status)
		}
		now := tx.Now()
		p.Status, p.ReviewedBy, p.ReviewedAt, p.Reason = custos.StatusRejected, actor.ID, &now, strings.TrimSpace(r.Reason)
		if r.Approve {
			if !p.ValidUntil.After(now) {
				return &custos.Error{Code: custos.ECONFLICT, Message: "The collection plan has expired; file a new one.",
					Violations: []custos.Violation{{Field: "valid_until", Rule: "plan_expired"}}}
			}
			p.Status = custos.StatusApproved
		}
		out = p
		return tx.UpdatePlan(ctx, p)
	})
	if err == nil && r.Approve {
		s.plans.forget() // usable on this node at once
	}
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Collection plan not found.")
	}
	return out, err
}

// FindPlans implements custos.PlanService: filers and approvers may list.
func (s *Service) FindPlans(ctx context.Context, f custos.PlanFilter) ([]*custos.Plan, error) {
	ev := event(ctx, custos.AuditPlanList, "", nil, nil)
	if err := s.requireAny(ctx, ev, custos.ActPlanFile, custos.ActPlanApprove); err != nil {
		return nil, err
	}
	var out []*custos.Plan
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListPlans(ctx, f)
		return err
	})
	return out, err
}

// FindPlanByID implements custos.PlanService.
func (s *Service) FindPlanByID(ctx context.Context, id custos.PlanID) (*custos.Plan, error) {
	ev := event(ctx, custos.AuditPlanList, "", nil, nil)
	if err := s.requireAny(ctx, ev, custos.ActPlanFile, custos.ActPlanApprove); err != nil {
		return nil, err
	}
	var out *custos.Plan
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.GetPlan(ctx, id)
		return err
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Collection plan not found.")
	}
	return out, err
}

// plans is the set of collection plans a write may cite, loaded once per
// call (a batch import checks every row against one load).
type plans struct {
	purposes []string
	byID     map[custos.PlanID]*custos.Plan
	active   []*custos.Plan // approved and unexpired, for the declared purposes
}

// PlanCacheTTL is how long the approved plans of a purpose are remembered
// between writes. Approval is final (a plan is never un-approved, and
// expiry is checked on every write), so a remembered list is never too
// permissive: at worst a plan approved on another node is refused here
// for up to PlanCacheTTL. Approving on this node forgets the list at once.
const PlanCacheTTL = 2 * time.Second

// planCache remembers the approved plans per purpose.
type planCache struct {
	mu sync.Mutex
	m  map[string]planEntry
}

type planEntry struct {
	plans   []*custos.Plan
	expires time.Time
}

func (c *planCache) get(purpose string, now time.Time) ([]*custos.Plan, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[purpose]
	if !ok || now.After(e.expires) {
		return nil, false
	}
	return e.plans, true
}

func (c *planCache) put(purpose string, plans []*custos.Plan, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) > 1000 {
		c.m = map[string]planEntry{}
	}
	c.m[purpose] = planEntry{plans: plans, expires: now.Add(PlanCacheTTL)}
}

func (c *planCache) forget() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}

// loadPlans loads the approved plans of the declared purposes, and the
// cited ones (which may be pending, rejected or for another purpose, and
// are then refused by check).
func (s *Service) loadPlans(ctx context.Context, purposes []string, cited []string, now time.Time) (*plans, error) {
	ps := &plans{purposes: purposes, byID: map[custos.PlanID]*custos.Plan{}}
	if !s.RequirePlan && !slices.ContainsFunc(cited, func(c string) bool { return c != "" }) {
		return ps, nil
	}
	add := func(l []*custos.Plan) {
		for _, p := range l {
			ps.byID[p.ID] = p
			if p.Active(now) {
				ps.active = append(ps.active, p)
			}
		}
	}
	var missing []string
	for _, pu := range purposes {
		if l, ok := s.plans.get(pu, now); ok {
			add(l)
		} else {
			missing = append(missing, pu)
		}
	}
	var unknown []string
	for _, id := range cited {
		if _, ok := ps.byID[custos.PlanID(id)]; !ok && id != "" {
			unknown = append(unknown, id)
		}
	}
	if len(missing) == 0 && len(unknown) == 0 {
		return ps, nil
	}
	err := s.store.View(ctx, func(tx custos.Tx) error {
		approved := custos.StatusApproved
		for _, pu := range missing {
			l, err := tx.ListPlans(ctx, custos.PlanFilter{Status: &approved, Purpose: &pu})
			if err != nil {
				return err
			}
			s.plans.put(pu, l, now)
			add(l)
		}
		for _, id := range unknown {
			if _, ok := ps.byID[custos.PlanID(id)]; ok {
				continue
			}
			p, err := tx.GetPlan(ctx, custos.PlanID(id))
			if custos.ErrorCode(err) == custos.ENOTFOUND {
				continue
			} else if err != nil {
				return err
			}
			ps.byID[p.ID] = p
		}
		return nil
	})
	return ps, err
}

// check returns the plan(s) a write is collected under and the
// violations. A cited plan must exist, be approved, unexpired and for a
// declared purpose, and list every field (and record type) written.
// Without a citation, each item must be listed by an approved, unexpired
// plan of a declared purpose — as the decision takes the most permissive
// purpose — and the ids of the plans used are returned, comma-separated
// (C1, C2, C6). enforce is RequirePlan; a cited plan is always checked.
func (ps *plans) check(enforce bool, cited string, fields, records []string, now time.Time) (string, []custos.Violation) {
	if !enforce && cited == "" {
		return "", nil
	}
	bad := func(rule, detail string) (string, []custos.Violation) {
		return "", []custos.Violation{{Field: "provenance.plan", Rule: rule, Detail: detail}}
	}
	candidates := ps.active
	if cited != "" {
		p := ps.byID[custos.PlanID(cited)]
		switch {
		case p == nil:
			return bad("plan_unknown", "no collection plan has this id")
		case p.Status != custos.StatusApproved:
			return bad("plan_not_approved", "the collection plan is "+p.Status+"; only an approved plan may be cited (C2)")
		case !now.Before(p.ValidUntil):
			return bad("plan_expired", "the collection plan expired at "+p.ValidUntil.Format(time.RFC3339))
		case !slices.Contains(ps.purposes, p.Purpose):
			return bad("plan_purpose_mismatch", "the collection plan is for purpose "+p.Purpose)
		}
		candidates = []*custos.Plan{p}
	} else if len(candidates) == 0 {
		return bad("plan_required", "no approved, unexpired collection plan for purpose "+strings.Join(ps.purposes, ", ")+" (C2)")
	}
	var used []string
	use := func(p *custos.Plan) {
		if !slices.Contains(used, string(p.ID)) {
			used = append(used, string(p.ID))
		}
	}
	var vs []custos.Violation
	for _, f := range fields {
		i := slices.IndexFunc(candidates, func(p *custos.Plan) bool { return p.Covers(f) })
		if i < 0 {
			vs = append(vs, custos.Violation{Field: f, Rule: "field_not_in_plan", Detail: "no approved collection plan of the purpose lists this field (C1, C2)"})
			continue
		}
		use(candidates[i])
	}
	for _, r := range records {
		i := slices.IndexFunc(candidates, func(p *custos.Plan) bool { return p.CoversRecord(r) })
		if i < 0 {
			vs = append(vs, custos.Violation{Field: "type", Rule: "field_not_in_plan", Detail: "no approved collection plan of the purpose lists this record type (C1, C2)"})
			continue
		}
		use(candidates[i])
	}
	if len(vs) > 0 {
		return "", vs
	}
	slices.Sort(used)
	return strings.Join(used, ","), nil
}

// planItems checks a plan's field or record-type list: each known to the
// catalog, allowed by the purpose (when it is known), listed once, with a
// stated necessity.
func planItems(list string, items []custos.PlanItem, checkPurpose bool, allowed []string, known func(string) bool, unknownRule, unknownDetail, noun string) []custos.Violation {
	var vs []custos.Violation
	seen := map[string]bool{}
	for i, it := range items {
		name := list + "[" + strconv.Itoa(i) + "]"
		switch {
		case !known(it.Name):
			vs = append(vs, custos.Violation{Field: name + ".name", Rule: unknownRule, Detail: unknownDetail})
		case checkPurpose && !slices.Contains(allowed, it.Name):
			vs = append(vs, custos.Violation{Field: name + ".name", Rule: "field_not_for_purpose", Detail: "the purpose does not allow " + it.Name + noun + " (C1)"})
		case seen[it.Name]:
			vs = append(vs, custos.Violation{Field: name + ".name", Rule: "duplicate"})
		}
		seen[it.Name] = true
		vs = append(vs, textRule(name+".necessity", it.Necessity, maxPlanText)...)
	}
	return vs
}
