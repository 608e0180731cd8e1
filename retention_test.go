package custos_test

import (
	"bytes"
	"strings"
	"testing"

	"custos"
)

// TestRetentionFloorRefused: a rule below a legal minimum is refused when
// rules are loaded, naming the rule, the floor and its source (L1,
// RULES.md "Retention").
func TestRetentionFloorRefused(t *testing.T) {
	cat := custos.DefaultCatalog()
	tests := []struct {
		name, rule, floor, source string
	}{
		{"transaction records", `{"name": "orders-short", "target": "records", "record_types": ["order"], "period": "2y11m", "trigger": "transaction_completion", "action": "delete"}`,
			"3y", "E-commerce Law Art. 31"},
		{"transaction category", `{"name": "orders-short", "target": "records", "category": "transaction", "period": "1y", "trigger": "collection", "action": "anonymise"}`,
			"3y", "E-commerce Law Art. 31"},
		{"mixed types including payments", `{"name": "orders-short", "target": "records", "record_types": ["payment", "ticket"], "period": "30d", "trigger": "collection", "action": "delete"}`,
			"3y", "E-commerce Law Art. 31"},
		{"audit log", `{"name": "orders-short", "target": "audit", "period": "5m", "trigger": "collection", "action": "delete"}`,
			"6m", "Cybersecurity Law"},
		{"sharing records", `{"name": "orders-short", "target": "sharing", "period": "35m", "trigger": "collection", "action": "delete"}`,
			"3y", "NDSMR Art. 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := custos.ParseRetention(strings.NewReader(`{"version": "t", "rules": [`+tt.rule+`]}`), cat)
			ce := custos.AsError(err)
			if ce == nil || ce.Code != custos.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
			for _, want := range []string{`"orders-short"`, "legal minimum of " + tt.floor, tt.source} {
				if !strings.Contains(ce.Message, want) {
					t.Errorf("message %q does not name %q", ce.Message, want)
				}
			}
			if len(ce.Violations) != 1 || ce.Violations[0].Field != "rules[0].period" || ce.Violations[0].Rule != "legal_minimum" {
				t.Errorf("violations: %+v", ce.Violations)
			}
		})
	}
	// At the floor (in any spelling) is accepted.
	for _, p := range []string{"3y", "36m", "2y12m", "4y"} {
		if _, err := custos.ParseRetention(strings.NewReader(`{"version": "t", "rules": [{"name": "x", "target": "records",
			"category": "transaction", "period": "`+p+`", "trigger": "transaction_completion", "action": "delete"}]}`), cat); err != nil {
			t.Errorf("period %s: %v", p, err)
		}
	}
}

// TestRetentionRulesInvalid: other mistakes are refused with the field and rule.
func TestRetentionRulesInvalid(t *testing.T) {
	cat := custos.DefaultCatalog()
	tests := []struct {
		name, rule, field, code string
	}{
		{"unknown trigger", `{"name": "a", "target": "subject", "period": "1y", "trigger": "birthday", "action": "delete"}`, "rules[0].trigger", "enum"},
		{"unknown action", `{"name": "a", "target": "subject", "period": "1y", "trigger": "collection", "action": "burn"}`, "rules[0].action", "enum"},
		{"unknown record type", `{"name": "a", "target": "records", "record_types": ["invoice"], "period": "1y", "trigger": "collection", "action": "delete"}`, "rules[0].record_types", "unknown"},
		{"completion on behaviour", `{"name": "a", "target": "records", "category": "behaviour", "period": "1y", "trigger": "transaction_completion", "action": "delete"}`, "rules[0].trigger", "transaction_only"},
		{"restrict without restrict_for", `{"name": "a", "target": "subject", "period": "1y", "trigger": "collection", "action": "restrict"}`, "rules[0].restrict_for", "required"},
		{"fields anonymise", `{"name": "a", "target": "fields", "fields": ["mobile"], "period": "1y", "trigger": "collection", "action": "anonymise"}`, "rules[0].action", "fields_delete_only"},
		{"bad generaliser", `{"name": "a", "target": "records", "category": "transaction", "period": "3y", "trigger": "collection", "action": "anonymise", "keep": {"amount": "exact"}}`, "rules[0].keep.amount", "enum"},
		{"last activity on records", `{"name": "a", "target": "records", "category": "behaviour", "period": "1y", "trigger": "last_activity", "action": "delete"}`, "rules[0].trigger", "subject_only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := custos.ParseRetention(strings.NewReader(`{"version": "t", "rules": [`+tt.rule+`]}`), cat)
			ce := custos.AsError(err)
			if ce == nil || len(ce.Violations) == 0 || ce.Violations[0].Field != tt.field || ce.Violations[0].Rule != tt.code {
				t.Errorf("got %v (%+v), want %s %s", err, ce, tt.field, tt.code)
			}
		})
	}
	if _, err := custos.ParseRetention(strings.NewReader(`{"version": "t", "rules": [{"name": "a", "target": "subject", "period": "soon", "trigger": "collection", "action": "delete"}]}`), cat); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("bad period: %v", err)
	}
}

// TestDefaultRetention: the shipped rules load and keep the legal floors.
func TestDefaultRetention(t *testing.T) {
	p := custos.DefaultRetention(custos.DefaultCatalog())
	r := p.Rule("transaction-records")
	if r == nil || !r.Period.AtLeast(custos.FloorTransaction.Min) || r.Trigger != custos.TriggerTransactionCompletion {
		t.Errorf("transaction-records: %+v", r)
	}
	if r := p.Rule("audit-log"); r == nil || !r.Period.AtLeast(custos.FloorAudit.Min) {
		t.Errorf("audit-log: %+v", r)
	}
	if r := p.Rule("sharing-records"); r == nil || !r.Period.AtLeast(custos.FloorSharing.Min) {
		t.Errorf("sharing-records: %+v", r)
	}
}

// TestPeriod: parsing, printing and comparison.
func TestPeriod(t *testing.T) {
	for in, want := range map[string]string{"3y": "3y", "1y6m": "1y6m", "30d": "30d", "0y0m15d": "15d"} {
		p, err := custos.ParsePeriod(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePeriod(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, bad := range []string{"", "3", "y", "-1y", "3years", "1d2y"} {
		if _, err := custos.ParsePeriod(bad); err == nil {
			t.Errorf("ParsePeriod(%q) accepted", bad)
		}
	}
	if !(custos.Period{Months: 36}).AtLeast(custos.Period{Years: 3}) || (custos.Period{Months: 35, Days: 30}).AtLeast(custos.Period{Years: 3}) {
		t.Error("AtLeast")
	}
}

// FuzzParseRetention: the rules parser never panics, and any rules it
// accepts keep every legal floor.
func FuzzParseRetention(f *testing.F) {
	def := custos.DefaultRetentionJSON()
	f.Add(def)
	f.Add(def[:len(def)/2])
	f.Add(bytes.Replace(def, []byte(`"3y"`), []byte(`"2y"`), 1))
	f.Add(bytes.Replace(def, []byte(`"6m"`), []byte(`"5m"`), 1))
	f.Add(bytes.Replace(def, []byte(`"1y"`), []byte(`"99999999999y"`), 1))
	f.Add([]byte(`{"rules":[{"name":"a","target":"records","category":"transaction","period":"36m","trigger":"collection","action":"delete"}]}`))
	f.Add([]byte(`{"rules":[{"name":"a","target":"fields","category":"minors","period":"1d","trigger":"collection","action":"delete"}]}`))
	f.Add([]byte(`null`))
	cat := custos.DefaultCatalog()
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := custos.ParseRetention(bytes.NewReader(data), cat)
		if err != nil {
			if p != nil {
				t.Fatalf("ParseRetention returned rules with error %v", err)
			}
			return
		}
		for _, r := range p.Rules {
			min := custos.Period{}
			switch r.Target {
			case custos.TargetAudit:
				min = custos.FloorAudit.Min
			case custos.TargetSharing:
				min = custos.FloorSharing.Min
			case custos.TargetProcessingRecords:
				min = custos.FloorProcessingRecords.Min
			case custos.TargetRecords:
				for _, rt := range r.RecordTypes {
					if cat.RecordType(rt).Category == custos.CatTransaction {
						min = custos.FloorTransaction.Min
					}
				}
			}
			if !r.Period.AtLeast(min) {
				t.Fatalf("accepted rule %q with period %s below %s", r.Name, r.Period, min)
			}
		}
	})
}
