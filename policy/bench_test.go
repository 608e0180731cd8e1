package policy_test

import (
	"testing"
	"time"

	"custos"
	"custos/policy"
)

// BenchmarkDecide measures the access decision (DESIGN.md "Access
// decision") as a masked read by marketing and a read by customer service
// take it on the hot path: every catalog field, one or two purposes. The
// variants add the consent hook of step 4 (Request.Basis) and the grant hook
// of step 5 (Request.Grant), as core sets them when a purpose rests on
// consent or the principal holds grants. The hooks here answer from a map, as
// core's closures do, so the figure is the decision's own cost.
func BenchmarkDecide(b *testing.B) {
	cat := custos.DefaultCatalog()
	var fields []string
	for _, f := range cat.Fields {
		fields = append(fields, f.Name)
	}
	var records []string
	for _, r := range cat.RecordTypes {
		records = append(records, r.Name)
	}
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	consented := map[string]bool{}
	for _, f := range fields {
		consented[f] = true
	}
	basis := func(purpose, item string) string {
		if consented[item] {
			return ""
		}
		return policy.ReasonNoConsent
	}
	grants := map[string]string{"id_number": "grt_bench", "bank_card": "grt_bench"}
	grant := func(purpose, field string) string { return grants[field] }
	tests := []struct {
		name string
		req  policy.Request
	}{
		{"read marketing", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"marketing"}},
			Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: fields}},
		{"read marketing consent", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"marketing"}},
			Action: custos.ActSubjectRead, Purposes: []string{"marketing"}, Fields: fields, Basis: basis}},
		{"read customer-service grant", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"customer-service"}},
			Action: custos.ActSubjectRead, Purposes: []string{"customer-service", "fulfilment"}, Fields: fields, Grant: grant}},
		{"read customer-service consent grant", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"customer-service"}},
			Action: custos.ActSubjectRead, Purposes: []string{"customer-service", "fulfilment"}, Fields: fields, Basis: basis, Grant: grant}},
		{"create app 8 fields", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"app"}},
			Action: custos.ActSubjectCreate, Purposes: []string{"account", "fulfilment", "legal-obligation"},
			Fields: []string{"name", "mobile", "email", "id_number", "address", "birth_date", "gender", "member_no"}}},
		{"records app", policy.Request{Principal: &custos.Principal{ID: "prn_b", Roles: []string{"app"}},
			Action: custos.ActRecordRead, Purposes: []string{"fulfilment"}, Records: records}},
	}
	for _, tt := range tests {
		tt.req.Now = now
		b.Run(tt.name, func(b *testing.B) {
			if d := policy.Decide(cat, tt.req); !d.Allowed {
				b.Fatalf("refused: %s", d.Reason)
			}
			b.ReportAllocs()
			for b.Loop() {
				policy.Decide(cat, tt.req)
			}
		})
	}
}
