package core

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"custos"
	"custos/keys"
	"custos/notify"
	"custos/otp"
	"custos/workday"
)

// Customer rights requests (R1–R7; PIPL Art. 44–50). A request is filed by
// the customer through the portal (identity verified with a one-time code)
// or by staff on the customer's behalf (identity verified by the staff
// member, who records how). Requests that need no judgement are fulfilled
// at once; the rest wait in the staff queue. Every step is audited and kept
// on the request as its evidence.

// DefaultRightsDeadline is the default deadline in working days (RULES.md
// "Customer requests").
const DefaultRightsDeadline = 15

// ActRightsHandle lets staff file requests for customers, see the queue and
// decide requests under review.
const ActRightsHandle = "rights.handle"

// Audit actions of rights requests.
const (
	AuditRightsFile     = "rights.file"
	AuditRightsVerify   = "rights.verify"
	AuditRightsFulfil   = "rights.fulfil"
	AuditRightsDecide   = "rights.decide"
	AuditRightsRead     = "rights.read"
	AuditRightsExport   = "rights.export"
	AuditRightsDeadline = "rights.deadline"
	AuditRightsLift     = "rights.lift_restriction"
	AuditCodeIssue      = "otp.issue"
	AuditCodeVerify     = "otp.verify"
)

// RightsOptions configures rights requests; zero values are the defaults.
type RightsOptions struct {
	Calendar  *workday.Calendar // nil: workday.Default()
	Deadlines map[string]int    // working days per request type; missing: DefaultRightsDeadline
	Notifier  notify.Notifier   // sends one-time codes; nil: codes cannot be sent
	OTP       *otp.Manager      // nil: one-time codes are off
	// WarnWithin is how many working days before its deadline an open
	// request is listed as near and alerted; 0 means 3.
	WarnWithin int
}

func (s *Service) calendar() *workday.Calendar {
	if s.Rights.Calendar != nil {
		return s.Rights.Calendar
	}
	return workday.Default()
}

// RightsDeadline returns the deadline of a request of type typ filed at t:
// the end (Asia/Shanghai) of the n-th working day after t.
func (s *Service) RightsDeadline(typ string, t time.Time) time.Time {
	n := DefaultRightsDeadline
	if d, ok := s.Rights.Deadlines[typ]; ok && d > 0 {
		n = d
	}
	return s.calendar().Deadline(t, n)
}

// WorkingDeadline returns the end of the n-th working day after t.
func (s *Service) WorkingDeadline(t time.Time, n int) time.Time { return s.calendar().Deadline(t, n) }

// selfKey carries the subject a portal session verified.
type selfKey struct{}

// WithSelf marks ctx as the customer's own session for subject id, whose
// identity a one-time code verified (the portal sets it).
func WithSelf(ctx context.Context, id custos.SubjectID) context.Context {
	return context.WithValue(ctx, selfKey{}, id)
}

// Self returns the subject of a verified customer session, or "".
func Self(ctx context.Context) custos.SubjectID {
	id, _ := ctx.Value(selfKey{}).(custos.SubjectID)
	return id
}

// fulfiller is the authority rights fulfilment acts with: the customer's
// own verified request, carried out by custos on their behalf. Audit
// events keep the real actor's id.
func fulfiller(ctx context.Context) context.Context {
	id, name := custos.PrincipalID("portal"), "privacy portal"
	if a := custos.ActorFromContext(ctx); a != nil {
		id, name = a.ID, a.Name
	}
	return custos.NewContextWithActor(ctx, &custos.Principal{ID: id, Name: name, Kind: custos.KindService, Roles: []string{custos.RoleAdmin}})
}

// requireRights lets a verified customer act on their own subject, and
// staff with rights.handle act on any.
func (s *Service) requireRights(ctx context.Context, ev *custos.AuditEvent, id custos.SubjectID) error {
	if self := Self(ctx); self != "" {
		if id != self {
			return s.refuse(ctx, ev, "not_own_subject")
		}
		return nil
	}
	return s.requireAction(ctx, ev, ActRightsHandle)
}

func rightsEvent(ctx context.Context, action string, id custos.SubjectID) *custos.AuditEvent {
	e := event(ctx, action, id, nil, nil)
	if e.ActorID == "" && Self(ctx) != "" {
		e.ActorID = "portal"
	}
	return e
}

// checkNewRights validates a filing.
func (s *Service) checkNewRights(in *custos.NewRightsRequest, self bool) []custos.Violation {
	var vs []custos.Violation
	bad := func(field, rule, detail string) {
		vs = append(vs, custos.Violation{Field: field, Rule: rule, Detail: detail})
	}
	if !slices.Contains(custos.RightsTypes, in.Type) {
		bad("type", "enum", strings.Join(custos.RightsTypes, ", "))
	}
	if in.Channel == "" {
		in.Channel = "portal"
	}
	if !slices.Contains([]string{"portal", "app", "phone", "counter", "email", "letter"}, in.Channel) {
		bad("channel", "enum", "portal, app, phone, counter, email, letter")
	}
	if utf8.RuneCountInString(in.Note) > 2000 {
		bad("note", "max_length", "at most 2000 characters")
	}
	switch in.Type {
	case custos.RightsWithdraw, custos.RightsRestrict:
		if len(in.Purposes) == 0 && in.Type == custos.RightsWithdraw {
			bad("purposes", "required", "the purposes to withdraw consent from")
		}
		for i, p := range in.Purposes {
			pu := s.catalog.Purpose(p)
			if pu == nil {
				bad(fmt.Sprintf("purposes[%d]", i), "purpose_unknown", "")
			} else if in.Type == custos.RightsWithdraw && pu.LegalBasis != "consent" {
				bad(fmt.Sprintf("purposes[%d]", i), "not_consent_based", "this purpose rests on "+pu.LegalBasis+"; ask for deletion or restriction instead")
			}
		}
	case custos.RightsCorrect, custos.RightsSupplement:
		if len(in.Values) == 0 {
			bad("values", "required", "the fields and their new values")
		}
		for name := range in.Values {
			if f := s.catalog.Field(name); f == nil {
				bad("values."+name, "field_unknown", "")
			}
		}
	}
	if in.Relative != nil {
		if !slices.Contains(custos.RelativeTypes, in.Type) {
			bad("relative", "not_for_type", "relatives may ask for access, copy, correction or deletion (PIPL Art. 49)")
		}
		if strings.TrimSpace(in.Relative.Name) == "" || strings.TrimSpace(in.Relative.Relation) == "" || strings.TrimSpace(in.Relative.Proof) == "" {
			bad("relative", "required", "name, relation and proof of death and kinship")
		}
		if self {
			bad("relative", "not_self_service", "relatives file through staff, who review the proof")
		}
	}
	if !self {
		if in.Verified != custos.VerifyStaff && in.Verified != "" {
			bad("verified", "enum", "staff (with evidence), or empty to send the customer a one-time code")
		}
		if in.Verified == custos.VerifyStaff && strings.TrimSpace(in.Evidence) == "" {
			bad("evidence", "required", "how the customer's identity was checked")
		}
	}
	return vs
}

// FileRightsRequest files a request. A verified request that needs no
// judgement is fulfilled before this returns; an unverified one waits for
// its one-time code (see SendRightsCode, VerifyRightsRequest).
func (s *Service) FileRightsRequest(ctx context.Context, in custos.NewRightsRequest) (*custos.RightsRequest, error) {
	self := Self(ctx)
	if self != "" {
		in.SubjectID, in.Verified = self, custos.VerifyOTP
	}
	ev := rightsEvent(ctx, AuditRightsFile, in.SubjectID)
	if err := s.requireRights(ctx, ev, in.SubjectID); err != nil {
		return nil, err
	}
	if vs := s.checkNewRights(&in, self != ""); len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The request was not filed.", Violations: vs})
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	req := &custos.RightsRequest{ID: custos.NewID("dsr"), SubjectID: in.SubjectID, Type: in.Type, Status: custos.RightsReceived,
		Channel: in.Channel, FiledBy: ev.ActorID, FiledAt: now, Deadline: s.RightsDeadline(in.Type, now),
		ByRelative: in.Relative != nil, Purposes: in.Purposes, Fields: slices.Sorted(maps.Keys(in.Values)), UpdatedAt: now}
	req.Steps = append(req.Steps, custos.DSRStep{At: now, Actor: ev.ActorID, Step: "filed", Note: "via " + in.Channel})
	details := &custos.DSRDetails{Values: in.Values, Relative: in.Relative, Note: in.Note, Evidence: in.Evidence}
	if in.Verified != "" {
		req.Verified, req.VerifiedAt = in.Verified, now
		req.Steps = append(req.Steps, custos.DSRStep{At: now, Actor: ev.ActorID, Step: "identity verified", Note: in.Verified})
	}
	if req.ByRelative || in.Type == custos.RightsRestrict {
		req.Status = custos.RightsReview
		req.Steps = append(req.Steps, custos.DSRStep{At: now, Step: "awaiting staff review"})
	}
	ev.Reason = req.Type + " " + req.ID
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		dk, err := tx.GetDataKey(ctx, in.SubjectID)
		if err != nil {
			return notFoundSubject(err)
		}
		sealed, err := s.sealDetails(dk, req.ID, details)
		if err != nil {
			return err
		}
		return tx.InsertRightsRequest(ctx, &custos.StoredRightsRequest{Request: req, Sealed: sealed})
	})
	if err != nil {
		return nil, err
	}
	if req.Verified != "" && req.Status == custos.RightsReceived {
		return s.fulfil(ctx, req.ID)
	}
	return req, nil
}

func detailsAAD(id custos.SubjectID, req string) []byte {
	return keys.AAD("rights_requests", "details", string(id), req)
}

func (s *Service) sealDetails(dk *custos.DataKey, req string, d *custos.DSRDetails) ([]byte, error) {
	if d == nil || (len(d.Values) == 0 && d.Relative == nil && d.Note == "" && d.Evidence == "") {
		return nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, err
	}
	return aead.Seal(b, detailsAAD(dk.SubjectID, req), s.rand)
}

func (s *Service) openDetails(tx custos.Tx, ctx context.Context, r *custos.StoredRightsRequest) (*custos.DSRDetails, error) {
	if r.Sealed == nil {
		return &custos.DSRDetails{}, nil
	}
	dk, err := tx.GetDataKey(ctx, r.Request.SubjectID)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, nil // crypto-shredded: the details are gone with the customer
	} else if err != nil {
		return nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(r.Sealed, detailsAAD(r.Request.SubjectID, r.Request.ID))
	if err != nil {
		return nil, err
	}
	var d custos.DSRDetails
	return &d, json.Unmarshal(pt, &d)
}

// step appends a timeline entry and saves the request in tx.
func step(ctx context.Context, tx custos.Tx, r *custos.StoredRightsRequest, actor custos.PrincipalID, what, note string) error {
	now := tx.Now()
	r.Request.Steps = append(r.Request.Steps, custos.DSRStep{At: now, Actor: actor, Step: what, Note: note})
	r.Request.UpdatedAt = now
	return tx.UpdateRightsRequest(ctx, r)
}

// SendRightsCode sends a one-time code for an unverified request to the
// mobile (or e-mail) on file. It returns the challenge id to verify with.
func (s *Service) SendRightsCode(ctx context.Context, reqID, channel, client string) (string, error) {
	var sub custos.SubjectID
	if err := s.store.View(ctx, func(tx custos.Tx) error {
		r, err := tx.GetRightsRequest(ctx, reqID)
		if err != nil {
			return err
		}
		sub = r.Request.SubjectID
		return nil
	}); err != nil {
		return "", err
	}
	ev := rightsEvent(ctx, AuditCodeIssue, sub)
	if err := s.requireRights(ctx, ev, sub); err != nil {
		return "", err
	}
	return s.SendCode(ctx, sub, "rights:"+reqID, channel, client)
}

// SendCode issues a one-time code for subject id and sends it to the
// mobile or e-mail on file through the notifier; the code itself is never
// stored or logged. It returns the challenge id.
func (s *Service) SendCode(ctx context.Context, id custos.SubjectID, purpose, channel, client string) (string, error) {
	ev := rightsEvent(ctx, AuditCodeIssue, id)
	ev.Reason = purpose
	if s.Rights.OTP == nil || s.Rights.Notifier == nil {
		return "", custos.Errorf(custos.EUNAVAILABLE, "One-time codes are not configured.")
	}
	if channel == "" {
		channel = notify.SMS
	}
	field := "mobile"
	if channel == notify.Email {
		field = "email"
	} else if channel != notify.SMS {
		return "", s.auditRefusal(ctx, ev, custos.Invalid("Unknown channel.", custos.Violation{Field: "channel", Rule: "enum", Detail: "sms or email"}))
	}
	var (
		to, code, cid string
	)
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		ct, ok := st.Sealed[field]
		if !ok {
			return custos.Invalid("No "+field+" on file to send a code to.", custos.Violation{Field: "channel", Rule: "no_address"})
		}
		dk, err := tx.GetDataKey(ctx, id)
		if err != nil {
			return err
		}
		aead, err := s.aead(dk)
		if err != nil {
			return err
		}
		pt, err := aead.Open(ct, dekAAD("subjects", field, id, "", dk.Version))
		if err != nil {
			return err
		}
		to = string(pt)
		ch, c, err := s.Rights.OTP.Issue(ctx, tx, otp.Request{SubjectID: id, Purpose: purpose, Channel: channel, Client: client})
		if err != nil {
			return err
		}
		cid, code = ch.ID, c
		return nil
	})
	if err != nil {
		return "", err
	}
	msg := &notify.Message{SubjectID: id, Channel: channel, To: to, Kind: notify.KindCode, Title: "custos verification code",
		Text: "Your verification code is " + code + ". It expires in " + s.Rights.OTP.Limits().TTL.String() + ". 您的验证码是 " + code + "。", Code: code}
	if err := s.Rights.Notifier.Send(ctx, msg); err != nil {
		s.logger.Warn("sending a one-time code failed", "subject", id, "err", custos.ErrorCode(err))
		return "", custos.Errorf(custos.EUNAVAILABLE, "The code could not be sent; try again later.")
	}
	return cid, nil
}

// VerifyCode checks a one-time code for challenge cid and returns the
// subject it verified.
func (s *Service) VerifyCode(ctx context.Context, cid, code string) (custos.SubjectID, string, error) {
	ev := rightsEvent(ctx, AuditCodeVerify, "")
	if s.Rights.OTP == nil {
		return "", "", custos.Errorf(custos.EUNAVAILABLE, "One-time codes are not configured.")
	}
	var (
		ch  *custos.OTPChallenge
		res otp.Result
	)
	err := s.store.Update(ctx, func(tx custos.Tx) error {
		var err error
		ch, res, err = s.Rights.OTP.Verify(ctx, tx, cid, code)
		if err != nil {
			return err
		}
		if ch != nil {
			ev.SubjectID = ch.SubjectID
			ev.Reason = ch.Purpose
		}
		if res != otp.Verified {
			ev.Decision, ev.Reason = custos.DecisionDeny, res.String()
		}
		return s.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return "", "", err
	}
	if err := res.Err(); err != nil {
		return "", "", err
	}
	return ch.SubjectID, ch.Purpose, nil
}

// VerifyRightsRequest verifies an unverified request with a one-time code
// sent by SendRightsCode, then fulfils it if no judgement is needed.
func (s *Service) VerifyRightsRequest(ctx context.Context, reqID, cid, code string) (*custos.RightsRequest, error) {
	q, err := s.rightsRequest(ctx, reqID, false)
	if err != nil {
		return nil, err
	}
	if err := s.requireRights(ctx, rightsEvent(ctx, AuditRightsVerify, q.SubjectID), q.SubjectID); err != nil {
		return nil, err
	}
	sub, purpose, err := s.VerifyCode(ctx, cid, code)
	if err != nil {
		return nil, err
	}
	if purpose != "rights:"+reqID {
		return nil, custos.Errorf(custos.EFORBIDDEN, "The code was not issued for this request.")
	}
	ev := rightsEvent(ctx, AuditRightsVerify, sub)
	var status string
	err = s.run(ctx, ev, func(tx custos.Tx) error {
		r, err := tx.GetRightsRequest(ctx, reqID)
		if err != nil {
			return err
		}
		if r.Request.Verified == "" {
			r.Request.Verified, r.Request.VerifiedAt = custos.VerifyOTP, tx.Now()
			if err := step(ctx, tx, r, ev.ActorID, "identity verified", custos.VerifyOTP); err != nil {
				return err
			}
		}
		status = r.Request.Status
		return nil
	})
	if err != nil {
		return nil, err
	}
	if status == custos.RightsReceived {
		return s.fulfil(ctx, reqID)
	}
	return s.rightsRequest(ctx, reqID, false)
}

// DecideRightsRequest records a staff decision on a request under review:
// approve (then it is fulfilled) or refuse with a stated reason (PIPL
// Art. 50). Requires rights.handle.
func (s *Service) DecideRightsRequest(ctx context.Context, reqID string, d custos.RightsDecision) (*custos.RightsRequest, error) {
	ev := rightsEvent(ctx, AuditRightsDecide, "")
	if err := s.requireAction(ctx, ev, ActRightsHandle); err != nil {
		return nil, err
	}
	d.Reason = strings.TrimSpace(d.Reason)
	if !d.Approve && d.Reason == "" {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("A refusal states its reason.", custos.Violation{Field: "reason", Rule: "required", Detail: "PIPL Art. 50"}))
	}
	if utf8.RuneCountInString(d.Reason) > 1000 {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The reason is too long.", custos.Violation{Field: "reason", Rule: "max_length", Detail: "at most 1000 characters"}))
	}
	approve := false
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		r, err := tx.GetRightsRequest(ctx, reqID)
		if err != nil {
			return err
		}
		ev.SubjectID = r.Request.SubjectID
		if r.Request.Status != custos.RightsReview && r.Request.Status != custos.RightsReceived {
			return custos.Invalid("The request is not open.", custos.Violation{Field: "status", Rule: "not_open", Detail: r.Request.Status})
		}
		if d.Approve {
			if r.Request.Verified == "" {
				return custos.Invalid("Verify the customer's identity first.", custos.Violation{Field: "verified", Rule: "required"})
			}
			r.Request.Status = custos.RightsReceived
			approve = true
			ev.Reason = "approved " + reqID
			return step(ctx, tx, r, ev.ActorID, "approved", "")
		}
		r.Request.Status, r.Request.Refusal, r.Request.CompletedAt = custos.RightsRefused, d.Reason, tx.Now()
		ev.Reason = "refused " + reqID
		return step(ctx, tx, r, ev.ActorID, "refused", "reason stated to the customer")
	})
	if err != nil {
		return nil, err
	}
	if approve {
		return s.fulfil(ctx, reqID)
	}
	return s.rightsRequest(ctx, reqID, false)
}

// fulfil carries out a verified request that needs no (more) judgement.
func (s *Service) fulfil(ctx context.Context, reqID string) (*custos.RightsRequest, error) {
	var (
		r   *custos.StoredRightsRequest
		det *custos.DSRDetails
	)
	if err := s.store.View(ctx, func(tx custos.Tx) error {
		var err error
		if r, err = tx.GetRightsRequest(ctx, reqID); err != nil {
			return err
		}
		det, err = s.openDetails(tx, ctx, r)
		return err
	}); err != nil {
		return nil, err
	}
	q := r.Request
	fctx := fulfiller(ctx)
	var ferr error
	note := ""
	switch q.Type {
	case custos.RightsAccess, custos.RightsCopy:
		note = "report and export available to the customer"
	case custos.RightsCorrect, custos.RightsSupplement:
		ferr = s.applyCorrection(fctx, q, det)
		note = strings.Join(q.Fields, ", ")
	case custos.RightsWithdraw:
		for _, p := range q.Purposes {
			if _, err := s.WithdrawConsent(fctx, q.SubjectID, p, "", "portal"); err != nil {
				ferr = err
				break
			}
		}
		note = strings.Join(q.Purposes, ", ")
	case custos.RightsRestrict:
		ferr = s.restrictForRequest(fctx, q)
	case custos.RightsDelete, custos.RightsClose:
		return s.eraseForRequest(fctx, reqID)
	}
	ev := rightsEvent(ctx, AuditRightsFulfil, q.SubjectID)
	ev.Reason = q.Type + " " + q.ID
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		r, err := tx.GetRightsRequest(ctx, reqID)
		if err != nil {
			return err
		}
		if ferr != nil {
			// Bad values in a correction are the customer's to fix: the
			// request is refused with the reason, never half-applied.
			r.Request.Status, r.Request.Refusal, r.Request.CompletedAt = custos.RightsRefused, refusalText(ferr), tx.Now()
			return step(ctx, tx, r, ev.ActorID, "refused", custos.ErrorCode(ferr))
		}
		r.Request.Status, r.Request.CompletedAt = custos.RightsCompleted, tx.Now()
		return step(ctx, tx, r, ev.ActorID, "completed", note)
	})
	if err != nil {
		return nil, err
	}
	if ferr != nil && custos.ErrorCode(ferr) == custos.EINTERNAL {
		return nil, ferr
	}
	return s.rightsRequest(ctx, reqID, false)
}

// refusalText states why a fulfilment failed, naming fields and rules only.
func refusalText(err error) string {
	e := custos.AsError(err)
	if e == nil {
		return "The request could not be carried out."
	}
	var parts []string
	for _, v := range e.Violations {
		parts = append(parts, v.Field+": "+v.Rule)
	}
	if len(parts) == 0 {
		return e.Message
	}
	return e.Message + " (" + strings.Join(parts, "; ") + ")"
}

// applyCorrection corrects (fields held) or supplements (fields not held)
// with the validation of collection, through the one update path.
func (s *Service) applyCorrection(ctx context.Context, q *custos.RightsRequest, det *custos.DSRDetails) error {
	if det == nil || len(det.Values) == 0 {
		return custos.Invalid("No values to apply.", custos.Violation{Field: "values", Rule: "required"})
	}
	var held map[string][]byte
	if err := s.store.View(ctx, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, q.SubjectID)
		if err != nil {
			return err
		}
		held = st.Sealed
		return nil
	}); err != nil {
		return err
	}
	var vs []custos.Violation
	upd := custos.SubjectUpdate{Fields: map[string]*string{}, Provenance: custos.Provenance{
		Collector: "rights-request " + q.ID, Channel: q.Channel, Source: "customer", Location: "privacy request"}}
	for name, v := range det.Values {
		_, has := held[name]
		if q.Type == custos.RightsCorrect && !has {
			vs = append(vs, custos.Violation{Field: name, Rule: "not_held", Detail: "nothing to correct; ask to supplement"})
		}
		if q.Type == custos.RightsSupplement && has {
			vs = append(vs, custos.Violation{Field: name, Rule: "already_held", Detail: "ask to correct"})
		}
		upd.Fields[name] = &v
	}
	if len(vs) > 0 {
		return &custos.Error{Code: custos.EINVALID, Message: "Nothing was changed.", Violations: vs}
	}
	var purposes []string
	for _, p := range s.catalog.Purposes {
		purposes = append(purposes, p.Name)
	}
	_, err := s.UpdateSubject(ctx, purposes, q.SubjectID, upd)
	return err
}

// restrictForRequest locks the customer's data: kept, excluded from every
// use, until staff lift it.
func (s *Service) restrictForRequest(ctx context.Context, q *custos.RightsRequest) error {
	ev := rightsEvent(ctx, AuditRightsFulfil, q.SubjectID)
	ev.Reason = "restrict " + q.ID
	return s.run(ctx, ev, func(tx custos.Tx) error {
		return tx.RestrictSubject(ctx, q.SubjectID, restrictIndefinitely)
	})
}

// LiftRestriction ends a restriction the customer asked for (a restrict
// request), when the customer asks again or the reason has gone. A
// restriction that keeps data for a legal minimum cannot be lifted: it
// ends on its own date. Requires rights.handle; audited.
func (s *Service) LiftRestriction(ctx context.Context, id custos.SubjectID, reason string) error {
	ev := rightsEvent(ctx, AuditRightsLift, id)
	if err := s.requireAction(ctx, ev, ActRightsHandle); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if reason == "" || utf8.RuneCountInString(reason) > 500 {
		return s.auditRefusal(ctx, ev, custos.Invalid("State why the restriction ends.", custos.Violation{Field: "reason", Rule: "required", Detail: "1–500 characters"}))
	}
	ev.Reason = reason
	return s.run(ctx, ev, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		switch {
		case !restricted(st.RestrictedUntil, tx.Now()):
			return custos.Invalid("The customer is not restricted.", custos.Violation{Field: "subject", Rule: "not_restricted"})
		case !st.RestrictedUntil.Equal(restrictIndefinitely):
			return custos.Invalid("Data kept for a legal minimum stays restricted until its date.",
				custos.Violation{Field: "subject", Rule: "legal_minimum", Detail: "restricted until " + st.RestrictedUntil.Format(time.DateOnly)})
		}
		return tx.RestrictSubject(ctx, id, time.Time{})
	})
}

// restrictIndefinitely is "until lifted".
var restrictIndefinitely = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// Outbox event types of rights requests.
const (
	EventSubjectErased = "subject.erased"
	EventAccountClosed = "account.closed"
)

// eraseForRequest deletes the customer for a delete or close-account
// request (deleteTx) and emits an outbox event in the same transaction,
// telling every downstream recipient.
func (s *Service) eraseForRequest(ctx context.Context, reqID string) (*custos.RightsRequest, error) {
	ev := rightsEvent(ctx, AuditRightsFulfil, "")
	var shreds shredAttempts
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		shreds.begin()
		r, err := tx.GetRightsRequest(ctx, reqID)
		if err != nil {
			return err
		}
		q := r.Request
		ev.SubjectID, ev.Reason = q.SubjectID, q.Type+" "+q.ID
		retained, err := s.deleteTx(ctx, tx, q.SubjectID, q.Type == custos.RightsClose, q.Type+" request "+q.ID, ev, &shreds)
		if err != nil {
			return err
		}
		q.Retained = retained
		evType := EventSubjectErased
		if q.Type == custos.RightsClose {
			evType = EventAccountClosed
		}
		payload := map[string]any{"request_id": q.ID, "type": q.Type, "retained": len(retained) > 0}
		oe, err := s.EmitTx(ctx, tx, evType, q.SubjectID, payload)
		if err != nil {
			return err
		}
		q.EventID = oe.ID
		q.Status, q.CompletedAt = custos.RightsCompleted, tx.Now()
		note := "crypto-shredded"
		if n := retainedCount(retained); n > 0 {
			note = fmt.Sprintf("kept restricted for a legal minimum: %d record(s); the rest deleted", n)
		}
		return step(ctx, tx, r, ev.ActorID, "completed", note)
	})
	s.settleShred(&shreds, err)
	if err != nil {
		return nil, err
	}
	return s.rightsRequest(ctx, reqID, false)
}

func retainedCount(rs []custos.Retained) int {
	n := 0
	for _, r := range rs {
		n += r.Count
	}
	return n
}

// ShredRestricted prefixes the reason of a shred ledger entry for a
// deletion that kept records restricted for a legal minimum: a restore
// re-applies it as such a deletion (ReapplyDeletion), not as a
// crypto-shredding, so the kept records survive as the law requires.
const ShredRestricted = "restricted deletion: "

// deleteTx deletes customer id inside tx for the customer's request. Data
// under a legal minimum retention (transaction records within their floor)
// is restricted instead — stored, locked, excluded from every use — and
// everything else goes: profile fields, other records, lookup keys,
// consents. What was kept is returned, to tell the customer why and until
// when. When nothing must be kept the customer is crypto-shredded
// (eraseTx). Either way the deletion is written to the shred ledger, so
// that a restore from an older backup repeats it.
func (s *Service) deleteTx(ctx context.Context, tx custos.Tx, id custos.SubjectID, closing bool, reason string, ev *custos.AuditEvent, shreds *shredAttempts) ([]custos.Retained, error) {
	recs, err := tx.ListRecords(ctx, id, "")
	if err != nil {
		return nil, err
	}
	now := tx.Now()
	kept := map[string]*custos.Retained{}
	var keep, drop []custos.RecordID
	var until time.Time
	for _, rec := range recs {
		end := legalEnd(rec)
		if !end.After(now) {
			drop = append(drop, rec.ID)
			continue
		}
		keep = append(keep, rec.ID)
		k := kept[rec.Category]
		if k == nil {
			k = &custos.Retained{Category: rec.Category, Reason: custos.FloorTransaction.Data + ": " + custos.FloorTransaction.Min.String() +
				" from completion (" + custos.FloorTransaction.Source + ")"}
			kept[rec.Category] = k
		}
		k.Count++
		if end.After(k.Until) {
			k.Until = end
		}
		if end.After(until) {
			until = end
		}
	}
	if len(keep) == 0 {
		_, err := s.eraseTx(ctx, tx, id, reason, ev, shreds)
		return nil, err
	}
	// Keep the data key for what must be kept; everything else goes.
	if len(drop) > 0 {
		if _, err := tx.DeleteRecordsByID(ctx, drop); err != nil {
			return nil, err
		}
	}
	if _, err := tx.RestrictRecords(ctx, keep, until); err != nil {
		return nil, err
	}
	st, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	ev.Fields = storedFields(st)
	st.Sealed = map[string][]byte{}
	st.UpdatedAt = now
	if err := tx.UpdateSubject(ctx, st); err != nil {
		return nil, err
	}
	if err := tx.DeleteLookups(ctx, id, ""); err != nil {
		return nil, err
	}
	if _, err := tx.DeleteConsents(ctx, id); err != nil {
		return nil, err
	}
	if err := tx.RestrictSubject(ctx, id, until); err != nil {
		return nil, err
	}
	// FinishRetainedErasures finds the customer by this date.
	if err := tx.SetLifecycle(ctx, id, lifecycleRetainedUntil, until); err != nil {
		return nil, err
	}
	if closing {
		if err := tx.SetLifecycle(ctx, id, custos.TriggerAccountClosure, now); err != nil {
			return nil, err
		}
	}
	var out []custos.Retained
	for _, c := range slices.Sorted(maps.Keys(kept)) {
		out = append(out, *kept[c])
	}
	err = s.recordShred(tx, custos.ShredEntry{SubjectID: id, ShredAt: now, Reason: ShredRestricted + reason, ActorID: ev.ActorID}, shreds)
	return out, err
}

// ReapplyDeletion repeats, after a restore, a deletion that kept records
// restricted (a ShredRestricted ledger entry). It reports false when the
// restored store already reflects it. The system principal only.
func (s *Service) ReapplyDeletion(ctx context.Context, id custos.SubjectID, reason string) (bool, error) {
	ev := rightsEvent(ctx, AuditRightsFulfil, id)
	if err := s.requireAction(ctx, ev, custos.ActSubjectErase); err != nil {
		return false, err
	}
	ev.Reason = reason
	applied := false
	var shreds shredAttempts
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		shreds.begin()
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		if len(st.Sealed) == 0 && restricted(st.RestrictedUntil, tx.Now()) {
			return nil // reflected: deleted before the backup was taken
		}
		applied = true
		_, err = s.deleteTx(ctx, tx, id, false, reason, ev, &shreds)
		return err
	})
	s.settleShred(&shreds, err)
	return applied, err
}

// lifecycleRetainedUntil is the lifecycle event a deletion that kept
// records for a legal minimum records, at the date the last one may go.
const lifecycleRetainedUntil = "deletion_retained_until"

// FinishRetainedErasures crypto-shreds customers whose deletion kept data
// for a legal minimum once that minimum has passed, and notes it on their
// requests. The leader runs it with the deadline check. It pages through
// the customers due (a lifecycle date), however many requests there are.
func (s *Service) FinishRetainedErasures(ctx context.Context) (int, error) {
	n := 0
	var after custos.SubjectID
	for {
		var due []*custos.ScannedSubject
		err := s.store.View(ctx, func(tx custos.Tx) (err error) {
			due, err = tx.ScanSubjects(ctx, custos.SubjectScan{Clock: lifecycleRetainedUntil, Before: tx.Now(), After: after, Limit: 200})
			return err
		})
		if err != nil || len(due) == 0 {
			return n, err
		}
		for _, sub := range due {
			after = sub.ID
			if err := s.finishRetained(ctx, sub.ID); err != nil {
				return n, err
			}
			n++
		}
	}
}

// finishRetained shreds one customer whose legal minimum has passed.
func (s *Service) finishRetained(ctx context.Context, id custos.SubjectID) error {
	ev := rightsEvent(ctx, AuditRightsFulfil, id)
	ev.ActorID = "system"
	var shreds shredAttempts
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		shreds.begin()
		rs, err := tx.ListRightsRequests(ctx, custos.RightsFilter{Status: custos.RightsCompleted, SubjectID: id})
		if err != nil {
			return err
		}
		reason := "legal minimum passed after a deletion request"
		for _, r := range rs {
			if len(r.Request.Retained) > 0 {
				reason = "legal minimum passed for request " + r.Request.ID
				r.Request.Retained = nil
				if err := step(ctx, tx, r, "system", "retained data deleted", "legal minimum passed"); err != nil {
					return err
				}
			}
		}
		_, err = s.eraseTx(ctx, tx, id, reason, ev, &shreds)
		return err
	})
	s.settleShred(&shreds, err)
	return err
}

// rightsRequest loads a request; with details, its sealed details too.
func (s *Service) rightsRequest(ctx context.Context, id string, details bool) (*custos.RightsRequest, error) {
	var out *custos.RightsRequest
	err := s.store.View(ctx, func(tx custos.Tx) error {
		r, err := tx.GetRightsRequest(ctx, id)
		if err != nil {
			return err
		}
		out = r.Request
		if details {
			if out.Details, err = s.openDetails(tx, ctx, r); err != nil {
				return err
			}
		}
		if out.EventID != "" {
			if out.Deliveries, err = tx.ListWebhookDeliveries(ctx, out.EventID); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// RightsRequest returns a request: to the customer it belongs to (without
// staff details) or to staff with rights.handle (with them).
func (s *Service) RightsRequest(ctx context.Context, id string) (*custos.RightsRequest, error) {
	r, err := s.rightsRequest(ctx, id, Self(ctx) == "")
	if err != nil {
		return nil, err
	}
	ev := rightsEvent(ctx, AuditRightsRead, r.SubjectID)
	if err := s.requireRights(ctx, ev, r.SubjectID); err != nil {
		return nil, err
	}
	if Self(ctx) != "" {
		r.Details = nil
	}
	return r, nil
}

// RightsRequests lists requests: staff see the queue (open requests by
// deadline, or as filtered); a customer sees their own.
func (s *Service) RightsRequests(ctx context.Context, f custos.RightsFilter) ([]*custos.RightsRequest, error) {
	if self := Self(ctx); self != "" {
		f.SubjectID = self
	} else if err := s.requireAction(ctx, rightsEvent(ctx, AuditRightsRead, ""), ActRightsHandle); err != nil {
		return nil, err
	}
	var out []*custos.RightsRequest
	err := s.store.View(ctx, func(tx custos.Tx) error {
		statuses := []string{f.Status}
		if f.Status == "" && f.SubjectID != "" {
			statuses = []string{"", custos.RightsCompleted, custos.RightsRefused}
		}
		for _, st := range statuses {
			g := f
			g.Status = st
			rs, err := tx.ListRightsRequests(ctx, g)
			if err != nil {
				return err
			}
			for _, r := range rs {
				out = append(out, r.Request)
			}
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *custos.RightsRequest) int { return b.FiledAt.Compare(a.FiledAt) })
	return out, err
}

// CheckRightsDeadlines lists open requests within WarnWithin working days
// of their deadline or past it, and audits an alert for each (names and
// ids only). The leader runs it periodically.
func (s *Service) CheckRightsDeadlines(ctx context.Context) (near, overdue []*custos.RightsRequest, err error) {
	warn := s.Rights.WarnWithin
	if warn <= 0 {
		warn = 3
	}
	now := time.Now()
	horizon := s.calendar().Deadline(now, warn)
	err = s.store.Update(ctx, func(tx custos.Tx) error {
		near, overdue = nil, nil // fn may run again (custos.Store)
		rs, err := tx.ListRightsRequests(ctx, custos.RightsFilter{DueBefore: horizon})
		if err != nil {
			return err
		}
		for _, r := range rs {
			q := r.Request
			kind := "near"
			if q.Deadline.Before(now) {
				overdue = append(overdue, q)
				kind = "overdue"
			} else {
				near = append(near, q)
			}
			if slices.Contains(q.Alerted, kind) {
				continue // raised before: once per request and kind
			}
			q.Alerted = append(q.Alerted, kind)
			e := &custos.AuditEvent{Action: AuditRightsDeadline, SubjectID: q.SubjectID, ActorID: "system", Decision: custos.DecisionAllow,
				Reason: "deadline " + kind + " " + q.ID}
			if err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
			if err := step(ctx, tx, r, "system", "deadline "+kind, "alert raised"); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, q := range overdue {
		s.logger.Warn("rights request overdue", "request", q.ID, "type", q.Type, "deadline", q.Deadline)
	}
	for _, q := range near {
		s.logger.Info("rights request deadline near", "request", q.ID, "type", q.Type, "deadline", q.Deadline)
	}
	return near, overdue, nil
}
