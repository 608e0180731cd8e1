package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"custos"
	"custos/keys"
	"custos/policy"
	"custos/validate"
)

// DefaultReaskAfter is how long after a refusal or withdrawal the company
// may not ask the customer again for the same purpose (RULES.md "No
// repeated asking after a refusal"; 48 hours follows the MIIT app rules,
// unverified — configurable through Service.ReaskAfter).
const DefaultReaskAfter = 48 * time.Hour

// MinorAge is the age below which a guardian consents (PIPL Art. 31).
const MinorAge = 14

// noticeCache holds published notices by version; they are immutable, so
// an entry never goes stale.
type noticeCache struct{ m sync.Map }

func (c *noticeCache) get(ctx context.Context, tx custos.Tx, version int) (*custos.Notice, error) {
	if n, ok := c.m.Load(version); ok {
		return n.(*custos.Notice), nil
	}
	n, err := tx.GetNotice(ctx, version)
	if err != nil {
		return nil, err
	}
	c.m.Store(version, n)
	return n, nil
}

// NoticeHash is the content hash of a notice: hex SHA-256 of the JSON of
// its content (encoding/json writes struct fields in order and map keys
// sorted, so the encoding is canonical).
func NoticeHash(c custos.NoticeContent) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// PublishNotice validates and publishes the next notice version (C3).
func (s *Service) PublishNotice(ctx context.Context, content custos.NoticeContent) (*custos.Notice, error) {
	ev := event(ctx, custos.AuditNoticePublish, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActNoticePublish); err != nil {
		return nil, err
	}
	if vs := s.checkNotice(&content); len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The notice was not published.", Violations: vs})
	}
	hash, err := NoticeHash(content)
	if err != nil {
		return nil, err
	}
	n := &custos.Notice{Hash: hash, Content: content, PublishedBy: ev.ActorID}
	err = s.run(ctx, ev, func(tx custos.Tx) error {
		all, err := tx.ListNotices(ctx)
		if err != nil {
			return err
		}
		n.Version = len(all) + 1
		if len(all) > 0 {
			n.Version = all[len(all)-1].Version + 1
		}
		n.PublishedAt = tx.Now()
		ev.Reason = fmt.Sprintf("version %d sha256 %s", n.Version, hash)
		return tx.InsertNotice(ctx, n)
	})
	if err != nil {
		return nil, err
	}
	s.notices.m.Store(n.Version, n)
	return n, nil
}

// checkNotice fills each purpose's legal basis from the catalog and lists
// what is wrong with the content, by JSON path.
func (s *Service) checkNotice(c *custos.NoticeContent) []custos.Violation {
	var vs []custos.Violation
	bad := func(field, rule, detail string) {
		vs = append(vs, custos.Violation{Field: field, Rule: rule, Detail: detail})
	}
	text := func(field, v string, max int) {
		if n := utf8.RuneCountInString(strings.TrimSpace(v)); n == 0 {
			bad(field, "required", "")
		} else if n > max {
			bad(field, "max_length", fmt.Sprintf("at most %d characters", max))
		}
	}
	text("controller", c.Controller, 200)
	text("contact", c.Contact, 200)
	for _, lang := range custos.NoticeLanguages {
		t := c.Text[lang]
		text("text."+lang+".title", t.Title, 200)
		text("text."+lang+".body", t.Body, 20000)
		text("text."+lang+".rights", t.Rights, 5000)
	}
	for lang := range c.Text {
		if !slices.Contains(custos.NoticeLanguages, lang) {
			bad("text."+lang, "language_unknown", "languages: "+strings.Join(custos.NoticeLanguages, ", "))
		}
	}
	if len(c.Purposes) == 0 {
		bad("purposes", "required", "at least one purpose")
	}
	seen := map[string]bool{}
	for i := range c.Purposes {
		np := &c.Purposes[i]
		at := fmt.Sprintf("purposes[%d]", i)
		pu := s.catalog.Purpose(np.Name)
		if pu == nil {
			bad(at+".name", "purpose_unknown", "purposes are defined in the catalog")
			continue
		}
		if seen[np.Name] {
			bad(at+".name", "duplicate", np.Name)
		}
		seen[np.Name] = true
		if np.LegalBasis != "" && np.LegalBasis != pu.LegalBasis {
			bad(at+".legal_basis", "legal_basis_mismatch", "the catalog says "+pu.LegalBasis)
		}
		np.LegalBasis = pu.LegalBasis
		if len(np.Fields) == 0 && len(np.Records) == 0 {
			bad(at+".fields", "required", "the fields the purpose uses")
		}
		sensitive := false
		for _, f := range np.Fields {
			if !slices.Contains(pu.Fields, f) {
				bad(at+".fields", policy.ReasonFieldNotInPurpose, f)
			} else if def := s.catalog.Field(f); def != nil && def.Sensitive {
				sensitive = true
			}
		}
		for _, r := range np.Records {
			if !slices.Contains(pu.Records, r) {
				bad(at+".records", policy.ReasonFieldNotInPurpose, r)
			}
		}
		text(at+".retention", np.Retention, 500)
		if sensitive {
			// PIPL Art. 30: tell the necessity and the impact.
			text(at+".necessity", np.Necessity, 2000)
			text(at+".impact", np.Impact, 2000)
		}
	}
	tps := map[string]bool{}
	for i, tp := range c.ThirdParties {
		at := fmt.Sprintf("third_parties[%d]", i)
		text(at+".name", tp.Name, 200)
		if tps[tp.Name] {
			bad(at+".name", "duplicate", "")
		}
		tps[tp.Name] = true
		if s.catalog.Purpose(tp.Purpose) == nil {
			bad(at+".purpose", "purpose_unknown", "")
		}
		for _, f := range tp.Fields {
			if s.catalog.Field(f) == nil {
				bad(at+".fields", policy.ReasonFieldUnknown, f)
			}
		}
	}
	return vs
}

// Notice returns a published notice; version 0 means the current one.
// Notices are public documents: no principal is needed.
func (s *Service) Notice(ctx context.Context, version int) (*custos.Notice, error) {
	var n *custos.Notice
	err := s.store.View(ctx, func(tx custos.Tx) error {
		if version > 0 {
			var err error
			n, err = s.notices.get(ctx, tx, version)
			return err
		}
		all, err := tx.ListNotices(ctx)
		if err != nil {
			return err
		}
		if len(all) == 0 {
			return custos.Errorf(custos.ENOTFOUND, "No notice has been published yet.")
		}
		n = all[len(all)-1]
		return nil
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND && version > 0 {
		return nil, custos.Errorf(custos.ENOTFOUND, "No notice has version %d.", version)
	}
	return n, err
}

// Notices lists every published notice, oldest first.
func (s *Service) Notices(ctx context.Context) ([]*custos.Notice, error) {
	var all []*custos.Notice
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		all, err = tx.ListNotices(ctx)
		return err
	})
	return all, err
}

// consentKey is what a decision is about: a purpose and a scope.
type consentKey struct{ purpose, scope string }

// consentView is a subject's consents in force, with the notices they
// point at: the input the decision's step 4 needs.
type consentView struct {
	cat     *custos.Catalog
	latest  map[consentKey]*custos.StoredConsent
	notices map[int]*custos.Notice
}

// newConsentView loads the notices the consents point at.
func (s *Service) newConsentView(ctx context.Context, tx custos.Tx, cs []*custos.StoredConsent) (*consentView, error) {
	v := &consentView{cat: s.catalog, latest: map[consentKey]*custos.StoredConsent{}, notices: map[int]*custos.Notice{}}
	for _, c := range cs {
		v.latest[consentKey{c.Purpose, c.Scope}] = c
		if _, ok := v.notices[c.NoticeVersion]; !ok {
			n, err := s.notices.get(ctx, tx, c.NoticeVersion)
			if err != nil {
				return nil, err
			}
			v.notices[c.NoticeVersion] = n
		}
	}
	return v, nil
}

// basis is step 4 of the access decision for this subject (policy.Request.Basis).
func (v *consentView) basis(purpose, item string) string {
	pu := v.cat.Purpose(purpose)
	if pu == nil || pu.LegalBasis != "consent" {
		return "" // another legal basis: contract, legal obligation …
	}
	c := v.latest[consentKey{purpose, custos.ScopePurpose}]
	switch {
	case c == nil || c.Action == custos.ConsentRefused:
		return policy.ReasonNoConsent
	case c.Action == custos.ConsentWithdrawn:
		return policy.ReasonConsentWithdrawn
	}
	np := noticePurpose(v.notices[c.NoticeVersion], purpose)
	if np == nil {
		return policy.ReasonNoticeOutdated
	}
	if rec, ok := strings.CutPrefix(item, "record:"); ok {
		if !slices.Contains(np.Records, rec) {
			return policy.ReasonNoticeOutdated
		}
		return ""
	}
	if !slices.Contains(np.Fields, item) {
		return policy.ReasonNoticeOutdated
	}
	if f := v.cat.Field(item); f != nil && f.Sensitive {
		sc := v.latest[consentKey{purpose, custos.ScopeSensitive + f.Category}]
		if sc == nil || !sc.Granted() {
			return policy.ReasonSensitiveConsent
		}
	}
	return ""
}

func noticePurpose(n *custos.Notice, purpose string) *custos.NoticePurpose {
	if n == nil {
		return nil
	}
	for i := range n.Content.Purposes {
		if n.Content.Purposes[i].Name == purpose {
			return &n.Content.Purposes[i]
		}
	}
	return nil
}

// sensitiveCategories returns the sensitive categories a notice purpose's
// fields fall in, sorted.
func (s *Service) sensitiveCategories(np *custos.NoticePurpose) []string {
	var out []string
	for _, f := range np.Fields {
		if def := s.catalog.Field(f); def != nil && def.Sensitive && !slices.Contains(out, def.Category) {
			out = append(out, def.Category)
		}
	}
	slices.Sort(out)
	return out
}

// needsConsent reports whether any declared purpose rests on consent, so
// that a decision must look at the subject's consents.
func (s *Service) needsConsent(purposes []string) bool {
	for _, p := range purposes {
		if pu := s.catalog.Purpose(p); pu != nil && pu.LegalBasis == "consent" {
			return true
		}
	}
	return false
}

// subjectBasis returns the step-4 hook for subject id, or nil when no
// declared purpose rests on consent (then nothing is read).
func (s *Service) subjectBasis(ctx context.Context, tx custos.Tx, id custos.SubjectID, purposes []string) (func(string, string) string, error) {
	if !s.needsConsent(purposes) {
		return nil, nil
	}
	// basis looks only at the request's purposes.
	cs, err := tx.ListConsentsFor(ctx, id, purposes)
	if err != nil {
		return nil, err
	}
	v, err := s.newConsentView(ctx, tx, cs)
	if err != nil {
		return nil, err
	}
	return v.basis, nil
}

// consentSealed is what a consent keeps sealed: personal data.
type consentSealed struct {
	Evidence string           `json:"evidence,omitempty"`
	Guardian *custos.Guardian `json:"guardian,omitempty"`
}

// ageAt returns the subject's age in whole years at now from a birth date
// (YYYY-MM-DD) or an 18-digit resident ID, and whether either was known.
func ageAt(fields map[string]string, now time.Time) (int, bool) {
	var born time.Time
	if d, err := time.Parse(time.DateOnly, fields["birth_date"]); err == nil {
		born = d
	} else if d, ok := validate.ResidentIDBirthDate(fields["id_number"]); ok {
		born = d
	} else {
		return 0, false
	}
	age := now.Year() - born.Year()
	if now.YearDay() < born.YearDay() {
		age--
	}
	return age, true
}

// capturePlan is a validated consent capture, ready to store.
type capturePlan struct {
	notice  *custos.Notice
	minor   bool
	entries []*custos.StoredConsent
	sealed  []byte // JSON of consentSealed, sealed per entry when stored
	receipt *custos.ConsentReceipt
}

// checkCapture validates a capture against the current notice, the
// customer's consents in force and their age. cur may be nil (a new
// subject); fields holds the plaintext birth_date / id_number when known.
func (s *Service) checkCapture(c *custos.ConsentCapture, notice *custos.Notice, cur *consentView, fields map[string]string, now time.Time) (*capturePlan, []custos.Violation) {
	var vs []custos.Violation
	bad := func(field, rule, detail string) {
		vs = append(vs, custos.Violation{Field: field, Rule: rule, Detail: detail})
	}
	if c.All {
		bad("all", "bundled_consent", "consent is given purpose by purpose, never in bulk (C4)")
	}
	if notice == nil {
		bad("notice_version", "no_notice", "publish a privacy notice first")
		return nil, vs
	}
	if c.NoticeVersion != notice.Version {
		bad("notice_version", "not_current_notice", fmt.Sprintf("the current notice is version %d", notice.Version))
	}
	if c.Kind == "" {
		c.Kind = custos.CaptureForm
	}
	if c.Kind != custos.CaptureForm && c.Kind != custos.CaptureChange {
		bad("kind", "enum", "form or change")
	}
	if c.InitiatedBy == "" {
		c.InitiatedBy = "customer"
	}
	if c.InitiatedBy != "customer" && c.InitiatedBy != "company" {
		bad("initiated_by", "enum", "customer or company")
	}
	if !slices.Contains(custos.ConsentChannels, c.Channel) {
		bad("channel", "enum", strings.Join(custos.ConsentChannels, ", "))
	}
	if utf8.RuneCountInString(c.Evidence) > 2000 {
		bad("evidence", "max_length", "at most 2000 characters")
	}
	if len(c.Decisions) == 0 {
		bad("decisions", "required", "one explicit decision per purpose asked")
	}
	p := &capturePlan{notice: notice}
	if age, ok := ageAt(fields, now); ok && age < MinorAge {
		p.minor = true
		g := c.Guardian
		if g == nil || strings.TrimSpace(g.Name) == "" || strings.TrimSpace(g.Relation) == "" || strings.TrimSpace(g.Evidence) == "" {
			bad("guardian", "guardian_required", fmt.Sprintf("the customer is under %d: a guardian consents, with name, relation and evidence (PIPL Art. 31)", MinorAge))
		}
	}
	decided := map[consentKey]bool{}
	granted := map[string]bool{}
	for i, d := range c.Decisions {
		at := fmt.Sprintf("decisions[%d]", i)
		if d.Purpose == "*" || strings.EqualFold(d.Purpose, "all") {
			bad(at+".purpose", "bundled_consent", "name one purpose per decision")
			continue
		}
		np := noticePurpose(notice, d.Purpose)
		if np == nil {
			bad(at+".purpose", "purpose_not_in_notice", "the notice does not present this purpose")
			continue
		}
		if np.LegalBasis != "consent" {
			bad(at+".purpose", "not_consent_based", "this purpose rests on "+np.LegalBasis+", not on consent; it is never asked for")
			continue
		}
		if d.Granted == nil {
			bad(at+".granted", "explicit_decision_required", "true or false; consent is never assumed")
			continue
		}
		key := consentKey{d.Purpose, custos.ScopePurpose}
		switch {
		case d.Category != "" && d.ThirdParty != "":
			bad(at, "one_scope", "a decision is about a category or a third party, not both")
			continue
		case d.Category != "":
			if !slices.Contains(s.sensitiveCategories(np), d.Category) {
				bad(at+".category", "category_not_used", "the purpose uses no sensitive field of this category")
				continue
			}
			key.scope = custos.ScopeSensitive + d.Category
		case d.ThirdParty != "":
			if !slices.ContainsFunc(notice.Content.ThirdParties, func(tp custos.NoticeThirdParty) bool {
				return tp.Name == d.ThirdParty && tp.Purpose == d.Purpose
			}) {
				bad(at+".third_party", "third_party_not_in_notice", "")
				continue
			}
			key.scope = custos.ScopeThirdParty + d.ThirdParty
		}
		if decided[key] {
			bad(at, "duplicate_decision", "")
			continue
		}
		decided[key] = true
		if key.scope == "" && *d.Granted {
			granted[d.Purpose] = true
		}
		// No repeated asking after a refusal: the company may not ask
		// again within the re-ask period; the customer may always change
		// their mind.
		if c.InitiatedBy == "company" && cur != nil {
			if prev := cur.latest[key]; prev != nil && !prev.Granted() && now.Sub(prev.At) < s.reaskAfter() {
				bad(at, "asked_again_too_soon", fmt.Sprintf("refused %s ago; ask again after %s", now.Sub(prev.At).Round(time.Minute), s.reaskAfter()))
			}
		}
		action := custos.ConsentRefused
		if *d.Granted {
			action = custos.ConsentGranted
		}
		p.entries = append(p.entries, &custos.StoredConsent{Purpose: d.Purpose, Scope: key.scope, Action: action,
			NoticeVersion: notice.Version, Channel: c.Channel, InitiatedBy: c.InitiatedBy, ByGuardian: c.Guardian != nil})
	}
	// Separate consent for each sensitive category a granted purpose uses
	// (PIPL Art. 29): granting the purpose is not granting them.
	for _, np := range notice.Content.Purposes {
		if !granted[np.Name] {
			continue
		}
		for _, cat := range s.sensitiveCategories(&np) {
			k := consentKey{np.Name, custos.ScopeSensitive + cat}
			if !decided[k] && (cur == nil || cur.latest[k] == nil || cur.latest[k].NoticeVersion != notice.Version) {
				bad("decisions", "sensitive_consent_missing", np.Name+" uses "+cat+" data: it needs its own decision")
			}
		}
	}
	// A form answers every optional purpose, and every third party, the
	// notice presents: nothing is left to a default.
	if c.Kind == custos.CaptureForm {
		for _, np := range notice.Content.Purposes {
			if np.LegalBasis == "consent" && !decided[consentKey{np.Name, ""}] {
				bad("decisions", "decision_missing", np.Name)
			}
		}
		for _, tp := range notice.Content.ThirdParties {
			if !decided[consentKey{tp.Purpose, custos.ScopeThirdParty + tp.Name}] {
				bad("decisions", "decision_missing", "third party "+tp.Name)
			}
		}
	}
	if len(vs) > 0 {
		return nil, vs
	}
	if c.Evidence != "" || c.Guardian != nil {
		b, err := json.Marshal(consentSealed{Evidence: c.Evidence, Guardian: c.Guardian})
		if err != nil {
			bad("evidence", "json", "")
			return nil, vs
		}
		p.sealed = b
	}
	return p, nil
}

func (s *Service) reaskAfter() time.Duration {
	if s.ReaskAfter > 0 {
		return s.ReaskAfter
	}
	return DefaultReaskAfter
}

// storeCapture writes a checked capture for subject id inside tx, seals
// its evidence and signs the receipt.
func (s *Service) storeCapture(ctx context.Context, tx custos.Tx, id custos.SubjectID, p *capturePlan, aead *keys.AEAD, actor custos.PrincipalID) (*custos.ConsentReceipt, error) {
	rc, err := s.stampCapture(id, p, aead, actor, tx.Now())
	if err != nil {
		return nil, err
	}
	for _, e := range p.entries {
		if err := tx.InsertConsent(ctx, e); err != nil {
			return nil, err
		}
	}
	if err := s.signReceipt(rc); err != nil {
		return nil, err
	}
	return rc, nil
}

// stampCapture makes a checked capture's entries the consents of subject
// id at now (ids, time, actor), seals their evidence, and returns the
// receipt, not yet signed. The caller inserts p.entries and signs it.
func (s *Service) stampCapture(id custos.SubjectID, p *capturePlan, aead *keys.AEAD, actor custos.PrincipalID, now time.Time) (*custos.ConsentReceipt, error) {
	rc := &custos.ConsentReceipt{ReceiptID: custos.NewID("rcp"), SubjectID: id, NoticeVersion: p.notice.Version,
		NoticeHash: p.notice.Hash, At: now}
	for _, e := range p.entries {
		e.ID, e.SubjectID, e.At, e.ActorID = custos.NewID("con"), id, now, actor
		if p.sealed != nil {
			ct, err := aead.Seal(p.sealed, dekAAD("consents", "evidence", id, custos.RecordID(e.ID), 1), s.rand)
			if err != nil {
				return nil, err
			}
			e.Sealed = ct
		}
		rc.Channel, rc.ByGuardian = e.Channel, e.ByGuardian
		rc.Decisions = append(rc.Decisions, custos.ReceiptEntry{Purpose: e.Purpose, Scope: e.Scope, Action: e.Action})
	}
	return rc, nil
}

// captureView is the consents in force of a new subject whose only
// consents are those of capture p (nil: none), as newConsentView would
// read them back once stored.
func (s *Service) captureView(p *capturePlan) *consentView {
	v := &consentView{cat: s.catalog, latest: map[consentKey]*custos.StoredConsent{}, notices: map[int]*custos.Notice{}}
	if p != nil {
		v.notices[p.notice.Version] = p.notice
		for _, e := range p.entries {
			v.latest[consentKey{e.Purpose, e.Scope}] = e
		}
	}
	return v
}

// receiptMessage is what a receipt's signature covers: the receipt as JSON
// without its key id and signature, under a domain prefix.
func receiptMessage(rc custos.ConsentReceipt) ([]byte, error) {
	rc.KeyID, rc.Signature = "", nil
	b, err := json.Marshal(rc)
	if err != nil {
		return nil, err
	}
	return append([]byte("custos consent receipt v1\n"), b...), nil
}

func (s *Service) signReceipt(rc *custos.ConsentReceipt) error {
	if s.signer == nil {
		return nil
	}
	msg, err := receiptMessage(*rc)
	if err != nil {
		return err
	}
	rc.KeyID, rc.Signature = s.signer.KeyID(), s.signer.Sign(msg)
	return nil
}

// VerifyReceipt reports whether rc carries a valid signature by this
// custos's audit signing key. It needs no principal: the customer keeps the
// receipt and anyone may check it.
func (s *Service) VerifyReceipt(rc *custos.ConsentReceipt) bool {
	if s.signer == nil || rc == nil || rc.KeyID != s.signer.KeyID() {
		return false
	}
	msg, err := receiptMessage(*rc)
	if err != nil {
		return false
	}
	return keys.Verify(s.signer.Public(), msg, rc.Signature)
}

// currentNotice returns the latest notice inside tx, or nil when none.
func currentNotice(ctx context.Context, tx custos.Tx) (*custos.Notice, error) {
	all, err := tx.ListNotices(ctx)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return all[len(all)-1], nil
}

// ageFields loads subject id in tx and returns its AEAD and the
// decrypted fields that tell its age (minorFields).
func (s *Service) ageFields(ctx context.Context, tx custos.Tx, id custos.SubjectID) (*keys.AEAD, map[string]string, error) {
	st, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	dk, err := tx.GetDataKey(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, nil, err
	}
	fields, err := s.minorFields(st, aead, dk.Version)
	return aead, fields, err
}

// minorFields decrypts the fields that tell a subject's age.
func (s *Service) minorFields(st *custos.StoredSubject, aead *keys.AEAD, version int) (map[string]string, error) {
	out := map[string]string{}
	for _, name := range []string{"birth_date", "id_number"} {
		ct, ok := st.Sealed[name]
		if !ok {
			continue
		}
		pt, err := aead.Open(ct, dekAAD("subjects", name, st.ID, "", version))
		if err != nil {
			return nil, err
		}
		out[name] = string(pt)
	}
	return out, nil
}

// CaptureConsent records a customer's consent decisions for subject id
// under the current notice and returns a signed receipt (C4).
func (s *Service) CaptureConsent(ctx context.Context, id custos.SubjectID, c custos.ConsentCapture) (*custos.ConsentReceipt, error) {
	ev := event(ctx, custos.AuditConsentCapture, id, nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActConsentWrite); err != nil {
		return nil, err
	}
	var rc *custos.ConsentReceipt
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		aead, fields, err := s.ageFields(ctx, tx, id)
		if err != nil {
			return err
		}
		notice, err := currentNotice(ctx, tx)
		if err != nil {
			return err
		}
		cs, err := tx.ListConsents(ctx, id)
		if err != nil {
			return err
		}
		cur, err := s.newConsentView(ctx, tx, cs)
		if err != nil {
			return err
		}
		p, vs := s.checkCapture(&c, notice, cur, fields, tx.Now())
		if len(vs) > 0 {
			return &custos.Error{Code: custos.EINVALID, Message: "No consent was recorded.", Violations: vs}
		}
		auditDecisions(ev, p.entries)
		rc, err = s.storeCapture(ctx, tx, id, p, aead, ev.ActorID)
		return err
	})
	return rc, err
}

// auditDecisions names the purposes and decisions in the audit event (no
// evidence, no guardian details).
func auditDecisions(ev *custos.AuditEvent, entries []*custos.StoredConsent) {
	ev.Purposes, ev.Fields = nil, nil
	for _, e := range entries {
		if !slices.Contains(ev.Purposes, e.Purpose) {
			ev.Purposes = append(ev.Purposes, e.Purpose)
		}
		item := "consent:" + e.Purpose
		if e.Scope != "" {
			item += "/" + e.Scope
		}
		ev.Fields = append(ev.Fields, item+"="+e.Action)
	}
}

// WithdrawConsent withdraws a purpose (or one of its sensitive categories
// or third parties: scope) in one call; it takes effect on the next read
// (R5). It needs no notice version and no evidence: withdrawing is as
// easy as giving, and easier.
func (s *Service) WithdrawConsent(ctx context.Context, id custos.SubjectID, purpose, scope, channel string) (*custos.ConsentReceipt, error) {
	ev := event(ctx, custos.AuditConsentWithdraw, id, []string{purpose}, nil)
	if err := s.requireAction(ctx, ev, custos.ActConsentWrite); err != nil {
		return nil, err
	}
	var vs []custos.Violation
	if pu := s.catalog.Purpose(purpose); pu == nil {
		vs = append(vs, custos.Violation{Field: "purpose", Rule: policy.ReasonPurposeUnknown})
	} else if pu.LegalBasis != "consent" {
		vs = append(vs, custos.Violation{Field: "purpose", Rule: "not_consent_based", Detail: "this purpose rests on " + pu.LegalBasis})
	}
	if scope != "" && !strings.HasPrefix(scope, custos.ScopeSensitive) && !strings.HasPrefix(scope, custos.ScopeThirdParty) {
		vs = append(vs, custos.Violation{Field: "scope", Rule: "enum", Detail: "sensitive:<category> or third_party:<name>"})
	}
	if channel == "" {
		channel = "portal"
	}
	if !slices.Contains(custos.ConsentChannels, channel) {
		vs = append(vs, custos.Violation{Field: "channel", Rule: "enum", Detail: strings.Join(custos.ConsentChannels, ", ")})
	}
	if len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "Nothing was withdrawn.", Violations: vs})
	}
	var rc *custos.ConsentReceipt
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		if _, err := tx.GetSubject(ctx, id); err != nil {
			return err
		}
		cs, err := tx.ListConsents(ctx, id)
		if err != nil {
			return err
		}
		version := 0
		for _, c := range cs {
			if c.Purpose == purpose && c.Scope == scope {
				version = c.NoticeVersion
			}
		}
		if version == 0 {
			n, err := currentNotice(ctx, tx)
			if err != nil {
				return err
			}
			if n == nil {
				return custos.Invalid("Nothing to withdraw.", custos.Violation{Field: "purpose", Rule: "no_consent", Detail: "no notice has been published"})
			}
			version = n.Version
		}
		notice, err := s.notices.get(ctx, tx, version)
		if err != nil {
			return err
		}
		e := &custos.StoredConsent{Purpose: purpose, Scope: scope, Action: custos.ConsentWithdrawn, NoticeVersion: version,
			Channel: channel, InitiatedBy: "customer"}
		// Retention rules may count from the withdrawal (L1).
		if err := tx.SetLifecycle(ctx, id, custos.TriggerConsentWithdrawal, tx.Now()); err != nil {
			return err
		}
		auditDecisions(ev, []*custos.StoredConsent{e})
		rc, err = s.storeCapture(ctx, tx, id, &capturePlan{notice: notice, entries: []*custos.StoredConsent{e}}, nil, ev.ActorID)
		return err
	})
	return rc, err
}

// ConsentState returns a subject's consents in force and their history,
// with evidence, and what the company may ask now.
func (s *Service) ConsentState(ctx context.Context, id custos.SubjectID) (*custos.ConsentState, error) {
	ev := event(ctx, custos.AuditConsentRead, id, nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActConsentRead); err != nil {
		return nil, err
	}
	st := &custos.ConsentState{}
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		// fn may run again (custos.Store): start from nothing.
		*st = custos.ConsentState{SubjectID: id, Current: []*custos.Consent{}, History: []*custos.Consent{}, Ask: []string{}}
		aead, fields, err := s.ageFields(ctx, tx, id)
		if err != nil {
			return err
		}
		if age, ok := ageAt(fields, tx.Now()); ok && age < MinorAge {
			st.Minor = true
		}
		cs, err := tx.ListConsents(ctx, id)
		if err != nil {
			return err
		}
		view, err := s.newConsentView(ctx, tx, cs)
		if err != nil {
			return err
		}
		for _, c := range cs {
			out := &custos.Consent{ID: c.ID, SubjectID: id, Purpose: c.Purpose, Scope: c.Scope, Action: c.Action,
				NoticeVersion: c.NoticeVersion, At: c.At, Channel: c.Channel, InitiatedBy: c.InitiatedBy,
				ByGuardian: c.ByGuardian, ActorID: c.ActorID}
			if c.Sealed != nil {
				pt, err := aead.Open(c.Sealed, dekAAD("consents", "evidence", id, custos.RecordID(c.ID), 1))
				if err != nil {
					return err
				}
				var sealed consentSealed
				if err := json.Unmarshal(pt, &sealed); err != nil {
					return err
				}
				out.Evidence, out.Guardian = sealed.Evidence, sealed.Guardian
			}
			st.History = append(st.History, out)
			if view.latest[consentKey{c.Purpose, c.Scope}] == c {
				st.Current = append(st.Current, out)
			}
		}
		notice, err := currentNotice(ctx, tx)
		if err != nil || notice == nil {
			return err
		}
		st.CurrentNotice = notice.Version
		for _, np := range notice.Content.Purposes {
			if np.LegalBasis != "consent" {
				continue
			}
			if s.mayAsk(view, &np, tx.Now()) {
				st.Ask = append(st.Ask, np.Name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// mayAsk reports whether the company may ask for np now: never decided, a
// grant under a notice that lacked something np now uses, or a refusal
// older than the re-ask period.
func (s *Service) mayAsk(v *consentView, np *custos.NoticePurpose, now time.Time) bool {
	c := v.latest[consentKey{np.Name, ""}]
	if c == nil {
		return true
	}
	if !c.Granted() {
		return now.Sub(c.At) >= s.reaskAfter()
	}
	old := noticePurpose(v.notices[c.NoticeVersion], np.Name)
	if old == nil {
		return true
	}
	for _, f := range np.Fields {
		if !slices.Contains(old.Fields, f) {
			return true
		}
	}
	for _, r := range np.Records {
		if !slices.Contains(old.Records, r) {
			return true
		}
	}
	return false
}

// checkBasis re-runs the decision for a write to an existing subject with
// its consents (step 4), when a declared purpose rests on consent, and
// refuses the write naming each field or record type it may not touch.
func (s *Service) checkBasis(ctx context.Context, tx custos.Tx, id custos.SubjectID, action string, purposes, fields, records []string) error {
	basis, err := s.subjectBasis(ctx, tx, id, purposes)
	if err != nil || basis == nil {
		return err
	}
	return basisError(s.decideBasis(ctx, action, purposes, fields, records, basis), fields, records)
}

// basisError refuses, naming each, the fields and record types that the
// decision d (taken with the subject's consents) denies; nil when none.
func basisError(d policy.Decision, fields, records []string) error {
	var vs []custos.Violation
	for _, f := range fields {
		if fd := d.Fields[f]; fd.Outcome == custos.Denied {
			vs = append(vs, custos.Violation{Field: f, Rule: fd.Reason, Detail: deniedDetail(fd.Reason)})
		}
	}
	for _, r := range records {
		if fd := d.Records[r]; fd.Outcome == custos.Denied {
			vs = append(vs, custos.Violation{Field: "type", Rule: fd.Reason, Detail: deniedDetail(fd.Reason)})
		}
	}
	if len(vs) > 0 {
		return &custos.Error{Code: custos.EINVALID, Message: "Nothing was changed: no legal basis for some fields.", Violations: vs}
	}
	return nil
}
