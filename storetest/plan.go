package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

// testPlan checks collection plans round-trip, filter, update and refuse
// duplicates and unknown ids (C2).
func testPlan(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	rt := at(time.Minute)
	ps := []*custos.Plan{
		{ID: "pln_b", Department: "e-commerce", Purpose: "account", Description: "sign-up form",
			Fields: []custos.PlanItem{{Name: "mobile", Necessity: "log-in"}}, Sources: []string{"customer"},
			Method: "online_form", Frequency: "once", Format: "structured", ValidUntil: at(24 * time.Hour),
			Status: custos.StatusPending, FiledBy: "prn_f", FiledAt: at(0)},
		{ID: "pln_a", Department: "logistics", Purpose: "fulfilment", Description: "delivery",
			Fields: []custos.PlanItem{{Name: "address", Necessity: "ship"}}, Records: []custos.PlanItem{{Name: "order", Necessity: "ship"}},
			Sources: []string{"customer", "system"}, Method: "system_log", Frequency: "per order", Format: "json",
			ValidUntil: at(48 * time.Hour), Status: custos.StatusApproved, FiledBy: "prn_f", FiledAt: at(time.Second),
			ReviewedBy: "prn_c", ReviewedAt: &rt, Reason: "necessary"},
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListPlans(ctx, custos.PlanFilter{})
		must(t, "ListPlans empty", err)
		diff(t, "plans", []*custos.Plan(nil), got)
		_, err = tx.GetPlan(ctx, "pln_a")
		wantCode(t, "GetPlan missing", err, custos.ENOTFOUND)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, p := range ps {
			must(t, "InsertPlan", tx.InsertPlan(ctx, p))
		}
		return nil
	})
	approved, account := custos.StatusApproved, "account"
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, want := range ps {
			got, err := tx.GetPlan(ctx, want.ID)
			must(t, "GetPlan", err)
			diff(t, "plan", want, got)
		}
		got, err := tx.ListPlans(ctx, custos.PlanFilter{})
		must(t, "ListPlans", err)
		diff(t, "plans oldest first", ps, got)
		got, err = tx.ListPlans(ctx, custos.PlanFilter{Status: &approved})
		must(t, "ListPlans approved", err)
		diff(t, "approved plans", ps[1:], got)
		got, err = tx.ListPlans(ctx, custos.PlanFilter{Status: &approved, Purpose: &account})
		must(t, "ListPlans approved account", err)
		diff(t, "approved account plans", []*custos.Plan(nil), got)
		return nil
	})
	ps[0].Status, ps[0].ReviewedBy, ps[0].ReviewedAt, ps[0].Reason = custos.StatusRejected, "prn_c", &rt, "too broad"
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.UpdatePlan(ctx, ps[0]) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetPlan(ctx, ps[0].ID)
		must(t, "GetPlan after update", err)
		diff(t, "updated plan", ps[0], got)
		rejected := custos.StatusRejected
		l, err := tx.ListPlans(ctx, custos.PlanFilter{Status: &rejected, Purpose: &account})
		must(t, "ListPlans rejected", err)
		diff(t, "rejected plans", ps[:1], l)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertPlan(t.Context(), ps[0]) })
	wantCode(t, "InsertPlan duplicate", err, custos.ECONFLICT)
	err = s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.UpdatePlan(t.Context(), &custos.Plan{ID: "pln_none", Status: custos.StatusApproved})
	})
	wantCode(t, "UpdatePlan missing", err, custos.ENOTFOUND)
}

// testGrant checks data-use requests round-trip, filter and update (U1).
func testGrant(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	after := at(-time.Hour)
	rt := at(time.Minute)
	gs := []*custos.Grant{
		{ID: "grt_b", Holder: "prn_a", Purpose: "analytics", Fields: []string{"id_number"},
			Scope: custos.GrantScope{Subjects: []custos.SubjectID{"sub_1", "sub_2"}}, Method: custos.UseView,
			Start: at(0), End: at(time.Hour), Reason: "audit sample", Status: custos.StatusPending, AppliedAt: at(0)},
		{ID: "grt_a", Holder: "prn_b", Purpose: "risk-control", Categories: []string{"biometric"},
			Scope: custos.GrantScope{CreatedAfter: &after}, Method: custos.UseAnalysis,
			Start: at(0), End: at(2 * time.Hour), Reason: "fraud", Status: custos.StatusApproved, AppliedAt: at(time.Second),
			ReviewedBy: "prn_c", ReviewedAt: &rt, Review: "ok"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetGrant(ctx, "grt_a")
		wantCode(t, "GetGrant missing", err, custos.ENOTFOUND)
		for _, g := range gs {
			must(t, "InsertGrant", tx.InsertGrant(ctx, g))
		}
		return nil
	})
	holder, approved, no := custos.PrincipalID("prn_b"), custos.StatusApproved, false
	end := at(90 * time.Minute)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, want := range gs {
			got, err := tx.GetGrant(ctx, want.ID)
			must(t, "GetGrant", err)
			diff(t, "grant", want, got)
		}
		got, err := tx.ListGrants(ctx, custos.GrantFilter{})
		must(t, "ListGrants", err)
		diff(t, "grants oldest first", gs, got)
		got, err = tx.ListGrants(ctx, custos.GrantFilter{Holder: &holder, Status: &approved})
		must(t, "ListGrants holder", err)
		diff(t, "holder's grants", gs[1:], got)
		got, err = tx.ListGrants(ctx, custos.GrantFilter{EndBefore: &end, Expired: &no})
		must(t, "ListGrants ending", err)
		diff(t, "grants ending by 90m", gs[:1], got)
		return nil
	})
	gs[1].Expired = true
	gs[1].End = at(time.Hour)
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.UpdateGrant(ctx, gs[1]) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetGrant(ctx, gs[1].ID)
		must(t, "GetGrant after update", err)
		diff(t, "updated grant", gs[1], got)
		l, err := tx.ListGrants(ctx, custos.GrantFilter{EndBefore: &end, Expired: &no})
		must(t, "ListGrants not expired", err)
		diff(t, "grants ending, not yet expired", gs[:1], l)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertGrant(t.Context(), gs[0]) })
	wantCode(t, "InsertGrant duplicate", err, custos.ECONFLICT)
	err = s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.UpdateGrant(t.Context(), &custos.Grant{ID: "grt_none"})
	})
	wantCode(t, "UpdateGrant missing", err, custos.ENOTFOUND)
}

// testPrincipalUpdate checks blocking and prerequisites are saved (S4).
func testPrincipalUpdate(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	p := &custos.Principal{ID: "prn_a", Name: "Ana", Kind: custos.KindStaff, Roles: []string{"support"}, CreatedAt: at(0)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.InsertPrincipal(ctx, p) })
	nda, training := at(-time.Hour), at(24*time.Hour)
	p.Blocked = true
	p.Prerequisites = &custos.Prerequisites{NDASignedAt: &nda, TrainingValidUntil: &training}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.UpdatePrincipal(ctx, p) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetPrincipal(ctx, p.ID)
		must(t, "GetPrincipal", err)
		diff(t, "updated principal", p, got)
		return nil
	})
	p.Blocked, p.Prerequisites = false, nil
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.UpdatePrincipal(ctx, p) })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListPrincipals(ctx)
		must(t, "ListPrincipals", err)
		diff(t, "unblocked principal", []*custos.Principal{p}, got)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.UpdatePrincipal(t.Context(), &custos.Principal{ID: "prn_none"})
	})
	wantCode(t, "UpdatePrincipal missing", err, custos.ENOTFOUND)
}
