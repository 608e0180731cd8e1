package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
)

// testNotice presents marketing and personalisation (both on consent, the
// latter using precise location, a sensitive category) besides the basic
// account and fulfilment purposes.
func testNotice() custos.NoticeContent {
	return custos.NoticeContent{
		Controller: "示例零售有限公司 Example Retail Ltd.", Contact: "privacy@example.com",
		Purposes: []custos.NoticePurpose{
			{Name: "account", Fields: []string{"name", "mobile", "email", "username", "password"}, Retention: "until the account is closed"},
			{Name: "fulfilment", Fields: []string{"name", "mobile", "address"}, Records: []string{"order", "payment", "logistics"}, Retention: "3 years after the order"},
			{Name: "marketing", Fields: []string{"name", "mobile", "email"}, Retention: "until consent is withdrawn"},
			{Name: "personalisation", Fields: []string{"gender", "birth_date", "precise_location"}, Records: []string{"order", "browsing"},
				Retention: "1 year", Necessity: "nearby-store recommendations need your location", Impact: "your whereabouts are known to us while you use the app"},
		},
		Text: map[string]custos.NoticeText{
			"zh-CN": {Title: "隐私政策", Body: "我们如何处理您的个人信息……", Rights: "您可以查阅、复制、更正、删除您的个人信息，撤回同意，注销账户。"},
			"en":    {Title: "Privacy notice", Body: "How we handle your personal information…", Rights: "You may access, copy, correct and delete your data, withdraw consent and close your account."},
		},
	}
}

func publishNotice(tb testing.TB, admin *custoshttp.Client, c custos.NoticeContent) *custos.Notice {
	tb.Helper()
	n, err := admin.PublishNotice(context.Background(), c)
	if err != nil {
		tb.Fatalf("publish notice: %v", err)
	}
	return n
}

func decision(purpose string, granted bool) custos.ConsentDecision {
	return custos.ConsentDecision{Purpose: purpose, Granted: &granted}
}

// TestConsentEndToEnd walks consent through a real server (C3, C4, U2, R5;
// PIPL Art. 14–16, 29–31): notices, bundled and implicit consent refused,
// withdrawal taking effect on the next read, refusal not blocking the basic
// service, re-consent for a new purpose, minors, signed receipts.
func TestConsentEndToEnd(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	prov := custos.Provenance{Collector: "app-signup", Channel: "app", Source: "customer", Location: "online"}

	// Before any notice, nothing can be consented to.
	sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, custos.NewSubject{
		Fields: map[string]string{"name": "李雷", "mobile": "13911112222", "email": "li.lei@example.com", "address": "上海市浦东新区世纪大道1号"}, Provenance: prov})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	_, err = ps.App.CaptureConsent(ctx, sub.ID, custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Decisions: []custos.ConsentDecision{decision("marketing", true)}})
	if got := violationSet(wantCode(t, err, custos.EINVALID).Violations); !slices.Contains(got, "notice_version:no_notice") {
		t.Errorf("consent before any notice: violations %v, want notice_version:no_notice", got)
	}

	// Notices: publishing needs notice.publish; content is validated and
	// hashed; the current and every past version are public.
	_, err = ps.App.PublishNotice(ctx, testNotice())
	wantCode(t, err, custos.EFORBIDDEN)
	bad := testNotice()
	bad.Text = map[string]custos.NoticeText{"en": bad.Text["en"]}
	bad.Purposes = append(bad.Purposes, custos.NoticePurpose{Name: "marketing", Fields: []string{"id_number"}, Retention: "x"})
	_, err = admin.PublishNotice(ctx, bad)
	wantViolations(t, "bad notice", err, "purposes[4].fields:field_not_for_purpose", "purposes[4].name:duplicate",
		"text.zh-CN.body:required", "text.zh-CN.rights:required", "text.zh-CN.title:required")
	noSens := testNotice()
	noSens.Purposes[3].Necessity = ""
	_, err = admin.PublishNotice(ctx, noSens)
	wantViolations(t, "sensitive purpose without necessity", err, "purposes[3].necessity:required")
	n1 := publishNotice(t, admin, testNotice())
	if n1.Version != 1 || len(n1.Hash) != 64 || n1.Content.Purposes[2].LegalBasis != "consent" {
		t.Fatalf("notice 1: version %d hash %q basis %q", n1.Version, n1.Hash, n1.Content.Purposes[2].LegalBasis)
	}
	public := srv.client("")
	cur, err := public.Notice(ctx, 0)
	if err != nil || cur.Hash != n1.Hash {
		t.Fatalf("current notice without a key: %v %+v", err, cur)
	}

	// Marketing reads: no consent yet, so no field for marketing.
	got, err := ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, sub.ID)
	if err != nil {
		t.Fatalf("marketing read: %v", err)
	}
	if len(got.Fields) != 0 || got.Decisions["mobile"].Reason != "no_consent" {
		t.Errorf("marketing read without consent: fields %v decisions %v, want none, mobile no_consent", got.Fields, got.Decisions)
	}

	// Bundled, implicit, incomplete, sensitive-without-its-own and
	// not-consent-based decisions are each refused, and record nothing.
	refusals := []struct {
		name string
		in   custos.ConsentCapture
		want string
	}{
		{"bundled", custos.ConsentCapture{NoticeVersion: 1, Channel: "app", All: true,
			Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false)}}, "all:bundled_consent"},
		{"wildcard purpose", custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
			Decisions: []custos.ConsentDecision{decision("*", true)}}, "decisions[0].purpose:bundled_consent"},
		{"omitted purpose", custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
			Decisions: []custos.ConsentDecision{decision("marketing", true)}}, "decisions:decision_missing"},
		{"no explicit answer", custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
			Decisions: []custos.ConsentDecision{{Purpose: "marketing"}, decision("personalisation", false)}}, "decisions[0].granted:explicit_decision_required"},
		{"sensitive without its own decision", custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
			Decisions: []custos.ConsentDecision{decision("marketing", false), decision("personalisation", true)}}, "decisions:sensitive_consent_missing"},
		{"basic purpose is never asked", custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Kind: custos.CaptureChange,
			Decisions: []custos.ConsentDecision{decision("fulfilment", true)}}, "decisions[0].purpose:not_consent_based"},
		{"stale notice", custos.ConsentCapture{NoticeVersion: 7, Channel: "app", Kind: custos.CaptureChange,
			Decisions: []custos.ConsentDecision{decision("marketing", true)}}, "notice_version:not_current_notice"},
	}
	for _, tt := range refusals {
		_, err := ps.App.CaptureConsent(ctx, sub.ID, tt.in)
		if got := violationSet(wantCode(t, err, custos.EINVALID).Violations); !slices.Contains(got, tt.want) {
			t.Errorf("%s: violations %v, want %s", tt.name, got, tt.want)
		}
	}
	st, err := ps.App.ConsentState(ctx, sub.ID)
	if err != nil || len(st.History) != 0 {
		t.Fatalf("after refused captures: %v, history %d, want none", err, len(st.History))
	}

	// A proper form: marketing yes, personalisation yes with its own yes
	// for the sensitive location category. The receipt verifies; a
	// tampered one does not.
	loc := decision("personalisation", true)
	loc.Category = "behaviour"
	rc, err := ps.App.CaptureConsent(ctx, sub.ID, custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Evidence: "form v1 checkbox ids 3,4,5",
		Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", true), loc}})
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	if rc.NoticeHash != n1.Hash || len(rc.Decisions) != 3 || len(rc.Signature) == 0 {
		t.Fatalf("receipt: %+v", rc)
	}
	if ok, err := public.VerifyReceipt(ctx, rc); err != nil || !ok {
		t.Errorf("receipt verify: %v %v, want valid", ok, err)
	}
	forged := *rc
	forged.Decisions = slices.Clone(rc.Decisions)
	forged.Decisions[0].Action = custos.ConsentRefused
	if ok, err := public.VerifyReceipt(ctx, &forged); err != nil || ok {
		t.Errorf("tampered receipt verify: %v %v, want invalid", ok, err)
	}
	got, err = ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, sub.ID)
	if err != nil || got.Fields["mobile"] == "" || got.Decisions["mobile"].Outcome != custos.Masked {
		t.Fatalf("marketing read with consent: %v fields %v decisions %v", err, got.Fields, got.Decisions)
	}

	// Withdrawal is one call and takes effect on the next read (R5).
	if _, err := ps.App.WithdrawConsent(ctx, sub.ID, "marketing", "", "portal"); err != nil {
		t.Fatalf("withdraw: %v", err)
	}
	got, err = ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, sub.ID)
	if err != nil || len(got.Fields) != 0 || got.Decisions["mobile"].Reason != "consent_withdrawn" {
		t.Errorf("marketing read after withdrawal: %v fields %v decisions %v", err, got.Fields, got.Decisions)
	}
	// Refusing an optional purpose never blocks the basic service (PIPL
	// Art. 16): fulfilment reads, writes and records go on.
	got, err = ps.CS.FindSubjectByID(ctx, []string{"fulfilment"}, sub.ID)
	if err != nil || got.Fields["address"] == "" {
		t.Errorf("fulfilment read after withdrawal: %v %v", err, got)
	}
	if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now().Add(-time.Minute),
		Data: map[string]any{"amount": 99}, Provenance: prov}); err != nil {
		t.Errorf("fulfilment order after withdrawal: %v", err)
	}
	// … while a marketing write now has no basis.
	_, err = ps.App.UpdateSubject(ctx, []string{"marketing"}, sub.ID, custos.SubjectUpdate{Fields: map[string]*string{"email": ptr("new@example.com")}, Provenance: prov})
	wantViolations(t, "marketing write after withdrawal", err, "email:consent_withdrawn")
	// The company may not ask again at once; the customer may change
	// their mind whenever they like.
	_, err = ps.App.CaptureConsent(ctx, sub.ID, custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Kind: custos.CaptureChange, InitiatedBy: "company",
		Decisions: []custos.ConsentDecision{decision("marketing", true)}})
	wantViolations(t, "asked again", err, "decisions[0]:asked_again_too_soon")
	st, err = ps.App.ConsentState(ctx, sub.ID)
	if err != nil || slices.Contains(st.Ask, "marketing") || len(st.History) != 4 || st.History[0].Evidence != "form v1 checkbox ids 3,4,5" {
		t.Errorf("state after withdrawal: %v ask %v history %d", err, st.Ask, len(st.History))
	}

	// A new notice adds email to personalisation: consent given under
	// version 1 does not cover it until the customer consents again (U2).
	n2c := testNotice()
	n2c.Purposes[3].Fields = append(n2c.Purposes[3].Fields, "device_id")
	n2 := publishNotice(t, admin, n2c)
	if _, err := ps.App.UpdateSubject(ctx, []string{"account"}, sub.ID, custos.SubjectUpdate{Fields: map[string]*string{"name": ptr("李雷")}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	_, err = ps.App.UpdateSubject(ctx, []string{"personalisation"}, sub.ID, custos.SubjectUpdate{Fields: map[string]*string{
		"device_id": ptr("ios-7f3a9c"), "gender": ptr("male")}, Provenance: prov})
	wantViolations(t, "new field before re-consent", err, "device_id:consent_notice_outdated")
	st, err = ps.App.ConsentState(ctx, sub.ID)
	if err != nil || !slices.Contains(st.Ask, "personalisation") || st.CurrentNotice != n2.Version {
		t.Errorf("state after notice 2: %v ask %v current %d", err, st.Ask, st.CurrentNotice)
	}
	if _, err := ps.App.CaptureConsent(ctx, sub.ID, custos.ConsentCapture{NoticeVersion: n2.Version, Channel: "app", Kind: custos.CaptureChange,
		Decisions: []custos.ConsentDecision{decision("personalisation", true), loc}}); err != nil {
		t.Fatalf("re-consent: %v", err)
	}
	if _, err = ps.App.UpdateSubject(ctx, []string{"personalisation"}, sub.ID, custos.SubjectUpdate{Fields: map[string]*string{
		"device_id": ptr("ios-7f3a9c")}, Provenance: prov}); err != nil {
		t.Errorf("new field after re-consent: %v", err)
	}

	// Minors (PIPL Art. 31): a customer under 14 consents through a
	// guardian, recorded as such; created with the consent in one call.
	kid := custos.NewSubject{Fields: map[string]string{"name": "韩梅梅", "mobile": "13933334444", "birth_date": time.Now().AddDate(-10, 0, 0).Format(time.DateOnly)},
		Provenance: prov, Consent: &custos.ConsentCapture{NoticeVersion: n2.Version, Channel: "app",
			Decisions: []custos.ConsentDecision{decision("marketing", false), decision("personalisation", false)}}}
	_, err = ps.App.CreateSubject(ctx, []string{"account", "personalisation"}, kid)
	wantViolations(t, "minor without guardian", err, "birth_date:no_consent", "consent.guardian:guardian_required")
	kid.Consent.Guardian = &custos.Guardian{Name: "韩父", Relation: "father", Evidence: "household register checked in store"}
	kid.Consent.Decisions = []custos.ConsentDecision{decision("marketing", false), decision("personalisation", true), loc}
	created, err := ps.App.CreateSubject(ctx, []string{"account", "personalisation"}, kid)
	if err != nil {
		t.Fatalf("minor with guardian: %v", err)
	}
	if created.ConsentReceipt == nil || !created.ConsentReceipt.ByGuardian {
		t.Errorf("minor's receipt: %+v, want by guardian", created.ConsentReceipt)
	}
	st, err = ps.App.ConsentState(ctx, created.ID)
	if err != nil || !st.Minor || len(st.Current) != 3 || !st.Current[0].ByGuardian || st.Current[0].Guardian.Relation != "father" {
		t.Errorf("minor's consent state: %v %+v", err, st)
	}

	// Erasure takes the consent history with it.
	if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, created.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now(), Data: map[string]any{"n": 1}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.EraseSubject(ctx, []string{"account"}, created.ID, "test"); err != nil {
		t.Fatalf("erase: %v", err)
	}
	_, err = ps.App.ConsentState(ctx, created.ID)
	wantCode(t, err, custos.ENOTFOUND)

	// The audit trail names decisions, never evidence or guardians.
	evs := allAuditEvents(t, admin, custos.AuditFilter{Action: ptr(custos.AuditConsentCapture)})
	if len(evs) == 0 {
		t.Fatal("no consent.capture audit events")
	}
	for _, e := range evs {
		for _, f := range e.Fields {
			if slices.Contains([]string{"韩父", "household register checked in store", "form v1 checkbox ids 3,4,5"}, f) {
				t.Errorf("audit event carries consent evidence: %+v", e)
			}
		}
	}
}

// wantViolations fails unless err is EINVALID with exactly these
// field:rule violations.
func wantViolations(tb testing.TB, what string, err error, want ...string) {
	tb.Helper()
	if err == nil {
		tb.Errorf("%s: no error, want violations %v", what, want)
		return
	}
	e := custos.AsError(err)
	if e == nil {
		tb.Errorf("%s: error %v, want violations %v", what, err, want)
		return
	}
	got := violationSet(e.Violations)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		tb.Errorf("%s: violations %v, want %v", what, got, want)
	}
}

// TestImportConsentReceiptEndToEnd: a row imported over HTTP with a
// consent captured comes back with the signed receipt of that consent
// (C4), which the public verify endpoint accepts; a row without consent
// comes back without one.
func TestImportConsentReceiptEndToEnd(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	n1 := publishNotice(t, admin, testNotice())
	prov := custos.Provenance{Collector: "store-pos", Channel: "store", Source: "paper form", Location: "shop 12"}
	loc := decision("personalisation", true)
	loc.Category = "behaviour"
	rows := []core.ImportInput{
		{Line: 1, Subject: custos.NewSubject{Fields: map[string]string{"name": "韩梅梅", "mobile": "13911113333"}, Provenance: prov,
			Consent: &custos.ConsentCapture{NoticeVersion: 1, Channel: "paper", Evidence: "paper form 88",
				Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false), loc}}}},
		{Line: 2, Subject: custos.NewSubject{Fields: map[string]string{"name": "李雷", "mobile": "13911114444"}, Provenance: prov}},
	}
	res, err := admin.ImportRows(ctx, []string{"account"}, "pos-2026-11", rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || res[0].Status != custos.ImportStored || res[1].Status != custos.ImportStored {
		for _, r := range res {
			t.Logf("line %d: %s %s %+v", r.Line, r.Status, r.Message, r.Violations)
		}
		t.Fatal("want both lines stored")
	}
	rc := res[0].ConsentReceipt
	if rc == nil || rc.SubjectID != res[0].SubjectID || rc.NoticeHash != n1.Hash || len(rc.Decisions) != 3 || len(rc.Signature) == 0 {
		t.Fatalf("line 1 receipt: %+v", rc)
	}
	if res[1].ConsentReceipt != nil {
		t.Errorf("line 2 (no consent) has a receipt: %+v", res[1].ConsentReceipt)
	}
	public := srv.client("")
	if ok, err := public.VerifyReceipt(ctx, rc); err != nil || !ok {
		t.Errorf("imported receipt verify: %v %v, want valid", ok, err)
	}
	forged := *rc
	forged.Decisions = forged.Decisions[:1]
	if ok, err := public.VerifyReceipt(ctx, &forged); err != nil || ok {
		t.Errorf("tampered imported receipt verify: %v %v, want invalid", ok, err)
	}
}
