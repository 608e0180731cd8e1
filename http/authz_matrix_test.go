package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
	"custos/keys"
	"custos/notify"
	"custos/otp"
	"custos/sqlite"
)

// matrixEnv is a real service on SQLite behind the HTTP server, with one
// principal and API key per catalog role and a shared subject.
type matrixEnv struct {
	t      *testing.T
	svc    *core.Service
	cat    *custos.Catalog
	admin  context.Context
	srv    *httptest.Server
	tokens map[string]string // role → API key token
	target custos.PrincipalID
	// shared subject, created as admin for account and fulfilment.
	subject  custos.SubjectID
	sharedLK map[string]string // lookup field → value stored on the shared subject
	seq      atomic.Int64
	notes    string // the file notifier's file
	certID   string // a retention certificate, made on first use
	db       *sqlite.DB
}

// certificate returns the id of a retention certificate, running the
// sweeper once to make it.
func (e *matrixEnv) certificate() string {
	if e.certID == "" {
		rep, err := e.svc.SweepRetention(e.admin, core.RetentionOptions{})
		if err != nil {
			e.t.Fatalf("retention run: %v", err)
		}
		e.certID = rep.CertificateID
	}
	return e.certID
}

var matrixProv = custos.Provenance{Collector: "authz-matrix", Channel: "test", Source: "customer"}

func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := keys.NewSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	cat := custos.DefaultCatalog()
	svc := core.New(db, cat, ring, signer, nil)
	otpm, err := otp.New(bytes.Repeat([]byte{7}, 32), otp.Limits{PerSubject: 1000, PerClient: 1000})
	if err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(t.TempDir(), "notifications.jsonl")
	svc.Rights.OTP, svc.Rights.Notifier = otpm, notify.NewFile(notes)
	e := &matrixEnv{notes: notes, t: t, svc: svc, cat: cat, tokens: map[string]string{}, db: db,
		admin: custos.NewContextWithActor(ctx, &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})}
	for _, r := range cat.Roles {
		p := &custos.Principal{Name: "matrix " + r.Name, Kind: custos.KindService, Roles: []string{r.Name}}
		if err := svc.CreatePrincipal(e.admin, p); err != nil {
			t.Fatalf("principal for role %s: %v", r.Name, err)
		}
		k, err := svc.CreateAPIKey(e.admin, p.ID)
		if err != nil {
			t.Fatalf("key for role %s: %v", r.Name, err)
		}
		e.tokens[r.Name] = k.Token
	}
	tp := &custos.Principal{Name: "key target", Kind: custos.KindService, Roles: []string{"auditor"}}
	if err := svc.CreatePrincipal(e.admin, tp); err != nil {
		t.Fatal(err)
	}
	e.target = tp.ID
	if _, err := svc.PublishNotice(e.admin, matrixNotice); err != nil {
		t.Fatalf("publish notice: %v", err)
	}
	e.sharedLK = map[string]string{"mobile": e.mobile(), "member_no": e.unique("M")}
	e.subject = e.createSubject(map[string]string{"name": "王小明", "mobile": e.sharedLK["mobile"], "member_no": e.sharedLK["member_no"]})
	e.srv = httptest.NewServer(custoshttp.NewServer(svc, nil))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *matrixEnv) mobile() string { return fmt.Sprintf("139%08d", e.seq.Add(1)) }

func (e *matrixEnv) unique(prefix string) string { return fmt.Sprintf("%s-%06d", prefix, e.seq.Add(1)) }

// createSubject stores a subject as admin for account and fulfilment.
func (e *matrixEnv) createSubject(fields map[string]string) custos.SubjectID {
	e.t.Helper()
	s, err := e.svc.CreateSubject(e.admin, []string{"account", "fulfilment"}, custos.NewSubject{Fields: fields, Provenance: matrixProv})
	if err != nil {
		e.t.Fatalf("create subject: %v", err)
	}
	return s.ID
}

// sampleOrder lists the fields the matrix knows valid values for, non-lookup
// ones first so that updates do not move the shared subject's lookup keys.
var sampleOrder = []string{"name", "gender", "postal_code", "mobile", "member_no"}

func (e *matrixEnv) sample(field string) string {
	switch field {
	case "name":
		return "李四"
	case "gender":
		return "female"
	case "postal_code":
		return "200120"
	case "mobile":
		return e.mobile()
	case "member_no":
		return e.unique("M")
	}
	panic("no sample for " + field)
}

func hasCategory(role *custos.Role, category string) bool {
	return slices.Contains(role.Categories, category)
}

// writableField is a field the role may write for the purpose and the matrix
// has a sample value for, or "".
func (e *matrixEnv) writableField(role *custos.Role, purpose string) string {
	pu := e.cat.Purpose(purpose)
	if pu == nil {
		return ""
	}
	for _, name := range sampleOrder {
		if f := e.cat.Field(name); f != nil && slices.Contains(pu.Fields, name) && hasCategory(role, f.Category) {
			return name
		}
	}
	return ""
}

// recordType is a record type the role may write for the purpose, or "".
func (e *matrixEnv) recordType(role *custos.Role, purpose string) string {
	pu := e.cat.Purpose(purpose)
	if pu == nil {
		return ""
	}
	for _, name := range pu.Records {
		if rt := e.cat.RecordType(name); rt != nil && hasCategory(role, rt.Category) {
			return name
		}
	}
	return ""
}

// lookupField is a lookup key of the shared subject the role may see for the
// purpose, or "".
func (e *matrixEnv) lookupField(role *custos.Role, purpose string) string {
	pu := e.cat.Purpose(purpose)
	if pu == nil {
		return ""
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range e.sharedLK {
			if !yield(k) {
				return
			}
		}
	}) {
		if f := e.cat.Field(name); f != nil && f.Lookup && slices.Contains(pu.Fields, name) && hasCategory(role, f.Category) {
			return name
		}
	}
	return ""
}

// routeSpec is the expectation for one route pattern.
type routeSpec struct {
	auth    bool
	action  string   // catalog action required; "" means any authenticated principal
	anyOf   []string // alternatively: any one of these actions suffices
	purpose bool     // a declared purpose is required (data route)
	success int
	// usable reports whether a valid request can be built for the role
	// under the purpose; nil means always. When the role's own purposes
	// are all unusable, the request is sent anyway and unusable expected.
	usable   func(e *matrixEnv, role *custos.Role, purpose string) bool
	unusable int
	// build returns the path (with query) and JSON body (nil for none).
	build func(e *matrixEnv, role *custos.Role, purpose string) (string, any)
}

func get(path string) func(*matrixEnv, *custos.Role, string) (string, any) {
	return func(*matrixEnv, *custos.Role, string) (string, any) { return path, nil }
}

// matrixNotice presents one optional purpose.
var matrixNotice = custos.NoticeContent{Controller: "Matrix Shop", Contact: "privacy@example.com",
	Purposes: []custos.NoticePurpose{{Name: "marketing", Fields: []string{"mobile", "email"}, Retention: "until withdrawn"}},
	Text:     map[string]custos.NoticeText{"zh-CN": {Title: "隐私政策", Body: "正文", Rights: "权利"}, "en": {Title: "Privacy", Body: "Body", Rights: "Rights"}}}

func (e *matrixEnv) consentPath(_ *custos.Role, _ string) (string, any) {
	return "/v1/subjects/" + string(e.subject) + "/consents", nil
}

// routeTable must name exactly the patterns of Server.Patterns().
var routeTable = map[string]routeSpec{
	"GET /healthz":         {success: 200, build: get("/healthz")},
	"GET /readyz":          {success: 200, build: get("/readyz")},
	"GET /metrics":         {success: 200, build: get("/metrics")},
	"GET /v1/openapi.json": {success: 200, build: get("/v1/openapi.json")},
	"GET /v1/catalog":      {auth: true, success: 200, build: get("/v1/catalog")},
	"GET /v1/principals":   {auth: true, action: custos.ActPrincipalManage, success: 200, build: get("/v1/principals")},
	"GET /v1/audit":        {auth: true, action: custos.ActAuditRead, success: 200, build: get("/v1/audit?limit=5")},
	"POST /v1/principals": {auth: true, action: custos.ActPrincipalManage, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/principals", map[string]any{"name": e.unique("p"), "kind": custos.KindService, "roles": []string{"auditor"}}
		}},
	"POST /v1/principals/{id}/keys": {auth: true, action: custos.ActPrincipalManage, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/principals/" + string(e.target) + "/keys", nil
		}},
	"POST /v1/subjects": {auth: true, action: custos.ActSubjectCreate, purpose: true, success: 201, unusable: 422,
		usable: func(e *matrixEnv, r *custos.Role, p string) bool { return e.writableField(r, p) != "" },
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			f := e.writableField(r, p)
			if f == "" {
				f = "mobile"
			}
			// Lookup-key samples are unique, so creations never collide.
			fields := map[string]string{f: e.sample(f)}
			return "/v1/subjects", custos.NewSubject{Fields: fields, Provenance: matrixProv}
		}},
	"POST /v1/subjects/lookup": {auth: true, action: custos.ActSubjectRead, purpose: true, success: 200, unusable: 403,
		usable: func(e *matrixEnv, r *custos.Role, p string) bool { return e.lookupField(r, p) != "" },
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			f := e.lookupField(r, p)
			if f == "" {
				f = "mobile"
			}
			return "/v1/subjects/lookup", custoshttp.LookupRequest{Field: f, Value: e.sharedLK[f]}
		}},
	"POST /v1/subjects/read": {auth: true, action: custos.ActSubjectRead, purpose: true, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/subjects/read", custoshttp.ReadRequest{IDs: []custos.SubjectID{e.subject}}
		}},
	"GET /v1/subjects/{id}": {auth: true, action: custos.ActSubjectRead, purpose: true, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/subjects/" + string(e.subject), nil
		}},
	"PATCH /v1/subjects/{id}": {auth: true, action: custos.ActSubjectUpdate, purpose: true, success: 200, unusable: 422,
		usable: func(e *matrixEnv, r *custos.Role, p string) bool { return e.writableField(r, p) != "" },
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			f := e.writableField(r, p)
			if f == "" {
				f = "name"
			}
			v := e.sample(f)
			return "/v1/subjects/" + string(e.subject), custos.SubjectUpdate{Fields: map[string]*string{f: &v}, Provenance: matrixProv}
		}},
	"DELETE /v1/subjects/{id}": {auth: true, action: custos.ActSubjectErase, purpose: true, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			// Erasure destroys the subject: each request gets its own.
			id := e.createSubject(map[string]string{"name": "赵大海", "mobile": e.mobile()})
			return "/v1/subjects/" + string(id) + "?reason=matrix", nil
		}},
	"POST /v1/subjects/{id}/records": {auth: true, action: custos.ActRecordCreate, purpose: true, success: 201, unusable: 422,
		usable: func(e *matrixEnv, r *custos.Role, p string) bool { return e.recordType(r, p) != "" },
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			typ := e.recordType(r, p)
			if typ == "" {
				typ = "order"
			}
			return "/v1/subjects/" + string(e.subject) + "/records", custos.NewRecord{Type: typ,
				OccurredAt: time.Now().Add(-time.Hour), Data: map[string]any{"n": 1}, Provenance: matrixProv}
		}},
	"GET /v1/subjects/{id}/records": {auth: true, action: custos.ActRecordRead, purpose: true, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/subjects/" + string(e.subject) + "/records", nil
		}},
	"POST /v1/webhooks": {auth: true, action: custos.ActWebhookManage, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/webhooks", custoshttp.WebhookRecipientRequest{Name: e.unique("hook"), URL: "https://crm.example.com/hooks", Events: []string{"*"}}
		}},
	"GET /v1/webhooks": {auth: true, action: custos.ActWebhookManage, success: 200, build: get("/v1/webhooks")},
	"POST /v1/webhooks/{id}/disable": {auth: true, action: custos.ActWebhookManage, success: 204,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/webhooks/" + e.webhookRecipient() + "/disable", nil
		}},
	"GET /v1/events/{id}/deliveries": {auth: true, action: custos.ActWebhookManage, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/events/" + e.outboxEvent() + "/deliveries", nil
		}},
	"POST /v1/plans": {auth: true, action: custos.ActPlanFile, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) { return "/v1/plans", matrixPlan() }},
	"GET /v1/plans": {auth: true, anyOf: []string{custos.ActPlanFile, custos.ActPlanApprove}, success: 200, build: get("/v1/plans?status=pending")},
	"GET /v1/plans/{id}": {auth: true, anyOf: []string{custos.ActPlanFile, custos.ActPlanApprove}, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/plans/" + string(e.pendingPlan()), nil
		}},
	"POST /v1/plans/{id}/review": {auth: true, action: custos.ActPlanApprove, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/plans/" + string(e.pendingPlan()) + "/review", custos.Review{Approve: true, Reason: "matrix"}
		}},
	"POST /v1/grants": {auth: true, action: custos.ActUseApply, success: 201,
		build: func(e *matrixEnv, r *custos.Role, _ string) (string, any) {
			purpose := "account"
			if len(r.Purposes) > 0 {
				purpose = r.Purposes[0]
			}
			return "/v1/grants", e.grant(purpose)
		}},
	"GET /v1/grants": {auth: true, anyOf: []string{custos.ActUseApply, custos.ActUseApprove}, success: 200, build: get("/v1/grants")},
	"POST /v1/grants/{id}/review": {auth: true, action: custos.ActUseApprove, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			g := e.grant("account")
			if err := e.svc.ApplyGrant(e.admin, g); err != nil {
				e.t.Fatalf("apply grant: %v", err)
			}
			return "/v1/grants/" + string(g.ID) + "/review", custos.Review{Approve: false, Reason: "matrix"}
		}},
	"POST /v1/principals/{id}/block": {auth: true, action: custos.ActPrincipalManage, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			p := &custos.Principal{Name: e.unique("blocked"), Kind: custos.KindService, Roles: []string{"auditor"}}
			if err := e.svc.CreatePrincipal(e.admin, p); err != nil {
				e.t.Fatal(err)
			}
			return "/v1/principals/" + string(p.ID) + "/block", custoshttp.BlockRequest{Reason: "matrix"}
		}},
	"POST /v1/principals/{id}/unblock": {auth: true, action: custos.ActPrincipalManage, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/principals/" + string(e.target) + "/unblock", custoshttp.BlockRequest{}
		}},
	"PUT /v1/principals/{id}/prerequisites": {auth: true, action: custos.ActPrincipalManage, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			until := time.Now().Add(time.Hour)
			return "/v1/principals/" + string(e.target) + "/prerequisites", custos.Prerequisites{TrainingValidUntil: &until}
		}},
	"POST /v1/imports/{job}/rows": {auth: true, action: custos.ActImport, purpose: true, success: 200,
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			f := e.writableField(r, p)
			if f == "" {
				f = "name"
			}
			row := core.ImportInput{Line: 1, Subject: custos.NewSubject{Fields: map[string]string{f: e.sample(f)}, Provenance: matrixProv}}
			return "/v1/imports/" + e.unique("job") + "/rows", custoshttp.ImportRequest{Rows: []core.ImportInput{row}}
		}},
	"POST /v1/notices": {auth: true, action: custos.ActNoticePublish, success: 201,
		build: func(*matrixEnv, *custos.Role, string) (string, any) { return "/v1/notices", matrixNotice }},
	"GET /v1/notices":           {success: 200, build: get("/v1/notices")},
	"GET /v1/notices/current":   {success: 200, build: get("/v1/notices/current")},
	"GET /v1/notices/{version}": {success: 200, build: get("/v1/notices/1")},
	"POST /v1/subjects/{id}/consents": {auth: true, action: custos.ActConsentWrite, success: 201,
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			path, _ := e.consentPath(r, p)
			// The company asks again only after the re-ask period, so each
			// capture is the customer's own.
			no := false
			return path, custos.ConsentCapture{NoticeVersion: e.currentNotice(), Channel: "app",
				Decisions: []custos.ConsentDecision{{Purpose: "marketing", Granted: &no}}}
		}},
	"GET /v1/subjects/{id}/consents": {auth: true, action: custos.ActConsentRead, success: 200,
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) { return e.consentPath(r, p) }},
	"DELETE /v1/subjects/{id}/consents/{purpose}": {auth: true, action: custos.ActConsentWrite, success: 200,
		build: func(e *matrixEnv, r *custos.Role, p string) (string, any) {
			path, _ := e.consentPath(r, p)
			return path + "/marketing", nil
		}},
	"POST /v1/rights-requests": {auth: true, action: core.ActRightsHandle, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests", custos.NewRightsRequest{SubjectID: e.subject, Type: custos.RightsAccess, Channel: "phone",
				Verified: custos.VerifyStaff, Evidence: "called back on the number on file"}
		}},
	"GET /v1/rights-requests": {auth: true, action: core.ActRightsHandle, success: 200, build: get("/v1/rights-requests")},
	"GET /v1/rights-requests/{id}": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests/" + e.rightsRequest(custos.RightsAccess, true, false).ID, nil
		}},
	"POST /v1/rights-requests/{id}/code": {auth: true, action: core.ActRightsHandle, success: 202,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests/" + e.rightsRequest(custos.RightsAccess, false, false).ID + "/code", custoshttp.CodeRequest{Channel: "sms"}
		}},
	"POST /v1/rights-requests/{id}/verify": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			q := e.rightsRequest(custos.RightsAccess, false, false)
			cid, err := e.svc.SendRightsCode(e.admin, q.ID, "sms", "192.0.2.1")
			if err != nil {
				e.t.Fatalf("send code: %v", err)
			}
			return "/v1/rights-requests/" + q.ID + "/verify", custoshttp.CodeVerify{ChallengeID: cid, Code: e.lastCode()}
		}},
	"POST /v1/rights-requests/{id}/decision": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests/" + e.rightsRequest(custos.RightsAccess, true, true).ID + "/decision",
				custos.RightsDecision{Approve: false, Reason: "the proof does not show kinship"}
		}},
	"GET /v1/rights-requests/{id}/report": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests/" + e.rightsRequest(custos.RightsAccess, true, false).ID + "/report", nil
		}},
	"POST /v1/subjects/{id}/restriction/lift": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			q := e.rightsRequest(custos.RightsRestrict, true, false)
			if _, err := e.svc.DecideRightsRequest(e.admin, q.ID, custos.RightsDecision{Approve: true}); err != nil {
				e.t.Fatalf("restrict: %v", err)
			}
			return "/v1/subjects/" + string(q.SubjectID) + "/restriction/lift", custoshttp.LiftRequest{Reason: "the customer asked to lift it"}
		}},
	"GET /v1/rights-requests/{id}/export": {auth: true, action: core.ActRightsHandle, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/rights-requests/" + e.rightsRequest(custos.RightsCopy, true, false).ID + "/export", nil
		}},
	"POST /v1/consent-receipts/verify": {success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/consent-receipts/verify", custos.ConsentReceipt{ReceiptID: "rcp_x", SubjectID: e.subject}
		}},
	"GET /v1/retention/rules": {auth: true, action: custos.ActRetentionManage, success: 200, build: get("/v1/retention/rules")},
	"POST /v1/retention/runs": {auth: true, action: custos.ActRetentionManage, success: 200,
		build: func(*matrixEnv, *custos.Role, string) (string, any) {
			return "/v1/retention/runs", custoshttp.RetentionRunRequest{DryRun: true}
		}},
	"GET /v1/retention/holds": {auth: true, action: custos.ActRetentionManage, success: 200, build: get("/v1/retention/holds")},
	"POST /v1/retention/holds": {auth: true, action: custos.ActRetentionManage, success: 201,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/retention/holds", custoshttp.HoldRequest{Scope: custos.HoldCustomer, SubjectID: e.subject, Reason: "matrix", Owner: "legal"}
		}},
	"POST /v1/retention/holds/{id}/release": {auth: true, action: custos.ActRetentionManage, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			h, err := e.svc.PlaceHold(e.admin, custos.LegalHold{Scope: custos.HoldStore, Reason: "matrix", Owner: "legal"})
			if err != nil {
				e.t.Fatalf("place hold: %v", err)
			}
			return "/v1/retention/holds/" + h.ID + "/release", nil
		}},
	"GET /v1/retention/certificates": {auth: true, action: custos.ActAuditRead, success: 200, build: get("/v1/retention/certificates")},
	"GET /v1/retention/certificates/{id}": {auth: true, action: custos.ActAuditRead, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/retention/certificates/" + e.certificate(), nil
		}},
	"GET /v1/retention/certificates/{id}/verify": {auth: true, action: custos.ActAuditRead, success: 200,
		build: func(e *matrixEnv, _ *custos.Role, _ string) (string, any) {
			return "/v1/retention/certificates/" + e.certificate() + "/verify", nil
		}},
}

// rightsRequest files a request for a fresh subject as admin: verified by
// staff unless code, under review when relative.
func (e *matrixEnv) rightsRequest(typ string, verified, relative bool) *custos.RightsRequest {
	e.t.Helper()
	id := e.createSubject(map[string]string{"name": "钱多多", "mobile": e.mobile()})
	in := custos.NewRightsRequest{SubjectID: id, Type: typ, Channel: "phone"}
	if verified {
		in.Verified, in.Evidence = custos.VerifyStaff, "ID card seen at the counter"
	}
	if relative {
		in.Relative = &custos.Relative{Name: "钱父", Relation: "father", Proof: "death certificate 123"}
	}
	q, err := e.svc.FileRightsRequest(e.admin, in)
	if err != nil {
		e.t.Fatalf("file rights request: %v", err)
	}
	return q
}

// lastCode is the newest one-time code the file notifier wrote.
func (e *matrixEnv) lastCode() string {
	e.t.Helper()
	b, err := os.ReadFile(e.notes)
	if err != nil {
		e.t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var rec notify.FileRecord
	if err := json.Unmarshal(lines[len(lines)-1], &rec); err != nil {
		e.t.Fatal(err)
	}
	return rec.Code
}

// currentNotice is the latest published version (POST /v1/notices in the
// matrix publishes more).
func (e *matrixEnv) currentNotice() int {
	n, err := e.svc.Notice(context.Background(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return n.Version
}

func matrixPlan() *custos.Plan {
	return &custos.Plan{Department: "matrix", Purpose: "account", Description: "matrix plan",
		Fields: []custos.PlanItem{{Name: "name", Necessity: "address the customer"}}, Sources: []string{"customer"},
		Method: "online_form", Frequency: "once", Format: "structured", ValidUntil: time.Now().Add(time.Hour)}
}

// pendingPlan files a fresh plan as admin and returns its id.
func (e *matrixEnv) pendingPlan() custos.PlanID {
	e.t.Helper()
	p := matrixPlan()
	if err := e.svc.FilePlan(e.admin, p); err != nil {
		e.t.Fatalf("file plan: %v", err)
	}
	return p.ID
}

// grant is a valid data-use request for the shared subject, for the
// purpose's first field.
func (e *matrixEnv) grant(purpose string) *custos.Grant {
	return &custos.Grant{Purpose: purpose, Fields: e.cat.Purpose(purpose).Fields[:1], Scope: custos.GrantScope{Subjects: []custos.SubjectID{e.subject}},
		Method: custos.UseView, Start: time.Now(), End: time.Now().Add(time.Hour), Reason: "matrix"}
}

// purposeMode is how a request declares its purpose.
type purposeMode string

const (
	noKey          purposeMode = "no key"
	noPurpose      purposeMode = "no purpose"
	ownPurpose     purposeMode = "own purpose"     // the role's first purpose usable for the route
	foreignPurpose purposeMode = "foreign purpose" // a catalog purpose the role does not hold
)

// want computes the expected status (and, for 4xx problems, errors[0].field)
// from the catalog alone.
func (spec routeSpec) want(e *matrixEnv, role *custos.Role, mode purposeMode, purpose string) (int, string) {
	switch {
	case !spec.auth:
		return spec.success, ""
	case mode == noKey:
		return http.StatusUnauthorized, ""
	case spec.purpose && mode == noPurpose:
		return http.StatusUnprocessableEntity, "purpose"
	case spec.action != "" && !slices.Contains(role.Actions, spec.action):
		return http.StatusForbidden, "action"
	case len(spec.anyOf) > 0 && !slices.ContainsFunc(spec.anyOf, func(a string) bool { return slices.Contains(role.Actions, a) }):
		return http.StatusForbidden, "action"
	case !spec.purpose:
		return spec.success, ""
	case !slices.Contains(role.Purposes, purpose):
		return http.StatusForbidden, "purpose"
	case spec.usable != nil && !spec.usable(e, role, purpose):
		return spec.unusable, ""
	}
	return spec.success, ""
}

// pickPurpose chooses the purpose to declare for a mode, or ok=false when
// the mode does not apply to the role.
func (spec routeSpec) pickPurpose(e *matrixEnv, role *custos.Role, mode purposeMode) (string, bool) {
	switch mode {
	case noPurpose:
		return "", true
	case foreignPurpose:
		for _, p := range e.cat.Purposes {
			if !slices.Contains(role.Purposes, p.Name) {
				return p.Name, true
			}
		}
		return "", false
	}
	for _, p := range role.Purposes {
		if spec.usable == nil || spec.usable(e, role, p) {
			return p, true
		}
	}
	if len(role.Purposes) > 0 {
		return role.Purposes[0], true
	}
	return "marketing", true
}

func (e *matrixEnv) do(method, path, token, purpose string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if purpose != "" {
		req.Header.Set("Custos-Purpose", purpose)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestAuthzMatrix checks every route × every catalog role × purpose mode
// (no key, no purpose, the role's own purpose, a purpose it does not hold)
// against expectations derived from the catalog.
func TestAuthzMatrix(t *testing.T) {
	e := newMatrixEnv(t)

	patterns := custoshttp.NewServer(nil, nil).Patterns()
	for _, p := range patterns {
		if _, ok := routeTable[p]; !ok {
			t.Errorf("route %q has no entry in the authorisation matrix; add one to routeTable", p)
		}
	}
	for p := range routeTable {
		if !slices.Contains(patterns, p) {
			t.Errorf("routeTable names %q, which is not a route", p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if len(e.cat.Roles) == 0 {
		t.Fatal("catalog has no roles")
	}

	tally := map[int]int{}
	defer func() { t.Logf("checked %v (status → cases)", tally) }()
	for _, pattern := range patterns {
		spec := routeTable[pattern]
		method, _, _ := bytes.Cut([]byte(pattern), []byte(" "))
		for _, role := range e.cat.Roles {
			for _, mode := range []purposeMode{noKey, noPurpose, ownPurpose, foreignPurpose} {
				purpose, ok := spec.pickPurpose(e, &role, mode)
				if !ok {
					continue
				}
				token := e.tokens[role.Name]
				if mode == noKey {
					token = ""
				}
				path, body := spec.build(e, &role, purpose)
				wantStatus, wantField := spec.want(e, &role, mode, purpose)
				got, resp := e.do(string(method), path, token, purpose, body)
				tally[wantStatus]++
				if got != wantStatus {
					t.Errorf("%s as %s (%s %q): status %d, want %d; body %s", pattern, role.Name, mode, purpose, got, wantStatus, resp)
					continue
				}
				if wantField != "" {
					var pd custoshttp.Problem
					if err := json.Unmarshal(resp, &pd); err != nil || len(pd.Errors) == 0 || pd.Errors[0].Field != wantField {
						t.Errorf("%s as %s (%s %q): problem %s, want errors[0].field %q", pattern, role.Name, mode, purpose, resp, wantField)
					}
				}
			}
		}
	}
}

// webhookRecipient registers a recipient as admin and returns its id.
func (e *matrixEnv) webhookRecipient() string {
	e.t.Helper()
	r := &custos.WebhookRecipient{Name: e.unique("hook"), URL: "https://crm.example.com/hooks", Events: []string{"*"}}
	if err := e.svc.CreateWebhookRecipient(e.admin, r); err != nil {
		e.t.Fatalf("webhook recipient: %v", err)
	}
	return r.ID
}

// outboxEvent writes an outbox event and returns its id.
func (e *matrixEnv) outboxEvent() string {
	e.t.Helper()
	var ev *custos.OutboxEvent
	if err := e.db.Update(context.Background(), func(tx custos.Tx) (err error) {
		ev, err = e.svc.EmitTx(context.Background(), tx, "subject.erased", e.subject, map[string]string{"subject_id": string(e.subject)})
		return err
	}); err != nil {
		e.t.Fatalf("outbox event: %v", err)
	}
	return ev.ID
}
