package core_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/policy"
)

// as returns ctx acting as a fresh principal stored with roles.
func (e *env) as(t testing.TB, kind string, roles ...string) (context.Context, *custos.Principal) {
	t.Helper()
	p := &custos.Principal{Name: "p " + roles[0], Kind: kind, Roles: roles}
	if err := e.svc.CreatePrincipal(e.admin, p); err != nil {
		t.Fatal(err)
	}
	return custos.NewContextWithActor(context.Background(), p), p
}

func wantViolation(t testing.TB, err error, code, field, rule string) {
	t.Helper()
	ce := custos.AsError(err)
	if ce == nil || ce.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
	for _, v := range ce.Violations {
		if v.Field == field && v.Rule == rule {
			return
		}
	}
	t.Fatalf("violations %+v lack %s:%s", ce.Violations, field, rule)
}

func accountPlan() *custos.Plan {
	return &custos.Plan{Department: "e-commerce", Purpose: "account", Description: "registration form",
		Fields:  []custos.PlanItem{{Name: "name", Necessity: "address the customer"}, {Name: "mobile", Necessity: "log-in and contact"}},
		Sources: []string{"the customer"}, Method: "online_form", Frequency: "once at sign-up", Format: "structured",
		ValidUntil: time.Now().Add(24 * time.Hour)}
}

// TestPlanGatedWrites: with RequirePlan, writes need an approved, unexpired
// plan listing their fields; provenance records the plan (C1, C2, C6).
func TestPlanGatedWrites(t *testing.T) {
	e := newEnv(t)
	e.svc.RequirePlan = true
	committee, _ := e.as(t, custos.KindService, "committee")
	both, _ := e.as(t, custos.KindService, "admin", "committee")
	fields := map[string]string{"name": "张三", "mobile": "13800138000"}
	in := custos.NewSubject{Fields: fields, Provenance: prov}

	_, err := e.svc.CreateSubject(e.admin, []string{"account"}, in)
	wantViolation(t, err, custos.EINVALID, "provenance.plan", "plan_required")

	bad := accountPlan()
	bad.Fields = append(bad.Fields, custos.PlanItem{Name: "id_number", Necessity: "x"})
	bad.Method = "telepathy"
	err = e.svc.FilePlan(e.admin, bad)
	wantViolation(t, err, custos.EINVALID, "fields[2].name", "field_not_for_purpose")
	wantViolation(t, err, custos.EINVALID, "method", "enum")

	p := accountPlan()
	if err := e.svc.FilePlan(e.admin, p); err != nil {
		t.Fatal(err)
	}
	if p.Status != custos.StatusPending || p.FiledBy != "prn_admin" {
		t.Fatalf("filed plan: status %s by %s", p.Status, p.FiledBy)
	}
	cited := in
	cited.Provenance.Plan = string(p.ID)
	_, err = e.svc.CreateSubject(e.admin, []string{"account"}, cited)
	wantViolation(t, err, custos.EINVALID, "provenance.plan", "plan_not_approved")

	// Separation of duties: the filer may not approve even with the role.
	own := accountPlan()
	if err := e.svc.FilePlan(both, own); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ReviewPlan(both, own.ID, custos.Review{Approve: true, Reason: "mine"})
	wantViolation(t, err, custos.EFORBIDDEN, "reviewer", "self_approval")
	_, err = e.svc.ReviewPlan(e.admin, p.ID, custos.Review{Approve: true, Reason: "admin is no approver"})
	wantViolation(t, err, custos.EFORBIDDEN, "action", policy.ReasonActionNotAllowed)
	_, err = e.svc.ReviewPlan(committee, p.ID, custos.Review{Approve: true})
	wantViolation(t, err, custos.EINVALID, "reason", "required")

	got, err := e.svc.ReviewPlan(committee, p.ID, custos.Review{Approve: true, Reason: "necessary for the account"})
	if err != nil || got.Status != custos.StatusApproved {
		t.Fatalf("approve: %v %+v", err, got)
	}
	_, err = e.svc.ReviewPlan(committee, p.ID, custos.Review{Approve: false, Reason: "again"})
	wantViolation(t, err, custos.ECONFLICT, "status", "not_pending")

	// A field the plan does not list is refused, naming it.
	extra := cited
	extra.Fields = map[string]string{"name": "李四", "email": "li@example.com"}
	_, err = e.svc.CreateSubject(e.admin, []string{"account"}, extra)
	wantViolation(t, err, custos.EINVALID, "email", "field_not_in_plan")

	s, err := e.svc.CreateSubject(e.admin, []string{"account"}, cited)
	if err != nil {
		t.Fatal(err)
	}
	read, err := e.svc.FindSubjectByID(e.admin, []string{"account"}, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if read.Provenance["mobile"].Plan != string(p.ID) {
		t.Fatalf("provenance plan %q, want %q", read.Provenance["mobile"].Plan, p.ID)
	}
	// Without a citation the approved plan of the purpose is found and recorded.
	in.Fields = map[string]string{"name": "王五", "mobile": "13900139000"}
	s2, err := e.svc.CreateSubject(e.admin, []string{"account"}, in)
	if err != nil {
		t.Fatal(err)
	}
	read, err = e.svc.FindSubjectByID(e.admin, []string{"account"}, s2.ID)
	if err != nil || read.Provenance["name"].Plan != string(p.ID) {
		t.Fatalf("resolved plan: %v %+v", err, read)
	}
	// Updates and records are gated too.
	v := "jane@example.com"
	_, err = e.svc.UpdateSubject(e.admin, []string{"account"}, s.ID, custos.SubjectUpdate{Fields: map[string]*string{"email": &v}, Provenance: prov})
	wantViolation(t, err, custos.EINVALID, "email", "field_not_in_plan")
	_, err = e.svc.CreateRecord(e.admin, []string{"fulfilment"}, s.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now(), Data: map[string]any{"n": 1}, Provenance: prov})
	wantViolation(t, err, custos.EINVALID, "provenance.plan", "plan_required")
	rs, err := e.svc.ImportRows(e.admin, []string{"account"}, "job-1", []core.ImportInput{{Line: 1, Subject: custos.NewSubject{Fields: map[string]string{"email": "x@example.com"}, Provenance: prov}}})
	if err != nil || rs[0].Status != custos.ImportRejected || !slices.Contains(violations(rs[0].Violations), "email:field_not_in_plan") {
		t.Fatalf("import: %v %+v", err, rs)
	}

	// An expired plan cannot be cited.
	old := accountPlan()
	old.ID, old.Status, old.FiledBy, old.FiledAt, old.ValidUntil = "pln_expired", custos.StatusApproved, "prn_x", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	if err := e.db.Update(context.Background(), func(tx custos.Tx) error { return tx.InsertPlan(context.Background(), old) }); err != nil {
		t.Fatal(err)
	}
	cited.Provenance.Plan = string(old.ID)
	_, err = e.svc.CreateSubject(e.admin, []string{"account"}, cited)
	wantViolation(t, err, custos.EINVALID, "provenance.plan", "plan_expired")

	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, ev := range evs {
		actions = append(actions, ev.Action+"/"+ev.Decision)
	}
	for _, want := range []string{"plan.file/allow", "plan.approve/allow", "plan.approve/deny"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit lacks %s: %v", want, actions)
		}
	}
}

func violations(vs []custos.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Field+":"+v.Rule)
	}
	return out
}

// TestGrantUnlocksConfidential: an approved data-use request makes a
// confidential field plain for its holder only, within scope and period;
// the read's audit event names the grant; expiry is audited (U1, S4).
func TestGrantUnlocksConfidential(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "张三", "id_number": "11010519491231002X"})
	other := e.create(t, map[string]string{"name": "李四", "id_number": "440524188001015368"})
	holder, hp := e.as(t, custos.KindService, "risk")
	peer, _ := e.as(t, custos.KindService, "risk")
	committee, _ := e.as(t, custos.KindService, "committee")
	purposes := []string{"risk-control"}
	outcome := func(ctx context.Context, sub custos.SubjectID) custos.Outcome {
		t.Helper()
		s, err := e.svc.FindSubjectByID(ctx, purposes, sub)
		if err != nil {
			t.Fatal(err)
		}
		return s.Decisions["id_number"].Outcome
	}
	if got := outcome(holder, id); got != custos.Masked {
		t.Fatalf("before grant: %s, want masked", got)
	}
	g := &custos.Grant{Purpose: "risk-control", Fields: []string{"id_number"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{id}},
		Method: custos.UseView, Start: time.Now().Add(-time.Minute), End: time.Now().Add(time.Hour), Reason: "fraud case 42"}
	if err := e.svc.ApplyGrant(holder, g); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.ReviewGrant(holder, g.ID, custos.Review{Approve: true, Reason: "self"})
	wantViolation(t, err, custos.EFORBIDDEN, "action", policy.ReasonActionNotAllowed)
	if got := outcome(holder, id); got != custos.Masked {
		t.Fatalf("pending grant: %s, want masked", got)
	}
	if _, err := e.svc.ReviewGrant(committee, g.ID, custos.Review{Approve: true, Reason: "case approved"}); err != nil {
		t.Fatal(err)
	}
	if got := outcome(holder, id); got != custos.Plain {
		t.Fatalf("holder under grant: %s, want plain", got)
	}
	if got := outcome(peer, id); got != custos.Masked {
		t.Fatalf("peer with the same role: %s, want masked", got)
	}
	if got := outcome(holder, other); got != custos.Masked {
		t.Fatalf("subject outside the grant: %s, want masked", got)
	}
	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{SubjectID: &id, ActorID: &hp.ID})
	if err != nil {
		t.Fatal(err)
	}
	if last := evs[len(evs)-1]; last.Reason != "grant "+string(g.ID) {
		t.Fatalf("read event reason %q, want the grant id", last.Reason)
	}

	// A grant whose end has passed no longer applies, and expiry is audited.
	ended := *g
	ended.ID, ended.Status, ended.Start, ended.End = "grt_ended", custos.StatusApproved, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	ended.Scope = custos.GrantScope{Subjects: []custos.SubjectID{other}}
	if err := e.db.Update(context.Background(), func(tx custos.Tx) error { return tx.InsertGrant(context.Background(), &ended) }); err != nil {
		t.Fatal(err)
	}
	if got := outcome(holder, other); got != custos.Masked {
		t.Fatalf("ended grant: %s, want masked", got)
	}
	n, err := e.svc.ExpireGrants(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("ExpireGrants = %d, %v; want 1", n, err)
	}
	if n, err := e.svc.ExpireGrants(context.Background()); err != nil || n != 0 {
		t.Fatalf("second ExpireGrants = %d, %v; want 0", n, err)
	}
	action := custos.AuditGrantExpired
	evs, err = e.svc.FindAuditEvents(e.admin, custos.AuditFilter{Action: &action})
	if err != nil || len(evs) != 1 || evs[0].Reason != "grant grt_ended of "+string(hp.ID) {
		t.Fatalf("grant.expired events: %v %+v", err, evs)
	}

	// Self-approval refused for an approver who applied.
	both, _ := e.as(t, custos.KindService, "risk", "committee")
	own := &custos.Grant{Purpose: "risk-control", Categories: []string{"identity"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{id}},
		Method: custos.UseView, Start: time.Now(), End: time.Now().Add(time.Hour), Reason: "mine"}
	if err := e.svc.ApplyGrant(both, own); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.ReviewGrant(both, own.ID, custos.Review{Approve: true, Reason: "self"})
	wantViolation(t, err, custos.EFORBIDDEN, "reviewer", "self_approval")

	// Bad requests name the field and rule.
	err = e.svc.ApplyGrant(holder, &custos.Grant{Purpose: "risk-control", Fields: []string{"passport"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{id}},
		Method: custos.UseView, Start: time.Now(), End: time.Now().Add(time.Hour), Reason: "x"})
	wantViolation(t, err, custos.EINVALID, "fields[0]", "field_not_for_purpose")
	err = e.svc.ApplyGrant(holder, &custos.Grant{Purpose: "marketing", Method: "peek", Start: time.Now(), End: time.Now().Add(-time.Hour)})
	for _, fr := range [][2]string{{"purpose", policy.ReasonPurposeNotForRole}, {"method", "enum"}, {"scope", "required"}, {"end", "after_start"}, {"fields", "required"}, {"reason", "required"}} {
		wantViolation(t, err, custos.EINVALID, fr[0], fr[1])
	}
	// Applicants see only their own requests; approvers see all.
	mine, err := e.svc.FindGrants(peer, custos.GrantFilter{})
	if err != nil || len(mine) != 0 {
		t.Fatalf("peer's grants: %v %d", err, len(mine))
	}
	all, err := e.svc.FindGrants(committee, custos.GrantFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("committee's grants: %v %d", err, len(all))
	}
}

// TestBlockAndPrerequisites: decision step 1 — a blocked principal is
// refused at once, and staff need current prerequisites (S4).
func TestBlockAndPrerequisites(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "张三"})
	p := &custos.Principal{Name: "客服", Kind: custos.KindStaff, Roles: []string{"customer-service"}}
	if err := e.svc.CreatePrincipal(e.admin, p); err != nil {
		t.Fatal(err)
	}
	k, err := e.svc.CreateAPIKey(e.admin, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	read := func() error {
		t.Helper()
		who, err := e.svc.Authenticate(context.Background(), k.Token)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.FindSubjectByID(custos.NewContextWithActor(context.Background(), who), []string{"customer-service"}, id)
		return err
	}
	wantViolation(t, read(), custos.EFORBIDDEN, "principal", policy.ReasonPrerequisites)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	if _, err := e.svc.SetPrerequisites(e.admin, p.ID, custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &past, BackgroundCheckAt: &past}); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, read(), custos.EFORBIDDEN, "principal", policy.ReasonPrerequisites)
	if _, err := e.svc.SetPrerequisites(e.admin, p.ID, custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &future, BackgroundCheckAt: &past}); err != nil {
		t.Fatal(err)
	}
	if err := read(); err != nil {
		t.Fatalf("with prerequisites: %v", err)
	}
	// The key was just verified and remembered; blocking must still bite now.
	if _, err := e.svc.SetBlocked(e.admin, p.ID, true, "left the company"); err != nil {
		t.Fatal(err)
	}
	wantViolation(t, read(), custos.EFORBIDDEN, "principal", policy.ReasonPrincipalBlocked)
	if _, err := e.svc.SetBlocked(e.admin, p.ID, false, ""); err != nil {
		t.Fatal(err)
	}
	if err := read(); err != nil {
		t.Fatalf("unblocked: %v", err)
	}
	adminCtx, admin := e.as(t, custos.KindService, "admin")
	_, err = e.svc.SetBlocked(adminCtx, admin.ID, true, "")
	wantViolation(t, err, custos.EFORBIDDEN, "id", "self_block")
	_, err = e.svc.SetBlocked(e.admin, "prn_missing", true, "")
	if custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatalf("block unknown: %v", err)
	}
	for _, a := range []string{custos.AuditPrincipalBlock, custos.AuditPrincipalOpen, custos.AuditPrincipalPrereq} {
		evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{Action: &a})
		if err != nil || len(evs) == 0 {
			t.Errorf("no %s audit event (%v)", a, err)
		}
	}
}

// TestGrantUnlocksRecords: a grant on a category lets a confidential
// record type through for its holder; the read's audit event names it (U1).
func TestGrantUnlocksRecords(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "张三"})
	if _, err := e.svc.CreateRecord(e.admin, []string{"fulfilment"}, id, custos.NewRecord{Type: "payment", OccurredAt: time.Now(),
		Data: map[string]any{"amount": 99}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	holder, hp := e.as(t, custos.KindService, "risk")
	committee, _ := e.as(t, custos.KindService, "committee")
	types := func() []string {
		t.Helper()
		rs, err := e.svc.FindRecords(holder, []string{"risk-control"}, id, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			out = append(out, r.Type)
		}
		return out
	}
	if got := types(); slices.Contains(got, "payment") {
		t.Fatalf("confidential payment records visible without a grant: %v", got)
	}
	g := &custos.Grant{Purpose: "risk-control", Categories: []string{"transaction"}, Scope: custos.GrantScope{Subjects: []custos.SubjectID{id}},
		Method: custos.UseView, Start: time.Now().Add(-time.Minute), End: time.Now().Add(time.Hour), Reason: "refund fraud"}
	if err := e.svc.ApplyGrant(holder, g); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.ReviewGrant(committee, g.ID, custos.Review{Approve: true, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if got := types(); !slices.Contains(got, "payment") {
		t.Fatalf("payment records not visible under the grant: %v", got)
	}
	action := custos.AuditRecordRead
	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{ActorID: &hp.ID, Action: &action})
	if err != nil || len(evs) != 2 || evs[1].Reason != "grant "+string(g.ID) || evs[0].Reason != "" {
		t.Fatalf("record.read events: %v %+v", err, evs)
	}
}
