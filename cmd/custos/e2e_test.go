package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"custos"
)

// TestEndToEnd walks one customer through a real server, as applications
// use it: collection, reads under three roles, lookup, de-duplication,
// refusals, records, correction, erasure, the audit trail, operations
// endpoints, audit verification and a restart.
func TestEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	if srv.AdminKey == "" {
		t.Fatalf("first serve printed no admin key:\n%s", srv.Stdout)
	}
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)

	prov := custos.Provenance{Collector: "app-signup", Channel: "app", Source: "customer", Location: "online"}
	const (
		name     = "张三丰"
		mobileIn = "138 1234 5678"
		mobile   = "+8613812345678"
		email    = "zhang.sanfeng@example.com"
		address  = "北京市朝阳区建国路88号"
		password = "S3cret-Pass!"
	)
	// Every value collected from this customer; none may leave the vault
	// except in a permitted read.
	values := []string{name, mobileIn, mobile, "13812345678", email, address, password}

	// Collection (C1, C5, C6): the app creates the customer for account and
	// fulfilment. The response carries the id and no values.
	sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment"}, custos.NewSubject{
		Fields:     map[string]string{"name": name, "mobile": mobileIn, "email": email, "address": address, "password": password},
		Provenance: prov,
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	id := sub.ID
	if !custos.ValidID("sub", string(id)) {
		t.Fatalf("create: got id %q, want a sub_ id", id)
	}
	if len(sub.Fields) != 0 {
		t.Errorf("create response carries values: %v", sub.Fields)
	}

	// The app reads it back in plain; the mobile is stored normalised (C5);
	// the password is never returned (S3).
	got, err := ps.App.FindSubjectByID(ctx, []string{"account", "fulfilment"}, id)
	if err != nil {
		t.Fatalf("app read: %v", err)
	}
	wantFields := map[string]string{"name": name, "mobile": mobile, "email": email, "address": address}
	if diff := cmp.Diff(wantFields, got.Fields); diff != "" {
		t.Errorf("app read fields (-want +got):\n%s", diff)
	}
	if d := got.Decisions["password"]; d.Outcome != custos.Denied || d.Reason != "secret_never_returned" {
		t.Errorf("app read: password decision got %+v, want denied secret_never_returned", d)
	}
	if p := got.Provenance["mobile"]; p.Collector != prov.Collector || p.Channel != prov.Channel || p.Source != prov.Source || p.Time.IsZero() {
		t.Errorf("app read: mobile provenance got %+v, want collector/channel/source of %+v with a time (C6)", p, prov)
	}
	assertNoSecret(t, "app read", got, password)

	// Customer service (internal role, customer-service purpose) sees
	// contact data in plain, and not the password.
	got, err = ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, id)
	if err != nil {
		t.Fatalf("customer-service read: %v", err)
	}
	if diff := cmp.Diff(wantFields, got.Fields); diff != "" {
		t.Errorf("customer-service read fields (-want +got):\n%s", diff)
	}
	for _, f := range []string{"name", "mobile", "email", "address"} {
		if d := got.Decisions[f]; d.Outcome != custos.Plain || d.Reason != "internal_plain" {
			t.Errorf("customer-service read: %s decision got %+v, want plain internal_plain", f, d)
		}
	}
	if d := got.Decisions["password"]; d.Outcome != custos.Denied || d.Reason != "field_not_for_purpose" {
		t.Errorf("customer-service read: password decision got %+v, want denied field_not_for_purpose", d)
	}
	assertNoSecret(t, "customer-service read", got, password)

	// Marketing (external role), once the customer has consented to it,
	// sees masked contact data and nothing its purpose does not cover (S4,
	// U2; the consent steps themselves are TestConsentEndToEnd's).
	publishNotice(t, admin, testNotice())
	loc := decision("personalisation", false)
	if _, err := ps.App.CaptureConsent(ctx, id, custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
		Decisions: []custos.ConsentDecision{decision("marketing", true), loc}}); err != nil {
		t.Fatalf("consent: %v", err)
	}
	got, err = ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, id)
	if err != nil {
		t.Fatalf("marketing read: %v", err)
	}
	wantMasked := map[string]string{"name": "张**", "mobile": "138****5678", "email": "z***@example.com"}
	if diff := cmp.Diff(wantMasked, got.Fields); diff != "" {
		t.Errorf("marketing read fields (-want +got):\n%s", diff)
	}
	wantDecisions := map[string]custos.FieldDecision{
		"name":     {Outcome: custos.Masked, Reason: "internal_masked"},
		"mobile":   {Outcome: custos.Masked, Reason: "internal_masked"},
		"email":    {Outcome: custos.Masked, Reason: "internal_masked"},
		"address":  {Outcome: custos.Denied, Reason: "field_not_for_purpose"},
		"password": {Outcome: custos.Denied, Reason: "field_not_for_purpose"},
	}
	if diff := cmp.Diff(wantDecisions, got.Decisions); diff != "" {
		t.Errorf("marketing read decisions (-want +got):\n%s", diff)
	}
	assertNoSecret(t, "marketing read", got, password)

	// Lookup by the mobile written another way finds the same customer.
	found, err := ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "+86 138-1234-5678")
	if err != nil {
		t.Fatalf("lookup by mobile: %v", err)
	}
	if found.ID != id {
		t.Errorf("lookup by mobile: got %s, want %s", found.ID, id)
	}

	// De-duplication (C5): the same mobile, written differently, is a
	// conflict naming the existing customer.
	_, err = ps.App.CreateSubject(ctx, []string{"account"}, custos.NewSubject{
		Fields:     map[string]string{"name": "李四", "mobile": "8613812345678", "email": "li.si@example.com"},
		Provenance: prov,
	})
	e := wantCode(t, err, custos.ECONFLICT)
	if e.ConflictID != string(id) {
		t.Errorf("duplicate create: got conflict id %q, want %q", e.ConflictID, id)
	}
	if diff := cmp.Diff([]string{"mobile:duplicate"}, violationSet(e.Violations)); diff != "" {
		t.Errorf("duplicate create violations (-want +got):\n%s", diff)
	}

	// Minimum necessary and validation (C1, C5): refused fields are listed
	// with their rule, never silently dropped, and no value is echoed.
	validID := residentID("11010519850212004")
	invalidID := badResidentID(residentID("11010519850212006"))
	refused := []struct {
		name     string
		purposes []string
		fields   map[string]string
		want     []string
	}{
		{
			name:     "id_number under marketing, no consent to marketing, an unknown field",
			purposes: []string{"marketing"},
			fields:   map[string]string{"name": "王五六", "mobile": "13700001111", "id_number": validID, "shoe_size": "42-wide-x9"},
			want:     []string{"id_number:field_not_for_purpose", "mobile:no_consent", "name:no_consent", "shoe_size:field_unknown"},
		},
		{
			name:     "bad resident ID checksum, a field outside the purpose, an unknown field",
			purposes: []string{"legal-obligation"},
			fields:   map[string]string{"name": "王五六", "id_number": invalidID, "health_note": "allergic-to-x7q", "shoe_size": "42-wide-x9"},
			want:     []string{"health_note:field_not_for_purpose", "id_number:resident_id_checksum", "shoe_size:field_unknown"},
		},
	}
	for _, tc := range refused {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			in := custos.NewSubject{Fields: tc.fields, Provenance: prov}
			_, err := ps.App.CreateSubject(ctx, tc.purposes, in)
			e := wantCode(t, err, custos.EINVALID)
			if diff := cmp.Diff(tc.want, violationSet(e.Violations)); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
			// The same request without the client: the problem document
			// holds field names and rules, never a submitted value.
			resp := rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects", ps.AppKey, strings.Join(tc.purposes, ","), in)
			if resp.Status != http.StatusUnprocessableEntity {
				t.Errorf("raw create: got status %d, want 422; body %s", resp.Status, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("raw create: got Content-Type %q, want application/problem+json", ct)
			}
			var p struct {
				Code   string             `json:"code"`
				Errors []custos.Violation `json:"errors"`
			}
			if err := json.Unmarshal(resp.Body, &p); err != nil {
				t.Fatalf("problem body does not parse: %v\n%s", err, resp.Body)
			}
			if p.Code != custos.EINVALID || !slices.Equal(violationSet(p.Errors), tc.want) {
				t.Errorf("problem body: got code %q errors %v, want %q %v", p.Code, violationSet(p.Errors), custos.EINVALID, tc.want)
			}
			for _, v := range tc.fields {
				if strings.Contains(string(resp.Body), v) {
					t.Errorf("problem body contains the submitted value %q:\n%s", v, resp.Body)
				}
			}
		})
	}
	// The refused customers were not stored.
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "13700001111")
	wantCode(t, err, custos.ENOTFOUND)

	// Every data request declares a purpose.
	_, err = ps.App.CreateSubject(ctx, nil, custos.NewSubject{Fields: map[string]string{"name": "赵六"}, Provenance: prov})
	e = wantCode(t, err, custos.EINVALID)
	if diff := cmp.Diff([]string{"purpose:required"}, violationSet(e.Violations)); diff != "" {
		t.Errorf("no purpose: violations (-want +got):\n%s", diff)
	}
	_, err = ps.App.FindSubjectByID(ctx, nil, id)
	wantCode(t, err, custos.EINVALID)

	// Roles limit actions (S4): marketing may not erase, customer service
	// may not collect.
	_, err = ps.Marketing.EraseSubject(ctx, []string{"marketing"}, id, "try")
	e = wantCode(t, err, custos.EFORBIDDEN)
	if diff := cmp.Diff([]string{"action:action_not_allowed"}, violationSet(e.Violations)); diff != "" {
		t.Errorf("marketing erase: violations (-want +got):\n%s", diff)
	}
	_, err = ps.CS.CreateSubject(ctx, []string{"customer-service"}, custos.NewSubject{Fields: map[string]string{"name": "赵六"}, Provenance: prov})
	wantCode(t, err, custos.EFORBIDDEN)

	// Records: an order is appended; customer service reads it in plain,
	// marketing (which would only get a masked order) gets none.
	occurred := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	rec, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, id, custos.NewRecord{
		Type: "order", OccurredAt: occurred,
		Data:       map[string]any{"order_no": "SO-2026-0001", "sku": "TEA-001", "amount_fen": 12900},
		Provenance: custos.Provenance{Collector: "checkout", Channel: "app", Source: "order-system"},
	})
	if err != nil {
		t.Fatalf("create record: %v", err)
	}
	if !custos.ValidID("rec", string(rec.ID)) || rec.SubjectID != id || rec.Category != "transaction" {
		t.Errorf("create record: got %+v", rec)
	}
	recs, err := ps.CS.FindRecords(ctx, []string{"customer-service"}, id, "")
	if err != nil {
		t.Fatalf("customer-service records: %v", err)
	}
	if len(recs) != 1 || recs[0].ID != rec.ID || recs[0].Data["sku"] != "TEA-001" || recs[0].Data["order_no"] != "SO-2026-0001" ||
		recs[0].Decision == nil || recs[0].Decision.Outcome != custos.Plain || !recs[0].OccurredAt.Equal(occurred) {
		t.Errorf("customer-service records: got %s", mustJSON(t, recs))
	}
	recs, err = ps.Marketing.FindRecords(ctx, []string{"marketing"}, id, "")
	if err != nil {
		t.Fatalf("marketing records: %v", err)
	}
	if len(recs) != 0 {
		t.Errorf("marketing records: got %s, want none", mustJSON(t, recs))
	}

	// Correction (R3): the new mobile replaces the old one in the blind
	// index too.
	upd, err := ps.App.UpdateSubject(ctx, []string{"account"}, id, custos.SubjectUpdate{
		Fields:     map[string]*string{"mobile": ptr("139 0000 1111")},
		Provenance: custos.Provenance{Collector: "cs-desk", Channel: "crm", Source: "customer"},
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if upd.ID != id || len(upd.Fields) != 0 {
		t.Errorf("update response: got id %s fields %v, want %s and no values", upd.ID, upd.Fields, id)
	}
	values = append(values, "139 0000 1111", "+8613900001111", "13900001111")
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "13812345678")
	wantCode(t, err, custos.ENOTFOUND)
	found, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "13900001111")
	if err != nil {
		t.Fatalf("lookup by the corrected mobile: %v", err)
	}
	if found.ID != id || found.Fields["mobile"] != "+8613900001111" || found.Fields["name"] != name {
		t.Errorf("lookup by the corrected mobile: got %s %v", found.ID, found.Fields)
	}
	if p := found.Provenance["mobile"]; p.Collector != "cs-desk" || p.Channel != "crm" {
		t.Errorf("corrected mobile provenance: got %+v, want the correction's (C6)", p)
	}
	if p := found.Provenance["name"]; p.Collector != prov.Collector {
		t.Errorf("name provenance after correcting the mobile: got %+v, want the original %+v", p, prov)
	}

	// Erasure (R4): a receipt, then the customer is gone for every path.
	rc, err := admin.EraseSubject(ctx, []string{"customer-service"}, id, "customer request")
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if rc.SubjectID != id || rc.Records != 1 || rc.Reason != "customer request" || rc.ErasedAt.IsZero() {
		t.Errorf("erasure receipt: got %+v", rc)
	}
	_, err = ps.App.FindSubjectByID(ctx, []string{"account"}, id)
	wantCode(t, err, custos.ENOTFOUND)
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "13900001111")
	wantCode(t, err, custos.ENOTFOUND)
	_, err = ps.CS.FindRecords(ctx, []string{"customer-service"}, id, "")
	wantCode(t, err, custos.ENOTFOUND)
	// The erased customer's lookup keys are free again: the same person
	// can sign up anew, as a new subject.
	again, err := ps.App.CreateSubject(ctx, []string{"account"}, custos.NewSubject{
		Fields: map[string]string{"name": name, "mobile": "13900001111"}, Provenance: prov})
	if err != nil {
		t.Fatalf("create with an erased customer's mobile: %v", err)
	}
	if again.ID == id {
		t.Errorf("a new subject reuses the erased id %s", id)
	}

	// Audit (S5): every access, change and deletion of the customer, with
	// field names and actors, never values.
	evs := allAuditEvents(t, admin, custos.AuditFilter{SubjectID: &id})
	byAction := map[string][]*custos.AuditEvent{}
	for _, ev := range evs {
		if ev.SubjectID != id {
			t.Errorf("audit filter by subject returned event %d of subject %q", ev.Seq, ev.SubjectID)
		}
		byAction[ev.Action] = append(byAction[ev.Action], ev)
	}
	for _, action := range []string{custos.AuditSubjectCreate, custos.AuditSubjectRead, custos.AuditSubjectLookup,
		custos.AuditSubjectUpdate, custos.AuditSubjectErase, custos.AuditRecordCreate, custos.AuditRecordRead} {
		if len(byAction[action]) == 0 {
			t.Errorf("audit of %s: no %s event; got actions %v", id, action, slices.Sorted(maps.Keys(byAction)))
		}
	}
	if c := firstEvent(byAction[custos.AuditSubjectCreate], ps.AppID, custos.DecisionAllow); c == nil {
		t.Errorf("no allowed subject.create event by the app")
	} else if !slices.Equal(c.Fields, []string{"address", "email", "mobile", "name", "password"}) ||
		!slices.Equal(c.Purposes, []string{"account", "fulfilment"}) {
		t.Errorf("subject.create event: got fields %v purposes %v", c.Fields, c.Purposes)
	}
	if r := firstEvent(byAction[custos.AuditSubjectRead], ps.CSID, custos.DecisionAllow); r == nil {
		t.Errorf("no allowed subject.read event by customer service (traceable to the staff member)")
	} else if !slices.Equal(r.Fields, []string{"address", "email", "mobile", "name"}) {
		t.Errorf("customer-service subject.read event: got fields %v", r.Fields)
	}
	if r := firstEvent(byAction[custos.AuditSubjectRead], ps.MarketingID, custos.DecisionAllow); r == nil || !slices.Equal(r.Fields, []string{"email", "mobile", "name"}) {
		t.Errorf("marketing subject.read event: got %+v, want fields email, mobile, name", r)
	}
	if u := firstEvent(byAction[custos.AuditSubjectUpdate], ps.AppID, custos.DecisionAllow); u == nil || !slices.Equal(u.Fields, []string{"mobile"}) {
		t.Errorf("subject.update event: got %+v, want fields [mobile]", u)
	}
	if d := firstEvent(byAction[custos.AuditSubjectErase], ps.MarketingID, custos.DecisionDeny); d == nil || d.Reason != "action_not_allowed" {
		t.Errorf("denied subject.erase by marketing: got %+v", d)
	}
	if d := firstEvent(byAction[custos.AuditSubjectErase], "", custos.DecisionAllow); d == nil ||
		!slices.Equal(d.Fields, []string{"address", "email", "mobile", "name", "password"}) {
		t.Errorf("subject.erase event: got %+v", d)
	}
	if d := firstEvent(byAction[custos.AuditSubjectRead], ps.AppID, custos.DecisionDeny); d == nil || d.Reason != custos.ENOTFOUND {
		t.Errorf("read after erasure: got audit %+v, want a deny not_found", d)
	}
	// Refused attempts that named no stored subject are audited too.
	all := allAuditEvents(t, admin, custos.AuditFilter{})
	for _, want := range []struct{ action, reason string }{
		{custos.AuditSubjectCreate, custos.ECONFLICT},
		{custos.AuditSubjectCreate, custos.EINVALID},
		{custos.AuditSubjectCreate, "action_not_allowed"},
		{custos.AuditSubjectLookup, custos.ENOTFOUND},
	} {
		if !slices.ContainsFunc(all, func(ev *custos.AuditEvent) bool {
			return ev.Action == want.action && ev.Decision == custos.DecisionDeny && ev.Reason == want.reason
		}) {
			t.Errorf("no deny %s event with reason %s in the audit log", want.action, want.reason)
		}
	}
	if ev := firstMatch(all, func(ev *custos.AuditEvent) bool {
		return ev.Action == custos.AuditSubjectCreate && ev.Reason == custos.EINVALID && slices.Contains(ev.Fields, "shoe_size")
	}); ev == nil || !slices.Contains(ev.Fields, "id_number") {
		t.Errorf("refused create: got audit event %+v, want the submitted field names", ev)
	}
	auditJSON := mustJSON(t, all)
	for _, v := range values {
		if strings.Contains(auditJSON, v) {
			t.Errorf("the audit log contains the value %q", v)
		}
	}

	// Operations endpoints.
	for _, path := range []string{"/healthz", "/readyz"} {
		if r := rawRequest(t, http.MethodGet, srv.URL+path, "", "", nil); r.Status != http.StatusOK {
			t.Errorf("GET %s: got %d, want 200: %s", path, r.Status, r.Body)
		}
	}
	if err := admin.Health(ctx); err != nil {
		t.Errorf("client health: %v", err)
	}
	m := rawRequest(t, http.MethodGet, srv.URL+"/metrics", "", "", nil)
	if m.Status != http.StatusOK || !strings.Contains(string(m.Body), "custos_http_requests_total") ||
		!strings.Contains(string(m.Body), "POST /v1/subjects") {
		t.Errorf("GET /metrics: got %d\n%s", m.Status, m.Body)
	}
	// The SQLite writer's counters: the writes above ran in commit groups.
	if g := regexp.MustCompile(`(?m)^custos_sqlite_commit_groups_total (\d+)$`).FindSubmatch(m.Body); g == nil || string(g[1]) == "0" {
		t.Errorf("GET /metrics: no commit groups counted\n%s", m.Body)
	}
	if !regexp.MustCompile(`(?m)^custos_import_batches_rerun_total 0$`).Match(m.Body) {
		t.Errorf("GET /metrics: no import counters\n%s", m.Body)
	}
	oa := rawRequest(t, http.MethodGet, srv.URL+"/v1/openapi.json", "", "", nil)
	var doc struct {
		OpenAPI string                     `json:"openapi"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(oa.Body, &doc); err != nil || oa.Status != http.StatusOK {
		t.Fatalf("GET /v1/openapi.json: status %d, parse error %v", oa.Status, err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Paths["/v1/subjects"] == nil || doc.Paths["/v1/subjects/{id}"] == nil {
		t.Errorf("openapi: got version %q and paths %v", doc.OpenAPI, slices.Sorted(maps.Keys(doc.Paths)))
	}

	// Stop; the audit chain of everything above verifies.
	srv.stop(t)
	code, out, errOut := runCLI(t, ctx, "audit", "verify", "--data", dir)
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("audit verify: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}

	// A second start on the same directory makes no new admin, and the
	// keys issued before still work; the erasure survived the restart.
	srv2 := startServer(t, dir)
	if srv2.AdminKey != "" || strings.Contains(srv2.Stdout.String(), "admin key:") {
		t.Errorf("second serve printed an admin key:\n%s", srv2.Stdout)
	}
	admin2 := srv2.client(srv.AdminKey)
	prs, err := admin2.FindPrincipals(ctx)
	if err != nil {
		t.Fatalf("old admin key after restart: %v", err)
	}
	if len(prs) != 5 {
		t.Errorf("after restart: got %d principals, want 5 (bootstrap admin, plan committee, app, customer service, marketing)", len(prs))
	}
	_, err = srv2.client(ps.AppKey).FindSubjectByID(ctx, []string{"account"}, id)
	wantCode(t, err, custos.ENOTFOUND)
	srv2.stop(t)
}

// assertNoSecret fails if a read response carries the password or any
// hash of it.
func assertNoSecret(t *testing.T, what string, s *custos.Subject, password string) {
	t.Helper()
	if _, ok := s.Fields["password"]; ok {
		t.Errorf("%s: the response has a password field", what)
	}
	b := mustJSON(t, s)
	if strings.Contains(b, password) || strings.Contains(b, "argon2") {
		t.Errorf("%s: the response carries the password or its hash: %s", what, b)
	}
}

func firstEvent(evs []*custos.AuditEvent, actor custos.PrincipalID, decision string) *custos.AuditEvent {
	return firstMatch(evs, func(ev *custos.AuditEvent) bool {
		return (actor == "" || ev.ActorID == actor) && ev.Decision == decision
	})
}

func firstMatch(evs []*custos.AuditEvent, f func(*custos.AuditEvent) bool) *custos.AuditEvent {
	if i := slices.IndexFunc(evs, f); i >= 0 {
		return evs[i]
	}
	return nil
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
