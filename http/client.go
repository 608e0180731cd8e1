package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/core"
)

// Client talks to a custos server. It implements custos.SubjectService,
// custos.PrincipalService (but Authenticate) and custos.AuditService, so
// that the CLI and the end-to-end tests use custos exactly as an
// application would. Errors come back as *custos.Error with the server's
// code, violations and conflict id.
type Client struct {
	BaseURL string
	Token   string
	HTTP    *http.Client
}

// NewClient returns a client for baseURL ("http://127.0.0.1:8743").
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: ClientTimeout}}
}

var _ custos.SubjectService = (*Client)(nil)

func (c *Client) do(ctx context.Context, method, path string, purposes []string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	if len(purposes) > 0 {
		req.Header.Set("Custos-Purpose", strings.Join(purposes, ","))
	}
	if id := custos.RequestIDFromContext(ctx); id != "" {
		req.Header.Set("X-Request-ID", id)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("custos client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var p Problem
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Code == "" {
			return &custos.Error{Code: custos.EINTERNAL, Message: fmt.Sprintf("HTTP %d", resp.StatusCode)}
		}
		return p.err()
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw, err = io.ReadAll(resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Health calls /readyz and returns nil when the server is ready.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/readyz", nil, nil, nil)
}

// Catalog returns the server's catalog.
func (c *Client) Catalog(ctx context.Context) (*custos.Catalog, error) {
	var cat custos.Catalog
	if err := c.do(ctx, http.MethodGet, "/v1/catalog", nil, nil, &cat); err != nil {
		return nil, err
	}
	b, err := json.Marshal(cat)
	if err != nil {
		return nil, err
	}
	return custos.ParseCatalog(bytes.NewReader(b))
}

// CreatePrincipal implements custos.PrincipalService.
func (c *Client) CreatePrincipal(ctx context.Context, p *custos.Principal) error {
	return c.do(ctx, http.MethodPost, "/v1/principals", nil, map[string]any{"name": p.Name, "kind": p.Kind, "roles": p.Roles, "prerequisites": p.Prerequisites}, p)
}

// FindPrincipals implements custos.PrincipalService.
func (c *Client) FindPrincipals(ctx context.Context) ([]*custos.Principal, error) {
	var out struct{ Principals []*custos.Principal }
	err := c.do(ctx, http.MethodGet, "/v1/principals", nil, nil, &out)
	return out.Principals, err
}

// CreateAPIKey implements custos.PrincipalService.
func (c *Client) CreateAPIKey(ctx context.Context, id custos.PrincipalID) (*custos.APIKey, error) {
	var k custos.APIKey
	if err := c.do(ctx, http.MethodPost, "/v1/principals/"+url.PathEscape(string(id))+"/keys", nil, nil, &k); err != nil {
		return nil, err
	}
	return &k, nil
}

// CreateSubject implements custos.SubjectService.
func (c *Client) CreateSubject(ctx context.Context, purposes []string, in custos.NewSubject) (*custos.Subject, error) {
	var s custos.Subject
	if err := c.do(ctx, http.MethodPost, "/v1/subjects", purposes, in, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// FindSubjectByID implements custos.SubjectService.
func (c *Client) FindSubjectByID(ctx context.Context, purposes []string, id custos.SubjectID) (*custos.Subject, error) {
	var s custos.Subject
	if err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(string(id)), purposes, nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// FindSubjectsByID implements custos.SubjectService: a result's Err is
// the problem the server answered for that subject, as a *custos.Error.
func (c *Client) FindSubjectsByID(ctx context.Context, purposes []string, ids []custos.SubjectID) ([]custos.SubjectRead, error) {
	var out ReadResponse
	if err := c.do(ctx, http.MethodPost, "/v1/subjects/read", purposes, ReadRequest{IDs: ids}, &out); err != nil {
		return nil, err
	}
	rs := make([]custos.SubjectRead, len(out.Results))
	for i, res := range out.Results {
		rs[i] = custos.SubjectRead{ID: res.ID, Subject: res.Subject}
		if p := res.Error; p != nil {
			rs[i].Err = p.err()
		}
	}
	return rs, nil
}

// FindSubjectByLookup implements custos.SubjectService.
func (c *Client) FindSubjectByLookup(ctx context.Context, purposes []string, field, value string) (*custos.Subject, error) {
	var s custos.Subject
	if err := c.do(ctx, http.MethodPost, "/v1/subjects/lookup", purposes, LookupRequest{Field: field, Value: value}, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// UpdateSubject implements custos.SubjectService.
func (c *Client) UpdateSubject(ctx context.Context, purposes []string, id custos.SubjectID, upd custos.SubjectUpdate) (*custos.Subject, error) {
	var s custos.Subject
	if err := c.do(ctx, http.MethodPatch, "/v1/subjects/"+url.PathEscape(string(id)), purposes, upd, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// EraseSubject implements custos.SubjectService.
func (c *Client) EraseSubject(ctx context.Context, purposes []string, id custos.SubjectID, reason string) (*custos.ErasureReceipt, error) {
	var rc custos.ErasureReceipt
	if err := c.do(ctx, http.MethodDelete, "/v1/subjects/"+url.PathEscape(string(id))+"?reason="+url.QueryEscape(reason), purposes, nil, &rc); err != nil {
		return nil, err
	}
	return &rc, nil
}

// CreateRecord implements custos.SubjectService.
func (c *Client) CreateRecord(ctx context.Context, purposes []string, id custos.SubjectID, in custos.NewRecord) (*custos.Record, error) {
	var r custos.Record
	if err := c.do(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(string(id))+"/records", purposes, in, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// FindRecords implements custos.SubjectService.
func (c *Client) FindRecords(ctx context.Context, purposes []string, id custos.SubjectID, typ string) ([]*custos.Record, error) {
	var out struct{ Records []*custos.Record }
	err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(string(id))+"/records?type="+url.QueryEscape(typ), purposes, nil, &out)
	return out.Records, err
}

// ImportRows sends one batch of an import job.
func (c *Client) ImportRows(ctx context.Context, purposes []string, job string, rows []core.ImportInput) ([]*custos.ImportResult, error) {
	var out struct{ Results []*custos.ImportResult }
	err := c.do(ctx, http.MethodPost, "/v1/imports/"+url.PathEscape(job)+"/rows", purposes, ImportRequest{Rows: rows}, &out)
	return out.Results, err
}

// ImportRow implements custos.SubjectService.
func (c *Client) ImportRow(ctx context.Context, purposes []string, job string, line int, in custos.NewSubject) (*custos.ImportResult, error) {
	rs, err := c.ImportRows(ctx, purposes, job, []core.ImportInput{{Line: line, Subject: in}})
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, custos.Errorf(custos.EINTERNAL, "Expected one import result.")
	}
	return rs[0], nil
}

// FindAuditEvents implements custos.AuditService.
func (c *Client) FindAuditEvents(ctx context.Context, f custos.AuditFilter) ([]*custos.AuditEvent, error) {
	q := url.Values{}
	if f.SubjectID != nil {
		q.Set("subject_id", string(*f.SubjectID))
	}
	if f.ActorID != nil {
		q.Set("actor_id", string(*f.ActorID))
	}
	if f.Action != nil {
		q.Set("action", *f.Action)
	}
	if f.Since != nil {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	if f.Until != nil {
		q.Set("until", f.Until.Format(time.RFC3339))
	}
	if f.AfterSeq > 0 {
		q.Set("after", strconv.FormatInt(f.AfterSeq, 10))
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var out struct{ Events []*custos.AuditEvent }
	err := c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, nil, &out)
	return out.Events, err
}

// PublishNotice publishes the next privacy notice version.
func (c *Client) PublishNotice(ctx context.Context, content custos.NoticeContent) (*custos.Notice, error) {
	var n custos.Notice
	if err := c.do(ctx, http.MethodPost, "/v1/notices", nil, content, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// Notice returns notice version v, or the current one when v is 0.
func (c *Client) Notice(ctx context.Context, v int) (*custos.Notice, error) {
	path := "/v1/notices/current"
	if v > 0 {
		path = "/v1/notices/" + strconv.Itoa(v)
	}
	var n custos.Notice
	if err := c.do(ctx, http.MethodGet, path, nil, nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// CaptureConsent records a customer's consent decisions.
func (c *Client) CaptureConsent(ctx context.Context, id custos.SubjectID, in custos.ConsentCapture) (*custos.ConsentReceipt, error) {
	var rc custos.ConsentReceipt
	if err := c.do(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(string(id))+"/consents", nil, in, &rc); err != nil {
		return nil, err
	}
	return &rc, nil
}

// ConsentState returns a subject's consents.
func (c *Client) ConsentState(ctx context.Context, id custos.SubjectID) (*custos.ConsentState, error) {
	var st custos.ConsentState
	if err := c.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(string(id))+"/consents", nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// WithdrawConsent withdraws a purpose, or one scope of it ("" for the purpose).
func (c *Client) WithdrawConsent(ctx context.Context, id custos.SubjectID, purpose, scope, channel string) (*custos.ConsentReceipt, error) {
	q := url.Values{}
	if scope != "" {
		q.Set("scope", scope)
	}
	if channel != "" {
		q.Set("channel", channel)
	}
	path := "/v1/subjects/" + url.PathEscape(string(id)) + "/consents/" + url.PathEscape(purpose)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var rc custos.ConsentReceipt
	if err := c.do(ctx, http.MethodDelete, path, nil, nil, &rc); err != nil {
		return nil, err
	}
	return &rc, nil
}

// VerifyReceipt asks custos whether a consent receipt is genuine.
func (c *Client) VerifyReceipt(ctx context.Context, rc *custos.ConsentReceipt) (bool, error) {
	var out struct {
		Valid bool `json:"valid"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/consent-receipts/verify", nil, rc, &out); err != nil {
		return false, err
	}
	return out.Valid, nil
}

// FileRightsRequest files a rights request on a customer's behalf.
func (c *Client) FileRightsRequest(ctx context.Context, in custos.NewRightsRequest) (*custos.RightsRequest, error) {
	var q custos.RightsRequest
	if err := c.do(ctx, http.MethodPost, "/v1/rights-requests", nil, in, &q); err != nil {
		return nil, err
	}
	return &q, nil
}

// RightsRequest returns a rights request.
func (c *Client) RightsRequest(ctx context.Context, id string) (*custos.RightsRequest, error) {
	var q custos.RightsRequest
	if err := c.do(ctx, http.MethodGet, "/v1/rights-requests/"+url.PathEscape(id), nil, nil, &q); err != nil {
		return nil, err
	}
	return &q, nil
}

// RightsRequests lists the queue: open requests by deadline unless status
// is given; dueWithin > 0 keeps those due within so many working days.
func (c *Client) RightsRequests(ctx context.Context, status string, sub custos.SubjectID, dueWithin int) ([]*custos.RightsRequest, error) {
	q := url.Values{}
	if status != "" {
		q.Set("status", status)
	}
	if sub != "" {
		q.Set("subject_id", string(sub))
	}
	if dueWithin > 0 {
		q.Set("due_within_days", strconv.Itoa(dueWithin))
	}
	var out struct {
		Requests []*custos.RightsRequest `json:"requests"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/rights-requests?"+q.Encode(), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

// SendRightsCode sends the customer a one-time code for request id.
func (c *Client) SendRightsCode(ctx context.Context, id, channel string) (string, error) {
	var out struct {
		ChallengeID string `json:"challenge_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/rights-requests/"+url.PathEscape(id)+"/code", nil, CodeRequest{Channel: channel}, &out); err != nil {
		return "", err
	}
	return out.ChallengeID, nil
}

// VerifyRightsRequest answers a one-time code for request id.
func (c *Client) VerifyRightsRequest(ctx context.Context, id, challenge, code string) (*custos.RightsRequest, error) {
	var q custos.RightsRequest
	if err := c.do(ctx, http.MethodPost, "/v1/rights-requests/"+url.PathEscape(id)+"/verify", nil, CodeVerify{ChallengeID: challenge, Code: code}, &q); err != nil {
		return nil, err
	}
	return &q, nil
}

// DecideRightsRequest approves or refuses a request under review.
func (c *Client) DecideRightsRequest(ctx context.Context, id string, d custos.RightsDecision) (*custos.RightsRequest, error) {
	var q custos.RightsRequest
	if err := c.do(ctx, http.MethodPost, "/v1/rights-requests/"+url.PathEscape(id)+"/decision", nil, d, &q); err != nil {
		return nil, err
	}
	return &q, nil
}

// AccessReport returns a completed access request's report.
func (c *Client) AccessReport(ctx context.Context, id string) (*custos.AccessReport, error) {
	var rep custos.AccessReport
	if err := c.do(ctx, http.MethodGet, "/v1/rights-requests/"+url.PathEscape(id)+"/report", nil, nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Export downloads a completed copy request's zip.
func (c *Client) Export(ctx context.Context, id string) ([]byte, error) {
	var b []byte
	if err := c.do(ctx, http.MethodGet, "/v1/rights-requests/"+url.PathEscape(id)+"/export", nil, nil, &b); err != nil {
		return nil, err
	}
	return b, nil
}

var (
	_ custos.PlanService  = (*Client)(nil)
	_ custos.GrantService = (*Client)(nil)
)

// FilePlan implements custos.PlanService.
func (c *Client) FilePlan(ctx context.Context, p *custos.Plan) error {
	return c.do(ctx, http.MethodPost, "/v1/plans", nil, p, p)
}

// ReviewPlan implements custos.PlanService.
func (c *Client) ReviewPlan(ctx context.Context, id custos.PlanID, r custos.Review) (*custos.Plan, error) {
	var p custos.Plan
	if err := c.do(ctx, http.MethodPost, "/v1/plans/"+url.PathEscape(string(id))+"/review", nil, r, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// FindPlans implements custos.PlanService.
func (c *Client) FindPlans(ctx context.Context, f custos.PlanFilter) ([]*custos.Plan, error) {
	q := url.Values{}
	if f.Status != nil {
		q.Set("status", *f.Status)
	}
	if f.Purpose != nil {
		q.Set("purpose", *f.Purpose)
	}
	var out struct{ Plans []*custos.Plan }
	err := c.do(ctx, http.MethodGet, "/v1/plans?"+q.Encode(), nil, nil, &out)
	return out.Plans, err
}

// FindPlanByID implements custos.PlanService.
func (c *Client) FindPlanByID(ctx context.Context, id custos.PlanID) (*custos.Plan, error) {
	var p custos.Plan
	if err := c.do(ctx, http.MethodGet, "/v1/plans/"+url.PathEscape(string(id)), nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// ApplyGrant implements custos.GrantService.
func (c *Client) ApplyGrant(ctx context.Context, g *custos.Grant) error {
	return c.do(ctx, http.MethodPost, "/v1/grants", nil, g, g)
}

// ReviewGrant implements custos.GrantService.
func (c *Client) ReviewGrant(ctx context.Context, id custos.GrantID, r custos.Review) (*custos.Grant, error) {
	var g custos.Grant
	if err := c.do(ctx, http.MethodPost, "/v1/grants/"+url.PathEscape(string(id))+"/review", nil, r, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// FindGrants implements custos.GrantService.
func (c *Client) FindGrants(ctx context.Context, f custos.GrantFilter) ([]*custos.Grant, error) {
	q := url.Values{}
	if f.Status != nil {
		q.Set("status", *f.Status)
	}
	if f.Holder != nil {
		q.Set("holder", string(*f.Holder))
	}
	var out struct{ Grants []*custos.Grant }
	err := c.do(ctx, http.MethodGet, "/v1/grants?"+q.Encode(), nil, nil, &out)
	return out.Grants, err
}

// SetBlocked blocks or unblocks a principal.
func (c *Client) SetBlocked(ctx context.Context, id custos.PrincipalID, blocked bool, reason string) (*custos.Principal, error) {
	verb := "/unblock"
	if blocked {
		verb = "/block"
	}
	var p custos.Principal
	if err := c.do(ctx, http.MethodPost, "/v1/principals/"+url.PathEscape(string(id))+verb, nil, BlockRequest{Reason: reason}, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SetPrerequisites records a staff principal's compliance prerequisites.
func (c *Client) SetPrerequisites(ctx context.Context, id custos.PrincipalID, pre custos.Prerequisites) (*custos.Principal, error) {
	var p custos.Principal
	if err := c.do(ctx, http.MethodPut, "/v1/principals/"+url.PathEscape(string(id))+"/prerequisites", nil, pre, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// LiftRestriction ends a restriction the customer asked for.
func (c *Client) LiftRestriction(ctx context.Context, id custos.SubjectID, reason string) error {
	return c.do(ctx, http.MethodPost, "/v1/subjects/"+url.PathEscape(string(id))+"/restriction/lift", nil, LiftRequest{Reason: reason}, nil)
}

// err is the problem as the error the server's handler was given.
func (p *Problem) err() *custos.Error {
	return &custos.Error{Code: p.Code, Message: p.Detail, Violations: p.Errors, ConflictID: p.ExistingID}
}
