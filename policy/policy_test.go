package policy_test

import (
	"slices"
	"testing"
	"time"

	"custos"
	"custos/policy"
)

// TestDecide is the access decision as a table (DESIGN.md "Access
// decision"; S2 levels, S4 least privilege, C1 minimum necessary, U2 purpose
// limitation). Each row exercises one step's allow or deny path.
func TestDecide(t *testing.T) {
	cat := custos.DefaultCatalog()
	prn := func(roles ...string) *custos.Principal {
		return &custos.Principal{ID: "prn_test", Roles: roles}
	}
	blocked := prn("admin")
	blocked.Blocked = true
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	past, future := now.Add(-24*time.Hour), now.Add(24*time.Hour)
	staff := func(pre *custos.Prerequisites) *custos.Principal {
		p := prn("customer-service")
		p.Kind, p.Prerequisites = custos.KindStaff, pre
		return p
	}
	current := &custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &future, BackgroundCheckAt: &past}
	expired := &custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &past, BackgroundCheckAt: &past}
	noCheck := &custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &future}
	grantAll := func(string, string) string { return "grt_all" }

	type want struct {
		allowed bool
		reason  string // request-level reason when refused
		field   string
		outcome custos.Outcome
		freason string
		grant   string   // grant id recorded for the field
		unmet   []string // prerequisites reported unmet
	}
	tests := []struct {
		name string
		req  policy.Request
		want want
	}{
		{"step1 unknown principal", policy.Request{Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}},
			want{reason: policy.ReasonPrincipalUnknown}},
		{"step1 blocked principal", policy.Request{Principal: blocked, Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}},
			want{reason: policy.ReasonPrincipalBlocked}},
		{"step1 blocked principal refused even with a grant", policy.Request{Principal: blocked, Action: custos.ActSubjectRead, Purposes: []string{"account"}, Fields: []string{"id_number"}, Grant: grantAll},
			want{reason: policy.ReasonPrincipalBlocked}},
		{"step1 staff without prerequisites (S4)", policy.Request{Principal: staff(nil), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{reason: policy.ReasonPrerequisites, unmet: []string{"nda", "training", "background_check"}}},
		{"step1 staff with expired training", policy.Request{Principal: staff(expired), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{reason: policy.ReasonPrerequisites, unmet: []string{"training"}}},
		{"step1 staff without background check", policy.Request{Principal: staff(noCheck), Action: custos.ActSubjectUpdate, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{reason: policy.ReasonPrerequisites, unmet: []string{"background_check"}}},
		{"step1 staff with training ending now is expired", policy.Request{Principal: staff(&custos.Prerequisites{NDASignedAt: &past, TrainingValidUntil: &now, BackgroundCheckAt: &past}), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{reason: policy.ReasonPrerequisites, unmet: []string{"training"}}},
		{"step1 staff with NDA signed in the future", policy.Request{Principal: staff(&custos.Prerequisites{NDASignedAt: &future, TrainingValidUntil: &future, BackgroundCheckAt: &past}), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{reason: policy.ReasonPrerequisites, unmet: []string{"nda"}}},
		{"step1 staff with current prerequisites allowed", policy.Request{Principal: staff(current), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{allowed: true, field: "name", outcome: custos.Plain, freason: policy.ReasonInternalPlain}},
		{"step1 service needs no staff prerequisites", policy.Request{Principal: &custos.Principal{ID: "prn_svc", Kind: custos.KindService, Roles: []string{"customer-service"}}, Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"name"}, Now: now},
			want{allowed: true, field: "name", outcome: custos.Plain, freason: policy.ReasonInternalPlain}},
		{"step2 purpose allowed for role", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"personalisation"}, Fields: []string{"gender"}},
			want{allowed: true, field: "gender", outcome: custos.Plain, freason: policy.ReasonGeneral}},
		{"step2 one of two purposes for role suffices", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control", "marketing"}, Fields: []string{"gender"}},
			want{allowed: true, field: "gender", outcome: custos.Plain, freason: policy.ReasonGeneral}},
		{"step3 category allowed for role", policy.Request{Principal: prn("finance"), Action: custos.ActSubjectRead, Purposes: []string{"fulfilment"}, Fields: []string{"name"}},
			want{allowed: true, field: "name", outcome: custos.Plain, freason: policy.ReasonInternalPlain}},
		{"step3 grant cannot lift a category denial", policy.Request{Principal: prn("finance"), Action: custos.ActSubjectRead, Purposes: []string{"fulfilment"}, Fields: []string{"address"}, Grant: grantAll},
			want{allowed: true, field: "address", outcome: custos.Denied, freason: policy.ReasonCategoryNotInRole}},
		{"step3 grant cannot lift a purpose denial", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"id_number"}, Grant: grantAll},
			want{allowed: true, field: "id_number", outcome: custos.Denied, freason: policy.ReasonFieldNotInPurpose}},
		{"step5 grant cannot reveal a secret", policy.Request{Principal: prn("admin"), Action: custos.ActSubjectRead, Purposes: []string{"account"}, Fields: []string{"password"}, Grant: grantAll},
			want{allowed: true, field: "password", outcome: custos.Denied, freason: policy.ReasonSecret}},
		{"step5 grant does not touch internal masking", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"mobile"}, Grant: grantAll},
			want{allowed: true, field: "mobile", outcome: custos.Masked, freason: policy.ReasonInternalMasked}},
		{"step5 grant for another field does not apply", policy.Request{Principal: prn("risk"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"},
			Grant: func(p, f string) string {
				if f == "face_template" {
					return "grt_1"
				}
				return ""
			}},
			want{allowed: true, field: "id_number", outcome: custos.Masked, freason: policy.ReasonConfidential}},
		{"role lacks action", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectErase, Purposes: []string{"marketing"}},
			want{reason: policy.ReasonActionNotAllowed}},
		{"unknown role lacks every action", policy.Request{Principal: prn("nobody"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}},
			want{reason: policy.ReasonActionNotAllowed}},
		{"step2 no purpose", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead},
			want{reason: policy.ReasonPurposeMissing}},
		{"step2 unknown purpose", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"curiosity"}},
			want{reason: policy.ReasonPurposeUnknown}},
		{"step2 purpose not for role", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}},
			want{reason: policy.ReasonPurposeNotForRole}},
		{"step3 unknown field", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"shoe_size"}},
			want{allowed: true, field: "shoe_size", outcome: custos.Denied, freason: policy.ReasonFieldUnknown}},
		{"step3 field not in purpose", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"id_number"}},
			want{allowed: true, field: "id_number", outcome: custos.Denied, freason: policy.ReasonFieldNotInPurpose}},
		{"step3 category not for role", policy.Request{Principal: prn("finance"), Action: custos.ActSubjectRead, Purposes: []string{"fulfilment"}, Fields: []string{"address"}},
			want{allowed: true, field: "address", outcome: custos.Denied, freason: policy.ReasonCategoryNotInRole}},
		{"step4 no consent", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"gender"},
			Basis: func(string, string) string { return policy.ReasonNoConsent }},
			want{allowed: true, field: "gender", outcome: custos.Denied, freason: policy.ReasonNoConsent}},
		{"step4 consent withdrawn", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"gender"},
			Basis: func(string, string) string { return policy.ReasonConsentWithdrawn }},
			want{allowed: true, field: "gender", outcome: custos.Denied, freason: policy.ReasonConsentWithdrawn}},
		{"step4 consent under a notice that lacked the field", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"gender", "mobile"},
			Basis: func(p, item string) string {
				if item == "gender" {
					return policy.ReasonNoticeOutdated
				}
				return ""
			}},
			want{allowed: true, field: "gender", outcome: custos.Denied, freason: policy.ReasonNoticeOutdated}},
		{"step4 write without consent refused", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"marketing"}, Fields: []string{"birth_date"},
			Basis: func(string, string) string { return policy.ReasonNoConsent }},
			want{allowed: true, field: "birth_date", outcome: custos.Denied, freason: policy.ReasonNoConsent}},
		{"step4 sensitive category without its own consent", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"personalisation"}, Fields: []string{"precise_location"},
			Basis: func(string, string) string { return policy.ReasonSensitiveConsent }},
			want{allowed: true, field: "precise_location", outcome: custos.Denied, freason: policy.ReasonSensitiveConsent}},
		{"step4 basis present", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"gender"},
			Basis: func(string, string) string { return "" }},
			want{allowed: true, field: "gender", outcome: custos.Plain, freason: policy.ReasonGeneral}},
		{"step4 refused optional purpose does not block a basic one", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"marketing", "account"}, Fields: []string{"mobile"},
			Basis: func(p, _ string) string {
				if p == "marketing" {
					return policy.ReasonNoConsent
				}
				return ""
			}},
			want{allowed: true, field: "mobile", outcome: custos.Plain, freason: policy.ReasonWriteAllowed}},
		{"step5 general plain", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"member_no"}},
			want{allowed: true, field: "member_no", outcome: custos.Plain, freason: policy.ReasonGeneral}},
		{"step5 internal plain for role with internal", policy.Request{Principal: prn("customer-service"), Action: custos.ActSubjectRead, Purposes: []string{"customer-service"}, Fields: []string{"mobile"}},
			want{allowed: true, field: "mobile", outcome: custos.Plain, freason: policy.ReasonInternalPlain}},
		{"step5 internal masked for role without internal", policy.Request{Principal: prn("marketing"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"mobile"}},
			want{allowed: true, field: "mobile", outcome: custos.Masked, freason: policy.ReasonInternalMasked}},
		{"step5 confidential masked", policy.Request{Principal: prn("risk"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"}},
			want{allowed: true, field: "id_number", outcome: custos.Masked, freason: policy.ReasonConfidential}},
		{"step5 confidential plain under grant", policy.Request{Principal: prn("risk"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"},
			Grant: func(p, f string) string {
				if p == "risk-control" && f == "id_number" {
					return "grt_1"
				}
				return ""
			}},
			want{allowed: true, field: "id_number", outcome: custos.Plain, freason: policy.ReasonGrant, grant: "grt_1"}},
		{"step5 grant for another purpose does not apply", policy.Request{Principal: prn("risk"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"},
			Grant: func(p, f string) string {
				if p == "legal-obligation" {
					return "grt_1"
				}
				return ""
			}},
			want{allowed: true, field: "id_number", outcome: custos.Masked, freason: policy.ReasonConfidential}},
		{"secret never returned even to admin", policy.Request{Principal: prn("admin"), Action: custos.ActSubjectRead, Purposes: []string{"account"}, Fields: []string{"password"}},
			want{allowed: true, field: "password", outcome: custos.Denied, freason: policy.ReasonSecret}},
		{"write allowed field", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"account"}, Fields: []string{"password"}},
			want{allowed: true, field: "password", outcome: custos.Plain, freason: policy.ReasonWriteAllowed}},
		{"write field outside purpose refused (C1)", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"marketing"}, Fields: []string{"id_number"}},
			want{allowed: true, field: "id_number", outcome: custos.Denied, freason: policy.ReasonFieldNotInPurpose}},
		{"two purposes: most permissive wins", policy.Request{Principal: prn("app"), Action: custos.ActSubjectCreate, Purposes: []string{"marketing", "risk-control"}, Fields: []string{"id_number"}},
			want{allowed: true, field: "id_number", outcome: custos.Plain, freason: policy.ReasonWriteAllowed}},
		{"roles are not mixed", policy.Request{Principal: prn("marketing", "auditor"), Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: []string{"mobile"}},
			want{allowed: true, field: "mobile", outcome: custos.Masked, freason: policy.ReasonInternalMasked}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Decide(cat, tt.req)
			if d.Allowed != tt.want.allowed || (!d.Allowed && d.Reason != tt.want.reason) {
				t.Fatalf("Allowed=%v Reason=%q, want %v %q", d.Allowed, d.Reason, tt.want.allowed, tt.want.reason)
			}
			if !slices.Equal(d.Unmet, tt.want.unmet) {
				t.Fatalf("Unmet=%v, want %v", d.Unmet, tt.want.unmet)
			}
			if tt.want.field == "" {
				if len(d.Fields) != 0 {
					t.Fatalf("refused decision carries fields: %v", d.Fields)
				}
				return
			}
			got := d.Fields[tt.want.field]
			if got.Outcome != tt.want.outcome || got.Reason != tt.want.freason {
				t.Fatalf("%s: got %s/%s, want %s/%s", tt.want.field, got.Outcome, got.Reason, tt.want.outcome, tt.want.freason)
			}
			if g := d.Grants[tt.want.field]; g != tt.want.grant {
				t.Fatalf("%s: grant %q, want %q", tt.want.field, g, tt.want.grant)
			}
		})
	}
}

// TestDecideRecords: records have no masked form; internal records the role
// may not see in plain are left out.
func TestDecideRecords(t *testing.T) {
	cat := custos.DefaultCatalog()
	tests := []struct {
		name, role, purpose, record string
		want                        custos.Outcome
		reason                      string
	}{
		{"cs reads orders", "customer-service", "customer-service", "order", custos.Plain, policy.ReasonInternalPlain},
		{"marketing cannot see internal orders plain", "marketing", "marketing", "order", custos.Denied, policy.ReasonInternalMasked},
		{"payment not for customer-service", "customer-service", "customer-service", "payment", custos.Denied, policy.ReasonFieldNotInPurpose},
		{"unknown record type", "customer-service", "customer-service", "horoscope", custos.Denied, policy.ReasonFieldUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := policy.Decide(cat, policy.Request{Principal: &custos.Principal{ID: "prn_x", Roles: []string{tt.role}},
				Action: custos.ActRecordRead, Purposes: []string{tt.purpose}, Records: []string{tt.record}})
			got := d.Records[tt.record]
			if got.Outcome != tt.want || got.Reason != tt.reason {
				t.Fatalf("got %s/%s, want %s/%s", got.Outcome, got.Reason, tt.want, tt.reason)
			}
		})
	}
}

// TestGrantCovers is step 5's grant scope as a table (U1): a grant applies
// only for its holder, purpose, method, fields or categories, subjects and
// period.
func TestGrantCovers(t *testing.T) {
	cat := custos.DefaultCatalog()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	created := now.Add(-48 * time.Hour)
	before, after := created.Add(time.Hour), created.Add(-time.Hour)
	base := func() *custos.Grant {
		return &custos.Grant{ID: "grt_1", Holder: "prn_h", Purpose: "risk-control", Fields: []string{"id_number"},
			Scope: custos.GrantScope{Subjects: []custos.SubjectID{"sub_1"}}, Method: custos.UseView,
			Start: now.Add(-time.Hour), End: now.Add(time.Hour), Status: custos.StatusApproved}
	}
	tests := []struct {
		name   string
		edit   func(g *custos.Grant)
		holder custos.PrincipalID
		field  string
		sub    custos.SubjectID
		at     time.Time
		want   bool
	}{
		{"covers its holder, field, subject and period", nil, "prn_h", "id_number", "sub_1", now, true},
		{"another principal", nil, "prn_other", "id_number", "sub_1", now, false},
		{"another field", nil, "prn_h", "passport", "sub_1", now, false},
		{"another subject", nil, "prn_h", "id_number", "sub_2", now, false},
		{"before its start", nil, "prn_h", "id_number", "sub_1", now.Add(-2 * time.Hour), false},
		{"at its end", nil, "prn_h", "id_number", "sub_1", now.Add(time.Hour), false},
		{"pending", func(g *custos.Grant) { g.Status = custos.StatusPending }, "prn_h", "id_number", "sub_1", now, false},
		{"rejected", func(g *custos.Grant) { g.Status = custos.StatusRejected }, "prn_h", "id_number", "sub_1", now, false},
		{"another purpose", func(g *custos.Grant) { g.Purpose = "analytics" }, "prn_h", "id_number", "sub_1", now, false},
		{"another method", func(g *custos.Grant) { g.Method = custos.UseExport }, "prn_h", "id_number", "sub_1", now, false},
		{"category covers the field", func(g *custos.Grant) { g.Fields, g.Categories = nil, []string{"identity"} }, "prn_h", "passport", "sub_1", now, true},
		{"category covers a record type", func(g *custos.Grant) { g.Fields, g.Categories = nil, []string{"transaction"} }, "prn_h", "record:payment", "sub_1", now, true},
		{"category does not cover another", func(g *custos.Grant) { g.Fields, g.Categories = nil, []string{"identity"} }, "prn_h", "bank_card", "sub_1", now, false},
		{"window includes the subject", func(g *custos.Grant) { g.Scope = custos.GrantScope{CreatedAfter: &after, CreatedBefore: &before} }, "prn_h", "id_number", "sub_9", now, true},
		{"window excludes the subject", func(g *custos.Grant) { g.Scope = custos.GrantScope{CreatedAfter: &before} }, "prn_h", "id_number", "sub_9", now, false},
		{"empty scope covers nobody", func(g *custos.Grant) { g.Scope = custos.GrantScope{} }, "prn_h", "id_number", "sub_1", now, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := base()
			if tt.edit != nil {
				tt.edit(g)
			}
			if got := policy.GrantCovers(cat, g, tt.holder, "risk-control", tt.field, custos.UseView, tt.sub, created, tt.at); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecideLazyMaps: a decision that names no record and uses no grant
// leaves Records and Grants nil (read as empty) rather than making them:
// every read decides once or twice, and the two maps were two of a
// decision's allocations (TestDecideAllocations counts them). A grant
// still lands in Grants.
func TestDecideLazyMaps(t *testing.T) {
	cat := custos.DefaultCatalog()
	req := policy.Request{Principal: &custos.Principal{ID: "prn_x", Roles: []string{"marketing"}},
		Action: custos.ActSubjectRead, Purposes: []string{"marketing"}}
	d := policy.Decide(cat, req)
	if !d.Allowed || d.Records != nil || d.Grants != nil {
		t.Fatalf("allowed %v, records %v, grants %v; want allowed, both nil", d.Allowed, d.Records, d.Grants)
	}
	g := policy.Decide(cat, policy.Request{Principal: &custos.Principal{ID: "prn_x", Roles: []string{"risk"}},
		Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"},
		Grant: func(string, string) string { return "grt_1" }})
	if g.Grants["id_number"] != "grt_1" || g.Fields["id_number"].Outcome != custos.Plain {
		t.Errorf("with a grant: %v, grants %v; want id_number plain by grt_1", g.Fields["id_number"], g.Grants)
	}
}
