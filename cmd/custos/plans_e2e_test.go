package main

// End-to-end tests of collection plans (C1, C2, C6), data-use grants (U1,
// S4) and decision step 1 (blocked principals, staff prerequisites),
// through the client package against the real server.

import (
	"context"
	"slices"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
)

// newPrincipal creates a principal with roles through admin and returns it
// with a client for its key.
func newPrincipal(tb testing.TB, s *testServer, admin *custoshttp.Client, p *custos.Principal) (*custos.Principal, *custoshttp.Client) {
	tb.Helper()
	if err := admin.CreatePrincipal(context.Background(), p); err != nil {
		tb.Fatalf("create principal %s: %v", p.Name, err)
	}
	k, err := admin.CreateAPIKey(context.Background(), p.ID)
	if err != nil {
		tb.Fatalf("key for %s: %v", p.Name, err)
	}
	return p, s.client(k.Token)
}

// wantRule fails unless err has code and a violation field:rule.
func wantRule(tb testing.TB, err error, code, field, rule string) {
	tb.Helper()
	e := wantCode(tb, err, code)
	if !slices.Contains(violationSet(e.Violations), field+":"+rule) {
		tb.Fatalf("violations %v lack %s:%s", violationSet(e.Violations), field, rule)
	}
}

// waitUntil blocks until the wall clock passes t (the server's clock is
// the same machine's): the test then checks what changed, never how fast.
func waitUntil(t time.Time) {
	if d := time.Until(t); d > 0 {
		time.Sleep(d + 50*time.Millisecond)
	}
}

// TestPlanGatedWritesE2E: serve requires an approved, unexpired collection
// plan for every write; the plan's field list is what minimum-necessary
// checks; provenance records the plan; the filer cannot approve (C1, C2, C6).
func TestPlanGatedWritesE2E(t *testing.T) {
	ctx := context.Background()
	s := startBareServer(t, t.TempDir())
	admin := s.client(s.AdminKey)
	_, committee := newPrincipal(t, s, admin, &custos.Principal{Name: "数据管理委员会", Kind: custos.KindService, Roles: []string{"committee"}})
	_, app := newPrincipal(t, s, admin, &custos.Principal{Name: "shop app", Kind: custos.KindService, Roles: []string{"app"}})
	_, both := newPrincipal(t, s, admin, &custos.Principal{Name: "filer and approver", Kind: custos.KindService, Roles: []string{"app", "committee"}})
	prov := custos.Provenance{Collector: "signup", Channel: "app", Source: "customer"}
	purposes := []string{"account"}
	in := func(fields map[string]string, plan custos.PlanID) custos.NewSubject {
		p := prov
		p.Plan = string(plan)
		return custos.NewSubject{Fields: fields, Provenance: p}
	}
	fields := map[string]string{"name": "陈静", "mobile": "13700137000"}

	// No plan at all.
	_, err := app.CreateSubject(ctx, purposes, in(fields, ""))
	wantRule(t, err, custos.EINVALID, "provenance.plan", "plan_required")

	plan := func(validFor time.Duration) *custos.Plan {
		return &custos.Plan{Department: "会员中心", Purpose: "account", Description: "member sign-up form",
			Fields:  []custos.PlanItem{{Name: "name", Necessity: "address the member"}, {Name: "mobile", Necessity: "log-in code by SMS"}},
			Sources: []string{"the customer"}, Method: "online_form", Frequency: "once at sign-up", Format: "form fields",
			ValidUntil: time.Now().Add(validFor)}
	}
	p := plan(24 * time.Hour)
	if err := app.FilePlan(ctx, p); err != nil {
		t.Fatalf("file plan: %v", err)
	}
	// Pending: not citable.
	_, err = app.CreateSubject(ctx, purposes, in(fields, p.ID))
	wantRule(t, err, custos.EINVALID, "provenance.plan", "plan_not_approved")

	// Self-approval is refused; the filer lacks the approving role anyway.
	_, err = app.ReviewPlan(ctx, p.ID, custos.Review{Approve: true, Reason: "mine"})
	wantRule(t, err, custos.EFORBIDDEN, "action", "action_not_allowed")
	own := plan(24 * time.Hour)
	if err := both.FilePlan(ctx, own); err != nil {
		t.Fatal(err)
	}
	_, err = both.ReviewPlan(ctx, own.ID, custos.Review{Approve: true, Reason: "mine"})
	wantRule(t, err, custos.EFORBIDDEN, "reviewer", "self_approval")

	if got, err := committee.ReviewPlan(ctx, p.ID, custos.Review{Approve: true, Reason: "necessary for membership"}); err != nil || got.Status != custos.StatusApproved {
		t.Fatalf("approve: %v %+v", err, got)
	}
	// A field outside the plan is refused, naming field and rule.
	_, err = app.CreateSubject(ctx, purposes, in(map[string]string{"name": "陈静", "email": "chen@example.com"}, p.ID))
	wantRule(t, err, custos.EINVALID, "email", "field_not_in_plan")

	sub, err := app.CreateSubject(ctx, purposes, in(fields, p.ID))
	if err != nil {
		t.Fatalf("create under approved plan: %v", err)
	}
	got, err := app.FindSubjectByID(ctx, purposes, sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Provenance["mobile"].Plan != string(p.ID) || got.Provenance["name"].Plan != string(p.ID) {
		t.Fatalf("provenance: %+v, want plan %s", got.Provenance, p.ID)
	}

	// Records need a plan listing their type; imports rows are checked too.
	_, err = app.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now(), Data: map[string]any{"total": 10}, Provenance: prov})
	wantRule(t, err, custos.EINVALID, "provenance.plan", "plan_required")
	rs, err := app.ImportRow(ctx, purposes, "plans-e2e", 1, in(map[string]string{"name": "林木", "email": "lin@example.com"}, ""))
	if err != nil || rs.Status != custos.ImportRejected || !slices.Contains(violationSet(rs.Violations), "email:field_not_in_plan") {
		t.Fatalf("import outside plan: %v %+v", err, rs)
	}
	rs, err = app.ImportRow(ctx, purposes, "plans-e2e", 2, in(map[string]string{"name": "林木", "mobile": "13700137001"}, p.ID))
	if err != nil || rs.Status != custos.ImportStored {
		t.Fatalf("import under plan: %v %+v", err, rs)
	}

	// An approved plan that has expired can no longer be cited.
	short := plan(2 * time.Second)
	if err := app.FilePlan(ctx, short); err != nil {
		t.Fatal(err)
	}
	if _, err := committee.ReviewPlan(ctx, short.ID, custos.Review{Approve: true, Reason: "short campaign"}); err != nil {
		t.Fatal(err)
	}
	waitUntil(short.ValidUntil)
	_, err = app.CreateSubject(ctx, purposes, in(map[string]string{"name": "周八", "mobile": "13700137002"}, short.ID))
	wantRule(t, err, custos.EINVALID, "provenance.plan", "plan_expired")

	// Rejection is recorded with its reason.
	rej := plan(24 * time.Hour)
	if err := app.FilePlan(ctx, rej); err != nil {
		t.Fatal(err)
	}
	if got, err := committee.ReviewPlan(ctx, rej.ID, custos.Review{Approve: false, Reason: "duplicate of an approved plan"}); err != nil || got.Status != custos.StatusRejected || got.Reason == "" {
		t.Fatalf("reject: %v %+v", err, got)
	}
	_, err = app.CreateSubject(ctx, purposes, in(fields, rej.ID))
	wantRule(t, err, custos.EINVALID, "provenance.plan", "plan_not_approved")

	evs := allAuditEvents(t, admin, custos.AuditFilter{})
	var seen []string
	for _, e := range evs {
		seen = append(seen, e.Action+"/"+e.Decision)
	}
	for _, want := range []string{"plan.file/allow", "plan.approve/allow", "plan.approve/deny", "plan.reject/allow"} {
		if !slices.Contains(seen, want) {
			t.Errorf("audit log lacks %s", want)
		}
	}
}

// TestGrantE2E: an approved data-use request unlocks a confidential field
// for its holder only — another principal with the same role still sees it
// masked — and only until its end; the applicant cannot approve it (U1, S4).
func TestGrantE2E(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, t.TempDir())
	admin := s.client(s.AdminKey)
	ps := createPrincipals(t, s, admin)
	signed, until := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	pre := &custos.Prerequisites{NDASignedAt: &signed, TrainingValidUntil: &until, BackgroundCheckAt: &signed}
	holderP, holder := newPrincipal(t, s, admin, &custos.Principal{Name: "风控 王", Kind: custos.KindStaff, Roles: []string{"risk"}, Prerequisites: pre})
	_, peer := newPrincipal(t, s, admin, &custos.Principal{Name: "风控 李", Kind: custos.KindStaff, Roles: []string{"risk"}, Prerequisites: pre})
	_, committee := newPrincipal(t, s, admin, &custos.Principal{Name: "委员会", Kind: custos.KindService, Roles: []string{"committee"}})
	_, both := newPrincipal(t, s, admin, &custos.Principal{Name: "risk and committee", Kind: custos.KindService, Roles: []string{"risk", "committee"}})
	purposes := []string{"risk-control"}
	idNumber := residentID("11010519900307123")
	sub, err := ps.App.CreateSubject(ctx, purposes, custos.NewSubject{Fields: map[string]string{"id_number": idNumber, "mobile": "13600136000"},
		Provenance: custos.Provenance{Collector: "kyc", Channel: "app", Source: "customer"}})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	read := func(c *custoshttp.Client) (custos.FieldDecision, string) {
		t.Helper()
		got, err := c.FindSubjectByID(ctx, purposes, sub.ID)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return got.Decisions["id_number"], got.Fields["id_number"]
	}
	if d, v := read(holder); d.Outcome != custos.Masked || v == idNumber {
		t.Fatalf("before grant: %+v", d)
	}

	g := &custos.Grant{Purpose: "risk-control", Fields: []string{"id_number"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{sub.ID}},
		Method: custos.UseView, Start: time.Now().Add(-time.Minute), End: time.Now().Add(3 * time.Second), Reason: "chargeback investigation"}
	if err := holder.ApplyGrant(ctx, g); err != nil {
		t.Fatalf("apply: %v", err)
	}
	if g.Holder != holderP.ID || g.Status != custos.StatusPending {
		t.Fatalf("applied grant: %+v", g)
	}
	_, err = holder.ReviewGrant(ctx, g.ID, custos.Review{Approve: true, Reason: "mine"})
	wantRule(t, err, custos.EFORBIDDEN, "action", "action_not_allowed")
	own := &custos.Grant{Purpose: "risk-control", Categories: []string{"identity"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{sub.ID}},
		Method: custos.UseView, Start: time.Now(), End: time.Now().Add(time.Hour), Reason: "mine"}
	if err := both.ApplyGrant(ctx, own); err != nil {
		t.Fatal(err)
	}
	_, err = both.ReviewGrant(ctx, own.ID, custos.Review{Approve: true, Reason: "mine"})
	wantRule(t, err, custos.EFORBIDDEN, "reviewer", "self_approval")

	if d, _ := read(holder); d.Outcome != custos.Masked {
		t.Fatalf("pending grant unlocked: %+v", d)
	}
	if _, err := committee.ReviewGrant(ctx, g.ID, custos.Review{Approve: true, Reason: "case 2026-118"}); err != nil {
		t.Fatalf("approve: %v", err)
	}
	if d, v := read(holder); d.Outcome != custos.Plain || d.Reason != "grant" || v != idNumber {
		t.Fatalf("holder under grant: %+v", d)
	}
	if d, v := read(peer); d.Outcome != custos.Masked || v == idNumber {
		t.Fatalf("peer with the same role: %+v", d)
	}
	events := allAuditEvents(t, admin, custos.AuditFilter{SubjectID: &sub.ID, ActorID: &holderP.ID})
	if last := events[len(events)-1]; last.Action != custos.AuditSubjectRead || last.Reason != "grant "+string(g.ID) {
		t.Fatalf("read audit event %+v, want reason naming the grant", last)
	}
	waitUntil(g.End)
	if d, v := read(holder); d.Outcome != custos.Masked || v == idNumber {
		t.Fatalf("after the grant's end: %+v", d)
	}
	mine, err := holder.FindGrants(ctx, custos.GrantFilter{})
	if err != nil || len(mine) != 1 || mine[0].ID != g.ID {
		t.Fatalf("holder's grants: %v %+v", err, mine)
	}
	for _, a := range []string{custos.AuditGrantApply, custos.AuditGrantApprove} {
		if evs := allAuditEvents(t, admin, custos.AuditFilter{Action: &a}); len(evs) == 0 {
			t.Errorf("no %s event", a)
		}
	}
}

// TestBlockE2E: decision step 1 — a blocked principal is refused at once,
// even right after its key was verified; a staff member without current
// prerequisites is refused with its own reason (S4).
func TestBlockE2E(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, t.TempDir())
	admin := s.client(s.AdminKey)
	ps := createPrincipals(t, s, admin)
	sub, err := ps.App.CreateSubject(ctx, []string{"account"}, custos.NewSubject{Fields: map[string]string{"name": "赵六"},
		Provenance: custos.Provenance{Collector: "c", Channel: "app", Source: "customer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.App.FindSubjectByID(ctx, []string{"account"}, sub.ID); err != nil {
		t.Fatalf("read before block: %v", err)
	}
	p, err := admin.SetBlocked(ctx, ps.AppID, true, "suspicious bulk reads")
	if err != nil || !p.Blocked {
		t.Fatalf("block: %v %+v", err, p)
	}
	_, err = ps.App.FindSubjectByID(ctx, []string{"account"}, sub.ID)
	wantRule(t, err, custos.EFORBIDDEN, "principal", "principal_blocked")
	if _, err := admin.SetBlocked(ctx, ps.AppID, false, "cleared"); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.App.FindSubjectByID(ctx, []string{"account"}, sub.ID); err != nil {
		t.Fatalf("read after unblock: %v", err)
	}
	_, err = ps.Marketing.SetBlocked(ctx, ps.AppID, true, "")
	wantRule(t, err, custos.EFORBIDDEN, "action", "action_not_allowed")

	staffP, staff := newPrincipal(t, s, admin, &custos.Principal{Name: "客服 新人", Kind: custos.KindStaff, Roles: []string{"customer-service"}})
	_, err = staff.FindSubjectByID(ctx, []string{"customer-service"}, sub.ID)
	wantRule(t, err, custos.EFORBIDDEN, "principal", "staff_prerequisites_unmet")
	signed, until := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if _, err := admin.SetPrerequisites(ctx, staffP.ID, custos.Prerequisites{NDASignedAt: &signed, TrainingValidUntil: &until, BackgroundCheckAt: &signed}); err != nil {
		t.Fatal(err)
	}
	if _, err := staff.FindSubjectByID(ctx, []string{"customer-service"}, sub.ID); err != nil {
		t.Fatalf("read with prerequisites: %v", err)
	}
	for _, a := range []string{custos.AuditPrincipalBlock, custos.AuditPrincipalOpen, custos.AuditPrincipalPrereq} {
		if evs := allAuditEvents(t, admin, custos.AuditFilter{Action: &a}); len(evs) == 0 {
			t.Errorf("no %s event", a)
		}
	}
}
