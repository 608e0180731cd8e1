package policy_test

import (
	"testing"

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

	type want struct {
		allowed bool
		reason  string // request-level reason when refused
		field   string
		outcome custos.Outcome
		freason string
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
			Grant: func(p, f string) bool { return p == "risk-control" && f == "id_number" }},
			want{allowed: true, field: "id_number", outcome: custos.Plain, freason: policy.ReasonGrant}},
		{"step5 grant for another purpose does not apply", policy.Request{Principal: prn("risk"), Action: custos.ActSubjectRead, Purposes: []string{"risk-control"}, Fields: []string{"id_number"},
			Grant: func(p, f string) bool { return p == "legal-obligation" }},
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
