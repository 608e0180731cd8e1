package core

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"custos"
	"custos/keys"
)

// DefaultRetentionBatch is how many items one sweeper transaction handles.
const DefaultRetentionBatch = 500

// MetaRetentionCursor is the meta key holding an unfinished run's cursor.
const MetaRetentionCursor = "retention_cursor"

// certificateFormat is signed into every certificate body.
const certificateFormat = "custos-retention-certificate-v1"

// SetRetention puts rules in force; they must have passed ParseRetention
// (or Check) against this service's catalog.
func (s *Service) SetRetention(p *custos.RetentionPolicy) { s.retention.Store(p) }

// Retention returns the rules in force: those set, or the embedded
// defaults. Returns EINVALID when the defaults do not fit the catalog.
func (s *Service) Retention() (*custos.RetentionPolicy, error) {
	if p := s.retention.Load(); p != nil {
		return p, nil
	}
	p, err := custos.ParseRetention(strings.NewReader(string(custos.DefaultRetentionJSON())), s.catalog)
	if err != nil {
		return nil, err
	}
	s.retention.CompareAndSwap(nil, p)
	return s.retention.Load(), nil
}

// restricted reports whether a restriction is in force at now.
func restricted(until, now time.Time) bool { return !until.IsZero() && until.After(now) }

// errRestricted refuses any use of restricted data.
func errRestricted() error {
	return &custos.Error{Code: custos.EFORBIDDEN,
		Message:    "The customer's data is restricted: it is kept only for a legal retention period and excluded from every use (PIPL Art. 47).",
		Violations: []custos.Violation{{Field: "subject", Rule: "restricted"}}}
}

// checkRestricted returns errRestricted when the subject is locked.
func checkRestricted(tx custos.Tx, st *custos.StoredSubject) error {
	if restricted(st.RestrictedUntil, tx.Now()) {
		return errRestricted()
	}
	return nil
}

// MarkLifecycle records that a lifecycle event (account_closure,
// consent_withdrawal, last_activity) happened to a subject at at (zero:
// now), so retention rules counting from it can expire the subject's data.
// The features that close accounts and withdraw consent call it after their
// own authorisation; it writes one audit event. Returns EINVALID for an
// unknown event, ENOTFOUND for an unknown subject.
func (s *Service) MarkLifecycle(ctx context.Context, id custos.SubjectID, event string, at time.Time) error {
	ev := event_(ctx, custos.AuditRetentionLifecycle, id)
	ev.Reason = event
	if !slices.Contains(custos.LifecycleEvents, event) {
		return s.auditRefusal(ctx, ev, custos.Invalid("Unknown lifecycle event.",
			custos.Violation{Field: "event", Rule: "enum", Detail: strings.Join(custos.LifecycleEvents, ", ")}))
	}
	return s.run(ctx, ev, func(tx custos.Tx) error {
		if _, err := tx.GetSubject(ctx, id); err != nil {
			return notFoundSubject(err)
		}
		t := at
		if t.IsZero() {
			t = tx.Now()
		}
		return tx.SetLifecycle(ctx, id, event, t.UTC().Truncate(time.Microsecond))
	})
}

// event_ starts an audit event with no purposes or fields.
func event_(ctx context.Context, action string, sub custos.SubjectID) *custos.AuditEvent {
	e := event(ctx, action, sub, nil, nil)
	if e.ActorID == "" {
		e.ActorID = "system"
	}
	return e
}

// RetentionRules returns the rules in force and the legal floors.
// Requires retention.manage.
func (s *Service) RetentionRules(ctx context.Context) (*custos.RetentionPolicy, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditRetentionRules, ""), custos.ActRetentionManage); err != nil {
		return nil, err
	}
	return s.Retention()
}

// PlaceHold places a legal hold (L3). Requires retention.manage. Returns
// EINVALID naming each bad member.
func (s *Service) PlaceHold(ctx context.Context, in custos.LegalHold) (*custos.LegalHold, error) {
	ev := event_(ctx, custos.AuditHoldPlace, in.SubjectID)
	if err := s.requireAction(ctx, ev, custos.ActRetentionManage); err != nil {
		return nil, err
	}
	var vs []custos.Violation
	switch in.Scope {
	case custos.HoldCustomer:
		if !custos.ValidID("sub", string(in.SubjectID)) {
			vs = append(vs, custos.Violation{Field: "subject_id", Rule: "required", Detail: "a customer hold names a subject id"})
		}
		if in.Category != "" {
			vs = append(vs, custos.Violation{Field: "category", Rule: "not_allowed", Detail: "a customer hold covers all of the customer's data"})
		}
	case custos.HoldCategory:
		if !slices.Contains(custos.Categories, in.Category) {
			vs = append(vs, custos.Violation{Field: "category", Rule: "enum", Detail: strings.Join(custos.Categories, ", ")})
		}
		if in.SubjectID != "" {
			vs = append(vs, custos.Violation{Field: "subject_id", Rule: "not_allowed"})
		}
	case custos.HoldStore:
		if in.SubjectID != "" || in.Category != "" {
			vs = append(vs, custos.Violation{Field: "scope", Rule: "store_only", Detail: "a store hold names no subject or category"})
		}
	default:
		vs = append(vs, custos.Violation{Field: "scope", Rule: "enum", Detail: "customer, category or store"})
	}
	in.Reason, in.Owner = strings.TrimSpace(in.Reason), strings.TrimSpace(in.Owner)
	for _, f := range []struct{ name, v string }{{"reason", in.Reason}, {"owner", in.Owner}} {
		if n := utf8.RuneCountInString(f.v); n == 0 || n > 200 {
			vs = append(vs, custos.Violation{Field: f.name, Rule: "required", Detail: "1–200 characters, no customer data"})
		}
	}
	now := time.Now().UTC()
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(now) {
		vs = append(vs, custos.Violation{Field: "expires_at", Rule: "future", Detail: "an expiry must lie in the future"})
	}
	if len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The legal hold was not placed.", Violations: vs})
	}
	h := &custos.LegalHold{ID: custos.NewID("hold"), Scope: in.Scope, SubjectID: in.SubjectID, Category: in.Category,
		Reason: in.Reason, Owner: in.Owner, CreatedBy: ev.ActorID, ExpiresAt: in.ExpiresAt.UTC().Truncate(time.Microsecond)}
	ev.Reason = "hold " + h.ID + " scope " + h.Scope
	if h.Category != "" {
		ev.Fields = []string{"category:" + h.Category}
	}
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		h.CreatedAt = tx.Now()
		return tx.InsertHold(ctx, h)
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// FindHolds lists every legal hold, released ones included. Requires
// retention.manage.
func (s *Service) FindHolds(ctx context.Context) ([]*custos.LegalHold, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditHoldList, ""), custos.ActRetentionManage); err != nil {
		return nil, err
	}
	var out []*custos.LegalHold
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListHolds(ctx)
		return err
	})
	return out, err
}

// ReleaseHold releases a legal hold; destruction it held back proceeds at
// the next run. Requires retention.manage. Returns ENOTFOUND for an unknown
// or already released hold.
func (s *Service) ReleaseHold(ctx context.Context, id string) (*custos.LegalHold, error) {
	ev := event_(ctx, custos.AuditHoldRelease, "")
	ev.Reason = "hold " + id
	if err := s.requireAction(ctx, ev, custos.ActRetentionManage); err != nil {
		return nil, err
	}
	var h *custos.LegalHold
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		if err := tx.ReleaseHold(ctx, id, tx.Now(), ev.ActorID); err != nil {
			if custos.ErrorCode(err) == custos.ENOTFOUND {
				return custos.Errorf(custos.ENOTFOUND, "No unreleased legal hold has that id.")
			}
			return err
		}
		var err error
		h, err = tx.GetHold(ctx, id)
		if err == nil {
			ev.SubjectID = h.SubjectID
		}
		return err
	})
	return h, err
}

// RetentionProgress reports a run's position.
type RetentionProgress struct {
	Rule      string
	RuleIndex int     // 0-based
	Rules     int     // rules in the run
	Fraction  float64 // estimated share of the current rule's scan done
	Acted     int     // items deleted, anonymised or restricted so far
}

// RetentionOptions configure a run.
type RetentionOptions struct {
	DryRun    bool
	BatchSize int // 0: DefaultRetentionBatch
	Progress  func(RetentionProgress)
}

// RunRetention runs the retention sweeper on behalf of the caller.
// Requires retention.manage. See SweepRetention.
func (s *Service) RunRetention(ctx context.Context, opts RetentionOptions) (*custos.RetentionReport, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditRetentionRun, ""), custos.ActRetentionManage); err != nil {
		return nil, err
	}
	if s.RetentionLock != nil && !opts.DryRun {
		release, ok, err := s.RetentionLock(ctx)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errSweeping()
		}
		defer release()
	}
	return s.SweepRetention(ctx, opts)
}

func errSweeping() error {
	return custos.Errorf(custos.ECONFLICT, "A retention sweep is already running; try again when it has finished.")
}

// SweepRetention applies every retention rule (L2, L3): it streams the
// store in batches, one transaction per batch, and in each applies delete
// (row delete; crypto-shredding for a whole customer, through the erase
// path), anonymise or restrict, skipping what a legal hold covers and
// restricting instead of destroying what a legal minimum still protects.
// The cursor is saved with each batch, so a run cut short (ctx cancelled,
// crash) resumes where it stopped; the finished run writes a signed
// certificate. A dry run reads only and reports what would happen.
//
// It performs no authorisation: the scheduler and the CLI call it as the
// system; API callers go through RunRetention.
func (s *Service) SweepRetention(ctx context.Context, opts RetentionOptions) (*custos.RetentionReport, error) {
	pol, err := s.Retention()
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if !s.sweeping.CompareAndSwap(false, true) {
			return nil, errSweeping()
		}
		defer s.sweeping.Store(false)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultRetentionBatch
	}
	sw := &sweep{s: s, pol: pol, opts: opts}
	if err := sw.start(ctx); err != nil {
		return nil, err
	}
	for sw.cur.Rule < len(pol.Rules) {
		if err := ctx.Err(); err != nil {
			return nil, custos.Errorf(custos.EINTERNAL, "The retention run was interrupted; it resumes at the next run.")
		}
		if err := sw.batch(ctx); err != nil {
			return nil, err
		}
	}
	return sw.finish(ctx)
}

// sweep is one run in progress.
type sweep struct {
	s     *Service
	pol   *custos.RetentionPolicy
	opts  RetentionOptions
	cur   *custos.RetentionCursor
	acted int
}

func newCursor(rules []custos.RetentionRule, now time.Time) *custos.RetentionCursor {
	c := &custos.RetentionCursor{RunID: custos.NewID("run"), StartedAt: now, AsOf: now,
		HoldCounts: map[string]int{}, ByCategory: map[string]map[string]int{}}
	for _, r := range rules {
		c.Report.Rules = append(c.Report.Rules, custos.RuleOutcome{Rule: r.Name, Target: r.Target, Trigger: r.Trigger,
			Period: r.Period.String(), Action: r.Action})
	}
	return c
}

// start loads an unfinished run's cursor or begins a new run.
func (sw *sweep) start(ctx context.Context) error {
	if sw.opts.DryRun {
		return sw.s.store.View(ctx, func(tx custos.Tx) error {
			sw.cur = newCursor(sw.pol.Rules, tx.Now())
			return nil
		})
	}
	return sw.s.store.Update(ctx, func(tx custos.Tx) error {
		v, err := tx.GetMeta(ctx, MetaRetentionCursor)
		if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			return err
		}
		if v != "" {
			var c custos.RetentionCursor
			if err := json.Unmarshal([]byte(v), &c); err != nil {
				return fmt.Errorf("retention cursor: %w", err)
			}
			// Resume only under the same rules; otherwise start afresh
			// (what the old run did is audited batch by batch).
			if len(c.Report.Rules) == len(sw.pol.Rules) && c.Rule <= len(sw.pol.Rules) {
				same := true
				for i, r := range sw.pol.Rules {
					same = same && c.Report.Rules[i].Rule == r.Name && c.Report.Rules[i].Action == r.Action
				}
				if same {
					c.Report.Resumed = true
					sw.cur = &c
					return nil
				}
			}
		}
		sw.cur = newCursor(sw.pol.Rules, tx.Now())
		return sw.save(ctx, tx)
	})
}

func (sw *sweep) save(ctx context.Context, tx custos.Tx) error {
	b, err := json.Marshal(sw.cur)
	if err != nil {
		return err
	}
	return tx.SetMeta(ctx, MetaRetentionCursor, string(b))
}

// idFraction estimates how far through the id space a random id is.
func idFraction(id string) float64 {
	_, rest, ok := strings.Cut(id, "_")
	if !ok || len(rest) < 4 {
		return 0
	}
	v := 0
	for _, c := range rest[:4] {
		v = v*32 + max(strings.IndexRune(custos.IDAlphabet, c), 0)
	}
	return float64(v) / float64(32*32*32*32)
}

// batch handles one batch of the current rule and saves the cursor with it;
// at the rule's end the cursor moves to the next rule.
func (sw *sweep) batch(ctx context.Context) error {
	idx := sw.cur.Rule
	rule := &sw.pol.Rules[idx]
	done := false
	var shreds shredAttempts // erasures this batch wrote to the shred ledger
	fn := func(tx custos.Tx) error {
		shreds.begin()
		holds, err := tx.ListHolds(ctx)
		if err != nil {
			return err
		}
		b := &batch{sw: sw, tx: tx, rule: rule, out: &sw.cur.Report.Rules[idx], holds: holds, shreds: &shreds}
		switch rule.Target {
		case custos.TargetRecords:
			done, err = b.records(ctx)
		case custos.TargetSubject, custos.TargetFields:
			done, err = b.subjects(ctx)
		default:
			// Audit log, sharing and processing records are kept whole:
			// their rules exist so the legal floor is checked and shown.
			done = true
		}
		if err != nil {
			return err
		}
		if done {
			sw.cur.Rule, sw.cur.After = idx+1, ""
		}
		if sw.opts.DryRun {
			return nil
		}
		if b.changed > 0 || b.n.Held > 0 {
			ev := event_(ctx, custos.AuditRetentionSweep, "")
			ev.Reason = fmt.Sprintf("run %s rule %s: deleted %d, anonymised %d, restricted %d, fields deleted %d, held %d, legal minimum %d",
				sw.cur.RunID, rule.Name, b.n.Deleted, b.n.Anonymised, b.n.Restricted, b.n.FieldsGone, b.n.Held, b.n.LegalGuard)
			if err := sw.s.appendAudit(ctx, tx, ev); err != nil {
				return err
			}
		}
		return sw.save(ctx, tx)
	}
	// The cursor and counts change inside fn; keep a copy to restore if
	// the transaction fails, so that nothing is counted twice.
	saved, err := json.Marshal(sw.cur)
	if err != nil {
		return err
	}
	acted := sw.acted
	if sw.opts.DryRun {
		err = sw.s.store.View(ctx, fn)
	} else {
		err = sw.s.store.Update(ctx, fn)
		sw.s.settleShred(&shreds, err)
	}
	if err != nil {
		var c custos.RetentionCursor
		if jerr := json.Unmarshal(saved, &c); jerr == nil {
			sw.cur = &c
		}
		sw.acted = acted
		return err
	}
	if sw.opts.Progress != nil {
		frac := 1.0
		if !done {
			frac = idFraction(sw.cur.After)
		}
		sw.opts.Progress(RetentionProgress{Rule: rule.Name, RuleIndex: idx, Rules: len(sw.pol.Rules), Fraction: frac, Acted: sw.acted})
	}
	return nil
}

// batch is one sweeper transaction.
type batch struct {
	sw      *sweep
	tx      custos.Tx
	rule    *custos.RetentionRule
	out     *custos.RuleOutcome // the run's totals for the rule
	n       custos.RuleOutcome  // this batch's counts
	holds   []*custos.LegalHold
	changed int
	aeads   map[custos.SubjectID]cachedAEAD
	shreds  *shredAttempts
}

type cachedAEAD struct {
	aead    *keys.AEAD
	version int
}

// held returns the active hold covering data of category cat of sub, or nil.
func (b *batch) held(sub custos.SubjectID, cats ...string) *custos.LegalHold {
	now := b.sw.cur.AsOf
	for _, h := range b.holds {
		for _, c := range cats {
			if h.Holds(now, sub, c) {
				return h
			}
		}
	}
	return nil
}

func (b *batch) count(field func(o *custos.RuleOutcome) *int, n int) {
	*field(b.out) += n
	*field(&b.n) += n
}

func (b *batch) hold(h *custos.LegalHold) {
	b.count(func(o *custos.RuleOutcome) *int { return &o.Held }, 1)
	b.sw.cur.HoldCounts[h.ID]++
}

func (b *batch) byCategory(cat, method string, n int) {
	if n == 0 {
		return
	}
	m := b.sw.cur.ByCategory[cat]
	if m == nil {
		m = map[string]int{}
		b.sw.cur.ByCategory[cat] = m
	}
	m[method] += n
}

// legalEnd returns when the transaction floor of a record ends.
func legalEnd(r *custos.StoredRecord) time.Time {
	if r.Category != custos.CatTransaction {
		return time.Time{}
	}
	return custos.FloorTransaction.Min.After(r.OccurredAt)
}

// records handles one batch of a records rule.
func (b *batch) records(ctx context.Context) (bool, error) {
	rule, now := b.rule, b.sw.cur.AsOf
	clock := custos.ClockCreated
	switch rule.Trigger {
	case custos.TriggerTransactionCompletion:
		clock = custos.ClockOccurred
	case custos.TriggerAccountClosure, custos.TriggerConsentWithdrawal:
		clock = rule.Trigger
	}
	after := custos.RecordID(b.sw.cur.After)
	end, err := b.tx.RecordWindowEnd(ctx, after, retentionWindow*b.sw.opts.BatchSize)
	if err != nil {
		return false, err
	}
	items, err := b.tx.ScanRecords(ctx, custos.RecordScan{Types: rule.RecordTypes, Clock: clock,
		Before: rule.Period.Before(now), After: after, Through: end, Limit: b.sw.opts.BatchSize})
	if err != nil {
		return false, err
	}
	var del, anon []*custos.StoredRecord
	restrict := map[time.Time][]custos.RecordID{}
	per := map[custos.SubjectID]*tally{} // for one audit event per customer
	mark := func(r *custos.StoredRecord, what string) {
		t := per[r.SubjectID]
		if t == nil {
			t = &tally{n: map[string]int{}, types: map[string]bool{}}
			per[r.SubjectID] = t
		}
		t.n[what]++
		t.types["record:"+r.Type] = true
	}
	for _, it := range items {
		r := &it.StoredRecord
		if restricted(r.RestrictedUntil, now) {
			b.count(func(o *custos.RuleOutcome) *int { return &o.StillLocked }, 1)
			continue
		}
		if rule.Action == custos.ActionRestrict && r.RestrictedUntil.IsZero() {
			if until := rule.RestrictFor.After(rule.Period.After(it.Clock)); until.After(now) {
				restrict[until] = append(restrict[until], r.ID)
				b.count(func(o *custos.RuleOutcome) *int { return &o.Restricted }, 1)
				b.byCategory(r.Category, custos.ActionRestrict, 1)
				mark(r, "restricted")
				continue
			}
		}
		if end := legalEnd(r); end.After(now) {
			restrict[end] = append(restrict[end], r.ID)
			b.count(func(o *custos.RuleOutcome) *int { return &o.LegalGuard }, 1)
			mark(r, "restricted (legal minimum)")
			continue
		}
		if h := b.held(r.SubjectID, r.Category); h != nil {
			b.hold(h)
			continue
		}
		if rule.Action == custos.ActionAnonymise {
			anon = append(anon, r)
			mark(r, "anonymised")
		} else {
			del = append(del, r)
			mark(r, "deleted")
		}
	}
	var last custos.RecordID
	if len(items) > 0 {
		last = items[len(items)-1].ID
	}
	done := b.advance(string(last), len(items), string(end))
	b.count(func(o *custos.RuleOutcome) *int { return &o.Deleted }, len(del))
	b.count(func(o *custos.RuleOutcome) *int { return &o.Anonymised }, len(anon))
	for _, r := range del {
		b.byCategory(r.Category, custos.ActionDelete, 1)
	}
	for _, r := range anon {
		b.byCategory(r.Category, custos.ActionAnonymise, 1)
	}
	b.changed = len(del) + len(anon)
	for _, ids := range restrict {
		b.changed += len(ids)
	}
	b.sw.acted += b.changed
	if b.sw.opts.DryRun {
		return done, nil
	}
	for _, until := range slices.SortedFunc(maps.Keys(restrict), time.Time.Compare) {
		if _, err := b.tx.RestrictRecords(ctx, restrict[until], until); err != nil {
			return false, err
		}
	}
	if err := b.anonymise(ctx, anon); err != nil {
		return false, err
	}
	ids := make([]custos.RecordID, 0, len(del)+len(anon))
	for _, r := range append(del, anon...) {
		ids = append(ids, r.ID)
	}
	if _, err := b.tx.DeleteRecordsByID(ctx, ids); err != nil {
		return false, err
	}
	// Each customer whose records were acted on gets an audit event naming
	// it and the record types (S5), not one per record.
	for _, sub := range slices.Sorted(maps.Keys(per)) {
		t := per[sub]
		var parts []string
		for _, what := range slices.Sorted(maps.Keys(t.n)) {
			parts = append(parts, fmt.Sprintf("%s %d", what, t.n[what]))
		}
		ev := event_(ctx, custos.AuditRetentionExpire, sub)
		ev.Fields = slices.Sorted(maps.Keys(t.types))
		ev.Reason = fmt.Sprintf("run %s rule %s: records %s", b.sw.cur.RunID, rule.Name, strings.Join(parts, ", "))
		if err := b.sw.s.appendAudit(ctx, b.tx, ev); err != nil {
			return false, err
		}
	}
	return done, nil
}

// tally counts what a batch did to one customer's records.
type tally struct {
	n     map[string]int  // deleted, anonymised, restricted … → records
	types map[string]bool // "record:order" …
}

// aead returns the sealer of a subject's data key, cached for the batch.
func (b *batch) aead(ctx context.Context, id custos.SubjectID) (*keys.AEAD, int, error) {
	if c, ok := b.aeads[id]; ok {
		return c.aead, c.version, nil
	}
	dk, err := b.tx.GetDataKey(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	a, err := b.sw.s.aead(dk)
	if err != nil {
		return nil, 0, err
	}
	if b.aeads == nil {
		b.aeads = map[custos.SubjectID]cachedAEAD{}
	}
	b.aeads[id] = cachedAEAD{a, dk.Version}
	return a, dk.Version, nil
}

// anonymise moves the records' statistical residue into the unlinked
// table; the caller deletes the originals in the same transaction.
func (b *batch) anonymise(ctx context.Context, rs []*custos.StoredRecord) error {
	if len(rs) == 0 {
		return nil
	}
	rows := make([]*custos.AnonymisedRecord, 0, len(rs))
	for _, r := range rs {
		a, version, err := b.aead(ctx, r.SubjectID)
		var doc sealedRecord
		if err == nil {
			var pt []byte
			if pt, err = a.Open(r.Sealed, dekAAD("records", r.Type, r.SubjectID, r.ID, version)); err == nil {
				err = json.Unmarshal(pt, &doc)
			}
		}
		if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
			return fmt.Errorf("anonymise %s: %w", r.ID, err)
		}
		// A record whose key is gone keeps only its type and month.
		rows = append(rows, &custos.AnonymisedRecord{ID: custos.NewID("anr"), Type: r.Type, Category: r.Category,
			Month: r.OccurredAt.UTC().Format("2006-01"), Data: Generalise(b.rule.Keep, doc.Data), Rule: b.rule.Name})
	}
	return b.tx.InsertAnonymised(ctx, rows)
}

// Generalise keeps the attributes keep names, each reduced by its
// generaliser (number, category, city, month); anything that does not fit
// its generaliser is dropped, and every other attribute is dropped.
func Generalise(keep map[string]string, data map[string]any) map[string]any {
	out := map[string]any{}
	for k, how := range keep {
		v, ok := data[k]
		if !ok {
			continue
		}
		switch how {
		case custos.KeepNumber:
			switch n := v.(type) {
			case float64:
				out[k] = n
			case string:
				if f, err := strconv.ParseFloat(n, 64); err == nil && len(n) <= 24 {
					out[k] = f
				}
			}
		case custos.KeepCategory:
			if s, ok := v.(string); ok && codeRE.MatchString(s) && digits(s) <= 4 {
				out[k] = s
			}
		case custos.KeepCity:
			if s, ok := v.(string); ok {
				if i := strings.Index(s, "市"); i > 0 && utf8.RuneCountInString(s[:i]) <= 12 {
					out[k] = s[:i+len("市")]
				}
			}
		case custos.KeepMonth:
			if s, ok := v.(string); ok {
				for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
					if t, err := time.Parse(layout, s); err == nil {
						out[k] = t.UTC().Format("2006-01")
						break
					}
				}
			}
		}
	}
	return out
}

// codeRE is what a kept category looks like: a short ASCII code (CNY,
// app, wechat_pay). Names, addresses, e-mail addresses and numbers do not
// fit, so a category attribute cannot carry them into the unlinked table.
var codeRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_.-]{0,31}$`)

func digits(s string) int {
	n := 0
	for _, c := range s {
		if c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

// subjects handles one batch of a subject or fields rule.
func (b *batch) subjects(ctx context.Context) (bool, error) {
	rule, now := b.rule, b.sw.cur.AsOf
	clock := rule.Trigger
	if clock == custos.TriggerCollection {
		clock = custos.ClockCreated
	}
	after := custos.SubjectID(b.sw.cur.After)
	end, err := b.tx.SubjectWindowEnd(ctx, after, retentionWindow*b.sw.opts.BatchSize)
	if err != nil {
		return false, err
	}
	items, err := b.tx.ScanSubjects(ctx, custos.SubjectScan{Clock: clock, Before: rule.Period.Before(now),
		After: after, Through: end, Limit: b.sw.opts.BatchSize})
	if err != nil {
		return false, err
	}
	for _, it := range items {
		var err error
		if rule.Target == custos.TargetFields {
			err = b.fields(ctx, it)
		} else {
			err = b.subject(ctx, it)
		}
		if err != nil {
			return false, err
		}
	}
	var last custos.SubjectID
	if len(items) > 0 {
		last = items[len(items)-1].ID
	}
	return b.advance(string(last), len(items), string(end)), nil
}

// retentionWindow is how many batches' worth of items, at most, one
// sweeper transaction looks at (Tx.SubjectWindowEnd): the scan for a
// rule's due items held the store's writer until it had found a batch,
// through the whole table when few were due — two seconds a rule on a
// SQLite store of a million customers, every request waiting
// (BENCHMARKS.md, forty-fourth session). With the window a transaction
// looks at 5,000 customers or records at most by default, and a sweep
// takes a transaction a window.
const retentionWindow = 10

// advance moves the sweep's cursor past a batch whose scan found n items,
// the last of them last, in the window that ends at end ("" when the
// window reached the end of the table), and reports whether the rule's
// sweep is done: it goes on from the last item when the batch is full,
// else from the window's end, and ends with a window that reached the
// table's end and was not full.
func (b *batch) advance(last string, n int, end string) bool {
	switch {
	case n == b.sw.opts.BatchSize:
		b.sw.cur.After = last
		return false
	case end != "":
		b.sw.cur.After = end
		return false
	default:
		if n > 0 {
			b.sw.cur.After = last
		}
		return true
	}
}

// expire audits one customer-level action.
func (b *batch) expire(ctx context.Context, id custos.SubjectID, what string, fields []string) error {
	b.changed++
	b.sw.acted++
	if b.sw.opts.DryRun {
		return nil
	}
	ev := event_(ctx, custos.AuditRetentionExpire, id)
	ev.Fields = fields
	ev.Reason = fmt.Sprintf("run %s rule %s: %s", b.sw.cur.RunID, b.rule.Name, what)
	return b.sw.s.appendAudit(ctx, b.tx, ev)
}

// subject applies a subject rule to one customer.
func (b *batch) subject(ctx context.Context, it *custos.ScannedSubject) error {
	rule, now, tx := b.rule, b.sw.cur.AsOf, b.tx
	if restricted(it.RestrictedUntil, now) {
		b.count(func(o *custos.RuleOutcome) *int { return &o.StillLocked }, 1)
		return nil
	}
	if rule.Action == custos.ActionRestrict && it.RestrictedUntil.IsZero() {
		if until := rule.RestrictFor.After(rule.Period.After(it.Clock)); until.After(now) {
			b.count(func(o *custos.RuleOutcome) *int { return &o.Restricted }, 1)
			b.byCategory("customer", custos.ActionRestrict, 1)
			if !b.sw.opts.DryRun {
				if err := tx.RestrictSubject(ctx, it.ID, until); err != nil {
					return err
				}
			}
			return b.expire(ctx, it.ID, "restricted until "+until.Format(time.RFC3339), nil)
		}
	}
	st, err := tx.GetSubject(ctx, it.ID)
	if err != nil {
		return err
	}
	recs, err := tx.ListRecords(ctx, it.ID, "")
	if err != nil {
		return err
	}
	// A legal minimum still running for any transaction: restrict the
	// customer until the last one ends instead of destroying (RULES.md).
	var end time.Time
	cats := map[string]bool{}
	for _, r := range recs {
		cats[r.Category] = true
		if e := legalEnd(r); e.After(end) {
			end = e
		}
	}
	for name := range st.Sealed {
		if f := b.sw.s.catalog.Field(name); f != nil {
			cats[f.Category] = true
		}
	}
	if end.After(now) {
		b.count(func(o *custos.RuleOutcome) *int { return &o.LegalGuard }, 1)
		if !b.sw.opts.DryRun {
			if err := tx.RestrictSubject(ctx, it.ID, end); err != nil {
				return err
			}
		}
		return b.expire(ctx, it.ID, "restricted until "+end.Format(time.RFC3339)+": a legal minimum retention still runs", nil)
	}
	if h := b.held(it.ID, slices.Sorted(maps.Keys(cats))...); h != nil {
		b.hold(h)
		return nil
	}
	method := custos.ActionDelete
	if rule.Action == custos.ActionAnonymise {
		method = custos.ActionAnonymise
		b.count(func(o *custos.RuleOutcome) *int { return &o.Anonymised }, 1)
	} else {
		b.count(func(o *custos.RuleOutcome) *int { return &o.Deleted }, 1)
	}
	b.byCategory("customer", method, 1)
	for _, r := range recs {
		b.byCategory(r.Category, method, 1)
	}
	if b.sw.opts.DryRun {
		return b.expire(ctx, it.ID, method, nil)
	}
	if method == custos.ActionAnonymise {
		if err := b.anonymise(ctx, recs); err != nil {
			return err
		}
	}
	ev := event_(ctx, custos.AuditRetentionExpire, it.ID)
	if _, err := b.sw.s.eraseTx(ctx, tx, it.ID, "retention:"+rule.Name, ev, b.shreds); err != nil {
		return err
	}
	return b.expire(ctx, it.ID, method+" (crypto-shredded)", ev.Fields)
}

// fields applies a fields rule to one customer: the fields' values and
// blind indexes are removed; nothing else changes.
func (b *batch) fields(ctx context.Context, it *custos.ScannedSubject) error {
	now, tx := b.sw.cur.AsOf, b.tx
	if restricted(it.RestrictedUntil, now) {
		return nil
	}
	st, err := tx.GetSubject(ctx, it.ID)
	if err != nil {
		return err
	}
	var gone []string
	for _, f := range b.rule.Fields {
		if _, ok := st.Sealed[f]; !ok {
			continue
		}
		def := b.sw.s.catalog.Field(f)
		if h := b.held(it.ID, def.Category); h != nil {
			b.hold(h)
			continue
		}
		gone = append(gone, f)
		b.byCategory(def.Category, custos.ActionDelete, 1)
	}
	if len(gone) == 0 {
		return nil
	}
	b.count(func(o *custos.RuleOutcome) *int { return &o.FieldsGone }, len(gone))
	if !b.sw.opts.DryRun {
		for _, f := range gone {
			delete(st.Sealed, f)
			if b.sw.s.catalog.Field(f).Lookup {
				if err := tx.DeleteLookups(ctx, it.ID, f); err != nil {
					return err
				}
			}
		}
		// UpdatedAt stays: expiry is not activity by the customer.
		if err := tx.UpdateSubject(ctx, st); err != nil {
			return err
		}
	}
	return b.expire(ctx, it.ID, "fields deleted", gone)
}

// finish ends the run: a dry run is audited; a real run writes its signed
// certificate, clears the cursor and is audited, in one transaction.
func (sw *sweep) finish(ctx context.Context) (*custos.RetentionReport, error) {
	rep := sw.cur.Report
	rep.DryRun, rep.AsOf = sw.opts.DryRun, sw.cur.AsOf
	for _, id := range slices.Sorted(maps.Keys(sw.cur.HoldCounts)) {
		rep.Holds = append(rep.Holds, custos.HoldOutcome{HoldID: id, Held: sw.cur.HoldCounts[id]})
	}
	if sw.opts.DryRun {
		ev := event_(ctx, custos.AuditRetentionDryRun, "")
		ev.Reason = fmt.Sprintf("dry run: %d items would be acted on", sw.acted)
		err := sw.s.store.Update(ctx, func(tx custos.Tx) error {
			holds, err := tx.ListHolds(ctx)
			fillScopes(rep.Holds, holds)
			if err != nil {
				return err
			}
			return sw.s.appendAudit(ctx, tx, ev)
		})
		return &rep, err
	}
	rep.RunID = sw.cur.RunID
	err := sw.s.store.Update(ctx, func(tx custos.Tx) error {
		holds, err := tx.ListHolds(ctx)
		if err != nil {
			return err
		}
		fillScopes(rep.Holds, holds)
		c, err := sw.s.certificate(sw.cur, rep, tx.Now())
		if err != nil {
			return err
		}
		if err := tx.InsertCertificate(ctx, c); err != nil {
			return err
		}
		rep.CertificateID = c.ID
		if err := tx.SetMeta(ctx, MetaRetentionCursor, ""); err != nil {
			return err
		}
		ev := event_(ctx, custos.AuditRetentionRun, "")
		ev.Reason = fmt.Sprintf("run %s finished: certificate %s", sw.cur.RunID, c.ID)
		return sw.s.appendAudit(ctx, tx, ev)
	})
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

func fillScopes(out []custos.HoldOutcome, holds []*custos.LegalHold) {
	for i := range out {
		for _, h := range holds {
			if h.ID == out[i].HoldID {
				out[i].Scope = h.Scope
			}
		}
	}
}

// certificateMethods says how each action destroys or locks data.
var certificateMethods = map[string]string{
	custos.ActionDelete:    "records: rows deleted (SQLite secure_delete overwrites freed pages); customers: data key destroyed (crypto-shredding), rows and blind indexes deleted, shred ledger entry written",
	custos.ActionAnonymise: "statistical attributes generalised into a table with no customer id, record id, sealed data or blind index; the original record deleted",
	custos.ActionRestrict:  "kept in place, locked and excluded from every use until restricted_until, then deleted",
}

// certificate builds and signs a run's certificate.
func (s *Service) certificate(cur *custos.RetentionCursor, rep custos.RetentionReport, now time.Time) (*custos.RetentionCertificate, error) {
	if s.signer == nil {
		return nil, custos.Errorf(custos.ESEALED, "No audit signing key: certificates cannot be signed.")
	}
	body := custos.CertificateBody{Format: certificateFormat, ID: custos.NewID("cert"), RunID: cur.RunID,
		StartedAt: cur.StartedAt, FinishedAt: now, AsOf: cur.AsOf, Rules: rep.Rules, ByCategory: cur.ByCategory,
		Holds: rep.Holds, Methods: certificateMethods, Totals: map[string]int{}}
	if body.Holds == nil {
		body.Holds = []custos.HoldOutcome{}
	}
	for _, r := range rep.Rules {
		body.Totals["deleted"] += r.Deleted
		body.Totals["anonymised"] += r.Anonymised
		body.Totals["restricted"] += r.Restricted + r.LegalGuard
		body.Totals["fields_deleted"] += r.FieldsGone
		body.Totals["held"] += r.Held
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	return &custos.RetentionCertificate{ID: body.ID, RunID: cur.RunID, StartedAt: cur.StartedAt, FinishedAt: now,
		AsOf: cur.AsOf, Body: b, KeyID: s.signer.KeyID(), Signature: s.signer.Sign(certificateMessage(b))}, nil
}

func certificateMessage(body []byte) []byte {
	return append([]byte(certificateFormat+"\n"), body...)
}

// CertificateCheck is the outcome of verifying a certificate.
type CertificateCheck struct {
	ID      string `json:"id"`
	Valid   bool   `json:"valid"`
	KeyID   string `json:"key_id"`
	Problem string `json:"problem,omitempty"`
}

// FindCertificates lists destruction certificates. Requires audit.read.
func (s *Service) FindCertificates(ctx context.Context) ([]*custos.RetentionCertificate, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditAuditRead, ""), custos.ActAuditRead); err != nil {
		return nil, err
	}
	var out []*custos.RetentionCertificate
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListCertificates(ctx)
		return err
	})
	return out, err
}

// FindCertificate returns one certificate. Requires audit.read. ENOTFOUND.
func (s *Service) FindCertificate(ctx context.Context, id string) (*custos.RetentionCertificate, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditAuditRead, ""), custos.ActAuditRead); err != nil {
		return nil, err
	}
	return s.certificateByID(ctx, id)
}

func (s *Service) certificateByID(ctx context.Context, id string) (*custos.RetentionCertificate, error) {
	var c *custos.RetentionCertificate
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		c, err = tx.GetCertificate(ctx, id)
		return err
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Certificate not found.")
	}
	return c, err
}

// VerifyCertificate checks a certificate's signature against the audit
// signing key and that its body names it. Requires audit.read. ENOTFOUND.
func (s *Service) VerifyCertificate(ctx context.Context, id string) (*CertificateCheck, error) {
	if err := s.requireAction(ctx, event_(ctx, custos.AuditAuditRead, ""), custos.ActAuditRead); err != nil {
		return nil, err
	}
	c, err := s.certificateByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.CheckCertificate(c), nil
}

// CheckCertificate verifies c offline (no authorisation; the CLI uses it).
func (s *Service) CheckCertificate(c *custos.RetentionCertificate) *CertificateCheck {
	out := &CertificateCheck{ID: c.ID, KeyID: c.KeyID}
	var body custos.CertificateBody
	switch {
	case s.signer == nil:
		out.Problem = "no audit signing key loaded"
	case !keys.Verify(s.signer.Public(), certificateMessage(c.Body), c.Signature):
		out.Problem = "signature does not match the body (tampered, or signed by another key)"
	case json.Unmarshal(c.Body, &body) != nil:
		out.Problem = "body is not a certificate"
	case body.ID != c.ID || body.RunID != c.RunID || body.Format != certificateFormat:
		out.Problem = "body does not name this certificate"
	default:
		out.Valid = true
	}
	return out
}
