package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"custos"
	custoshttp "custos/http"
)

// TestBatchReadEndToEnd: POST /v1/subjects/read over HTTP answers each
// customer as GET /v1/subjects/{id} does for the same principal and
// purpose (masked for marketing, consent applied per customer), a missing
// one as its own not_found result, each with its own audit event; a bad
// list is a 422 naming the entry and the rule without the value; no
// purpose, no key and a purpose the role may not use are refused whole.
func TestBatchReadEndToEnd(t *testing.T) {
	ctx := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	prov := custos.Provenance{Collector: "app-signup", Channel: "app", Source: "customer", Location: "online"}
	const mobile1 = "13812340001"
	var ids []custos.SubjectID
	for _, f := range []map[string]string{
		{"name": "张三丰", "mobile": mobile1, "email": "zsf@example.com", "address": "北京市朝阳区建国路88号"},
		{"name": "李四光", "mobile": "13812340002", "email": "lsg@example.com"},
	} {
		sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, custos.NewSubject{Fields: f, Provenance: prov})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		ids = append(ids, sub.ID)
	}
	publishNotice(t, admin, testNotice())
	if _, err := ps.App.CaptureConsent(ctx, ids[0], custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
		Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false)}}); err != nil {
		t.Fatalf("consent: %v", err)
	}
	unknown := custos.SubjectID(custos.NewID("sub"))
	ask := []custos.SubjectID{ids[1], unknown, ids[0]}

	rs, err := ps.Marketing.FindSubjectsByID(ctx, []string{"marketing"}, ask)
	if err != nil {
		t.Fatalf("batch read: %v", err)
	}
	if len(rs) != 3 {
		t.Fatalf("%d results, want 3", len(rs))
	}
	for i, r := range rs {
		if r.ID != ask[i] {
			t.Errorf("result %d: id %s, want %s", i, r.ID, ask[i])
		}
		if i == 1 {
			if ce := wantCode(t, r.Err, custos.ENOTFOUND); r.Subject != nil || ce.Message == "" {
				t.Errorf("unknown id: %+v", r)
			}
			continue
		}
		one, err := ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, ask[i])
		if err != nil || r.Err != nil {
			t.Fatalf("result %d: %v; read by id: %v", i, r.Err, err)
		}
		if diff := cmp.Diff(one, r.Subject); diff != "" {
			t.Errorf("result %d differs from a read by id (-by id +batch):\n%s", i, diff)
		}
	}
	if want := map[string]string{"name": "张**", "mobile": "138****0001", "email": "z***@example.com"}; !cmp.Equal(want, rs[2].Subject.Fields) {
		t.Errorf("consented customer, masked for marketing: %v, want %v", rs[2].Subject.Fields, want)
	}
	if len(rs[0].Subject.Fields) != 0 {
		t.Errorf("customer without marketing consent shows %v", rs[0].Subject.Fields)
	}

	// One audit event per customer asked, the unknown one refused.
	for i, id := range ask {
		evs, err := admin.FindAuditEvents(ctx, custos.AuditFilter{SubjectID: &id, ActorID: &ps.MarketingID})
		if err != nil {
			t.Fatal(err)
		}
		want := 2 // the batch and the read by id above
		if i == 1 {
			want = 1
		}
		if len(evs) != want || evs[0].Action != custos.AuditSubjectRead || evs[0].RequestID == "" {
			t.Fatalf("customer %d: audit %+v, want %d subject.read events", i, evs, want)
		}
		if d := evs[0].Decision; (i == 1) != (d == custos.DecisionDeny) {
			t.Errorf("customer %d: batch event decision %s", i, d)
		}
	}

	// Refusals, read over the wire.
	url := srv.URL + "/v1/subjects/read"
	problem := func(r rawResponse) custoshttp.Problem {
		t.Helper()
		var p custoshttp.Problem
		if err := json.Unmarshal(r.Body, &p); err != nil || r.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%d %s: not a problem document: %v", r.Status, r.Body, err)
		}
		if strings.Contains(string(r.Body), mobile1) || strings.Contains(string(r.Body), "张三丰") {
			t.Errorf("problem repeats a value: %s", r.Body)
		}
		return p
	}
	many := make([]custos.SubjectID, custos.ReadBatchMax+1)
	for i := range many {
		many[i] = custos.SubjectID(custos.NewID("sub"))
	}
	for _, c := range []struct {
		name, token, purpose string
		body                 any
		status               int
		field, rule          string
	}{
		{"duplicate", ps.MarketingKey, "marketing", custoshttp.ReadRequest{IDs: []custos.SubjectID{ids[0], ids[1], ids[0]}}, 422, "ids[2]", "duplicate"},
		{"a mobile for an id", ps.MarketingKey, "marketing", map[string]any{"ids": []string{mobile1}}, 422, "ids[0]", "format"},
		{"too many", ps.MarketingKey, "marketing", custoshttp.ReadRequest{IDs: many}, 422, "ids", "max_items"},
		{"empty", ps.MarketingKey, "marketing", map[string]any{"ids": []string{}}, 422, "ids", "required"},
		{"unknown member", ps.MarketingKey, "marketing", map[string]any{"ids": []string{string(ids[0])}, "fields": []string{"mobile"}}, 422, "", ""},
		{"no purpose", ps.MarketingKey, "", custoshttp.ReadRequest{IDs: ids}, 422, "purpose", "required"},
		{"no key", "", "marketing", custoshttp.ReadRequest{IDs: ids}, 401, "", ""},
		{"purpose not for the role", ps.MarketingKey, "legal-obligation", custoshttp.ReadRequest{IDs: ids}, 403, "", ""},
	} {
		r := rawRequest(t, "POST", url, c.token, c.purpose, c.body)
		p := problem(r)
		if r.Status != c.status || p.Status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.Status, r.Body, c.status)
			continue
		}
		if c.field != "" && (len(p.Errors) != 1 || p.Errors[0].Field != c.field || p.Errors[0].Rule != c.rule) {
			t.Errorf("%s: errors %+v, want %s/%s", c.name, p.Errors, c.field, c.rule)
		}
	}
}
