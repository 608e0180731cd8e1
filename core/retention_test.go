package core_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/keys"
)

// clock is a settable store clock: the sweeper judges expiry at the time
// of its store's transactions.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type retEnv struct {
	*env
	clock  *clock
	signer *keys.Signer
	start  time.Time

	consented map[custos.SubjectID]bool
}

// newRetEnv is a service on SQLite whose store clock starts now and can be
// moved forward; rules replace the default rules when given.
func newRetEnv(t *testing.T, rules string) *retEnv { return newRetEnvWith(t, rules) }

func newRetEnvWith(t testing.TB, rules string) *retEnv {
	t.Helper()
	start := time.Now().UTC().Truncate(time.Microsecond)
	clk := &clock{now: start}
	db := openSQLite(t, filepath.Join(t.TempDir(), "custos.db"), clk.Now)
	svc, admin, ring, signer := newService(t, db)
	cat := svc.Catalog()
	if rules != "" {
		p, err := custos.ParseRetention(strings.NewReader(rules), cat)
		if err != nil {
			t.Fatalf("rules: %v", err)
		}
		svc.SetRetention(p)
	}
	publishPersonalisation(t, svc, admin)
	return &retEnv{env: &env{svc: svc, db: db, ring: ring, admin: admin}, clock: clk, signer: signer, start: start, consented: map[custos.SubjectID]bool{}}
}

// at moves the store clock to start + d.
func (e *retEnv) at(d time.Duration) { e.clock.Set(e.start.Add(d)) }

// years returns n years of 365 days plus a day.
func years(n int) time.Duration { return time.Duration(n)*365*24*time.Hour + 24*time.Hour }

const day = 24 * time.Hour

func (e *retEnv) record(t *testing.T, id custos.SubjectID, typ string, occurred time.Time, data map[string]any) custos.RecordID {
	t.Helper()
	if !e.consented[id] {
		consentPersonalisation(t, e.svc, e.admin, id)
		e.consented[id] = true
	}
	r, err := e.svc.CreateRecord(e.admin, []string{"fulfilment", "personalisation", "customer-service"}, id,
		custos.NewRecord{Type: typ, OccurredAt: occurred, Data: data, Provenance: prov})
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	return r.ID
}

func (e *retEnv) run(t *testing.T, dry bool) *custos.RetentionReport {
	t.Helper()
	rep, err := e.svc.RunRetention(e.admin, core.RetentionOptions{DryRun: dry, BatchSize: 2})
	if err != nil {
		t.Fatalf("retention run: %v", err)
	}
	return rep
}

// storedRecords counts a subject's stored records (restricted ones too).
func (e *retEnv) storedRecords(t *testing.T, id custos.SubjectID) []*custos.StoredRecord {
	t.Helper()
	var rs []*custos.StoredRecord
	if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
		rs, err = tx.ListRecords(context.Background(), id, "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rs
}

func (e *retEnv) subjectExists(t *testing.T, id custos.SubjectID) bool {
	t.Helper()
	err := e.db.View(context.Background(), func(tx custos.Tx) error {
		_, err := tx.GetSubject(context.Background(), id)
		return err
	})
	if err != nil && custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Fatal(err)
	}
	return err == nil
}

func outcome(t *testing.T, rep *custos.RetentionReport, rule string) custos.RuleOutcome {
	t.Helper()
	for _, o := range rep.Rules {
		if o.Rule == rule {
			return o
		}
	}
	t.Fatalf("no outcome for rule %s in %+v", rule, rep.Rules)
	return custos.RuleOutcome{}
}

func rulesJSON(rules ...string) string {
	return `{"version": "test", "rules": [` + strings.Join(rules, ",") + `]}`
}

// TestRetentionExpiryPerTrigger: each lifecycle event a period counts from
// expires data only once the period has passed from it (L1, L2).
func TestRetentionExpiryPerTrigger(t *testing.T) {
	tests := []struct {
		name  string
		rule  string
		setup func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID)
		early time.Duration // the run before expiry changes nothing
		late  time.Duration // the run after expiry acts
		check func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome)
	}{
		{
			name: "transaction_completion",
			rule: `{"name": "r", "target": "records", "record_types": ["order"], "period": "3y", "trigger": "transaction_completion", "action": "delete"}`,
			setup: func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID) {
				sub := e.create(t, map[string]string{"name": "王小明"})
				// Completed 10 days before the subject's data was stored.
				return sub, e.record(t, sub, "order", e.start.Add(-10*day), map[string]any{"amount": "10.00"})
			},
			early: years(3) - 12*day, late: years(3) - 9*day,
			check: func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome) {
				if o.Deleted != 1 || len(e.storedRecords(t, sub)) != 0 {
					t.Errorf("order 3 years after completion: deleted %d, left %d; want 1, 0", o.Deleted, len(e.storedRecords(t, sub)))
				}
			},
		},
		{
			name: "collection",
			rule: `{"name": "r", "target": "records", "category": "behaviour", "period": "1y", "trigger": "collection", "action": "delete"}`,
			setup: func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID) {
				sub := e.create(t, map[string]string{"name": "王小明"})
				// Occurred long ago, but collected (stored) now: collection counts.
				return sub, e.record(t, sub, "browsing", e.start.Add(-5*365*day), map[string]any{"sku": "A1"})
			},
			early: years(1) - 2*day, late: years(1) + day,
			check: func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome) {
				if o.Deleted != 1 || len(e.storedRecords(t, sub)) != 0 {
					t.Errorf("browsing a year after collection: deleted %d; want 1", o.Deleted)
				}
			},
		},
		{
			name: "consent_withdrawal",
			rule: `{"name": "r", "target": "records", "category": "behaviour", "period": "15d", "trigger": "consent_withdrawal", "action": "delete"}`,
			setup: func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID) {
				sub := e.create(t, map[string]string{"name": "王小明"})
				rec := e.record(t, sub, "search", e.start, map[string]any{"q": "x"})
				if err := e.svc.MarkLifecycle(e.admin, sub, custos.TriggerConsentWithdrawal, e.start.Add(100*day)); err != nil {
					t.Fatal(err)
				}
				return sub, rec
			},
			early: 114 * day, late: 116 * day,
			check: func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome) {
				if o.Deleted != 1 {
					t.Errorf("search 15 days after withdrawal: deleted %d; want 1", o.Deleted)
				}
			},
		},
		{
			name: "account_closure",
			rule: `{"name": "r", "target": "subject", "period": "30d", "trigger": "account_closure", "action": "delete"}`,
			setup: func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID) {
				sub := e.create(t, map[string]string{"name": "王小明", "mobile": "13900001234"})
				e.record(t, sub, "browsing", e.start, map[string]any{"sku": "A1"})
				if err := e.svc.MarkLifecycle(e.admin, sub, custos.TriggerAccountClosure, e.start.Add(day)); err != nil {
					t.Fatal(err)
				}
				return sub, ""
			},
			early: 30 * day, late: 32 * day,
			check: func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome) {
				if o.Deleted != 1 || e.subjectExists(t, sub) {
					t.Errorf("closed account after 30 days: deleted %d, exists %v; want 1, false", o.Deleted, e.subjectExists(t, sub))
				}
				_, err := e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "mobile", "13900001234")
				if custos.ErrorCode(err) != custos.ENOTFOUND {
					t.Errorf("lookup after expiry: got %v, want not found", err)
				}
				var shreds []*custos.ShredEntry
				if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
					shreds, err = tx.ListShreds(context.Background(), 0)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if len(shreds) != 1 || shreds[0].SubjectID != sub || shreds[0].Reason != "retention:r" {
					t.Errorf("shred ledger: got %+v, want one entry for the subject, reason retention:r", shreds)
				}
			},
		},
		{
			name: "last_activity",
			rule: `{"name": "r", "target": "subject", "period": "1y", "trigger": "last_activity", "action": "delete"}`,
			setup: func(t *testing.T, e *retEnv) (custos.SubjectID, custos.RecordID) {
				sub := e.create(t, map[string]string{"name": "王小明"})
				// Activity half a year in: a record written then.
				e.at(180 * day)
				e.record(t, sub, "ticket", e.start, map[string]any{"topic": "x"})
				return sub, ""
			},
			early: 180*day + 364*day, late: 180*day + 368*day,
			check: func(t *testing.T, e *retEnv, sub custos.SubjectID, rec custos.RecordID, o custos.RuleOutcome) {
				if o.Deleted != 1 || e.subjectExists(t, sub) {
					t.Errorf("a year after the last activity: %+v; want deleted 1", o)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newRetEnv(t, rulesJSON(tt.rule))
			sub, rec := tt.setup(t, e)
			// Another customer, untouched by the trigger, must survive (with
			// no activity at all, it too expires under last_activity).
			var other custos.SubjectID
			if tt.name != "last_activity" {
				other = e.create(t, map[string]string{"name": "赵大海"})
			}
			e.at(tt.early)
			rep := e.run(t, false)
			if o := outcome(t, rep, "r"); o.Deleted+o.Anonymised+o.Restricted != 0 || !e.subjectExists(t, sub) {
				t.Fatalf("before expiry: %+v, subject exists %v", o, e.subjectExists(t, sub))
			}
			e.at(tt.late)
			rep = e.run(t, false)
			tt.check(t, e, sub, rec, outcome(t, rep, "r"))
			if tt.name != "last_activity" && !e.subjectExists(t, other) {
				t.Errorf("a customer without the event was deleted")
			}
		})
	}
}

// TestRetentionLegalMinimumRestricts: a closed account whose order is still
// under the 3-year floor is restricted, not deleted: kept, but refused to
// every read, lookup and write until the floor has passed; then it goes
// (RULES.md, PIPL Art. 47, E-commerce Law Art. 31).
func TestRetentionLegalMinimumRestricts(t *testing.T) {
	e := newRetEnv(t, "") // the default rules
	sub := e.create(t, map[string]string{"name": "王小明", "mobile": "13900004321"})
	e.record(t, sub, "order", e.start, map[string]any{"amount": "99.00", "currency": "CNY"})
	if err := e.svc.MarkLifecycle(e.admin, sub, custos.TriggerAccountClosure, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.at(40 * day)
	rep := e.run(t, false)
	if o := outcome(t, rep, "closed-accounts"); o.LegalGuard != 1 || o.Deleted != 0 {
		t.Fatalf("closed-accounts: %+v; want legal_guard 1, deleted 0", o)
	}
	if !e.subjectExists(t, sub) || len(e.storedRecords(t, sub)) != 1 {
		t.Fatal("restricted customer's data is gone")
	}
	_, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, sub)
	wantRestricted(t, "read", err)
	_, err = e.svc.FindSubjectByLookup(e.admin, []string{"account"}, "mobile", "13900004321")
	wantRestricted(t, "lookup", err)
	_, err = e.svc.FindRecords(e.admin, []string{"fulfilment"}, sub, "")
	wantRestricted(t, "records", err)
	name := "李四"
	_, err = e.svc.UpdateSubject(e.admin, []string{"account"}, sub, custos.SubjectUpdate{Fields: map[string]*string{"name": &name}, Provenance: prov})
	wantRestricted(t, "update", err)
	_, err = e.svc.CreateRecord(e.admin, []string{"fulfilment"}, sub, custos.NewRecord{Type: "order", OccurredAt: e.start, Provenance: prov})
	wantRestricted(t, "new record", err)

	// Past the floor: the order is anonymised by its own rule, and the
	// account deleted.
	e.at(years(3) + 2*day)
	rep = e.run(t, false)
	if o := outcome(t, rep, "closed-accounts"); o.Deleted != 1 {
		t.Errorf("closed-accounts after the floor: %+v; want deleted 1", o)
	}
	if o := outcome(t, rep, "transaction-records"); o.Anonymised != 1 {
		t.Errorf("transaction-records after the floor: %+v; want anonymised 1", o)
	}
	if e.subjectExists(t, sub) {
		t.Error("customer still stored after the legal minimum passed")
	}
}

func wantRestricted(t *testing.T, what string, err error) {
	t.Helper()
	ce := custos.AsError(err)
	if ce == nil || ce.Code != custos.EFORBIDDEN || len(ce.Violations) == 0 || ce.Violations[0].Rule != "restricted" {
		t.Errorf("%s of restricted data: got %v, want forbidden/restricted", what, err)
	}
}

// TestRetentionRestrictAction: a restrict rule locks records in place for
// restrict_for (hidden from record lists), then deletes them.
func TestRetentionRestrictAction(t *testing.T) {
	e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "records", "record_types": ["ticket"], "period": "30d",
		"trigger": "collection", "action": "restrict", "restrict_for": "60d"}`))
	sub := e.create(t, map[string]string{"name": "王小明"})
	e.record(t, sub, "ticket", e.start, map[string]any{"topic": "refund"})
	e.record(t, sub, "review", e.start, map[string]any{"stars": 5})
	e.at(31 * day)
	if o := outcome(t, e.run(t, false), "r"); o.Restricted != 1 {
		t.Fatalf("restrict run: %+v; want restricted 1", o)
	}
	rs, err := e.svc.FindRecords(e.admin, []string{"customer-service"}, sub, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Type != "review" {
		t.Errorf("record list with a restricted ticket: got %d records, want only the review", len(rs))
	}
	if n := len(e.storedRecords(t, sub)); n != 2 {
		t.Errorf("stored records while restricted: got %d, want 2 (kept)", n)
	}
	e.at(60 * day)
	if o := outcome(t, e.run(t, false), "r"); o.StillLocked != 1 || o.Deleted != 0 {
		t.Errorf("run while locked: %+v; want still_locked 1", o)
	}
	e.at(92 * day)
	if o := outcome(t, e.run(t, false), "r"); o.Deleted != 1 {
		t.Errorf("run after restrict_for: %+v; want deleted 1", o)
	}
	if n := len(e.storedRecords(t, sub)); n != 1 {
		t.Errorf("stored records after deletion: got %d, want 1", n)
	}
}

// TestLegalHoldBlocksThenReleases: a hold keeps back what it covers (and
// says so in the report and certificate); once released, destruction
// proceeds (L3).
func TestLegalHoldBlocksThenReleases(t *testing.T) {
	for _, scope := range []string{custos.HoldCustomer, custos.HoldCategory, custos.HoldStore} {
		t.Run(scope, func(t *testing.T) {
			e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "records", "category": "behaviour", "period": "1y", "trigger": "collection", "action": "delete"}`))
			sub := e.create(t, map[string]string{"name": "王小明"})
			e.record(t, sub, "browsing", e.start, map[string]any{"sku": "A1"})
			e.record(t, sub, "search", e.start, map[string]any{"q": "x"})
			in := custos.LegalHold{Scope: scope, Reason: "litigation 2026-17", Owner: "legal team"}
			switch scope {
			case custos.HoldCustomer:
				in.SubjectID = sub
			case custos.HoldCategory:
				in.Category = custos.CatBehaviour
			}
			h, err := e.svc.PlaceHold(e.admin, in)
			if err != nil {
				t.Fatal(err)
			}
			e.at(years(1) + day)
			dry := e.run(t, true)
			if o := outcome(t, dry, "r"); o.Held != 2 || o.Deleted != 0 {
				t.Errorf("dry run under hold: %+v; want held 2", o)
			}
			rep := e.run(t, false)
			if o := outcome(t, rep, "r"); o.Held != 2 || o.Deleted != 0 {
				t.Errorf("run under hold: %+v; want held 2, deleted 0", o)
			}
			if len(rep.Holds) != 1 || rep.Holds[0].HoldID != h.ID || rep.Holds[0].Held != 2 || rep.Holds[0].Scope != scope {
				t.Errorf("report holds: %+v", rep.Holds)
			}
			if n := len(e.storedRecords(t, sub)); n != 2 {
				t.Fatalf("held records: got %d stored, want 2", n)
			}
			cert, err := e.svc.FindCertificate(e.admin, rep.CertificateID)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(cert.Body, []byte(h.ID)) {
				t.Errorf("certificate does not name the hold applied: %s", cert.Body)
			}
			if _, err := e.svc.ReleaseHold(e.admin, h.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.ReleaseHold(e.admin, h.ID); custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("second release: got %v, want not found", err)
			}
			if o := outcome(t, e.run(t, false), "r"); o.Deleted != 2 || o.Held != 0 {
				t.Errorf("after release: %+v; want deleted 2", o)
			}
			evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, ev := range evs {
				seen[ev.Action]++
				// The customer whose records went is named, with the types.
				if ev.Action == custos.AuditRetentionExpire && ev.SubjectID == sub && strings.Join(ev.Fields, ",") == "record:browsing,record:search" &&
					strings.Contains(ev.Reason, "deleted 2") {
					seen["expire of the customer's records"]++
				}
			}
			if seen["expire of the customer's records"] != 1 {
				t.Errorf("no retention.expire event naming the customer and its record types")
			}
			for _, a := range []string{custos.AuditHoldPlace, custos.AuditHoldRelease, custos.AuditRetentionSweep, custos.AuditRetentionRun, custos.AuditRetentionDryRun} {
				if seen[a] == 0 {
					t.Errorf("no %s audit event", a)
				}
			}
		})
	}
}

// TestLegalHoldExpires: an expired hold no longer holds.
func TestLegalHoldExpires(t *testing.T) {
	e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "records", "category": "behaviour", "period": "1y", "trigger": "collection", "action": "delete"}`))
	sub := e.create(t, map[string]string{"name": "王小明"})
	e.record(t, sub, "browsing", e.start, map[string]any{"sku": "A1"})
	if _, err := e.svc.PlaceHold(e.admin, custos.LegalHold{Scope: custos.HoldStore, Reason: "audit", Owner: "dpo",
		ExpiresAt: e.start.Add(400 * day)}); err != nil {
		t.Fatal(err)
	}
	e.at(380 * day)
	if o := outcome(t, e.run(t, false), "r"); o.Held != 1 {
		t.Errorf("before the hold expires: %+v", o)
	}
	e.at(401 * day)
	if o := outcome(t, e.run(t, false), "r"); o.Deleted != 1 {
		t.Errorf("after the hold expired: %+v", o)
	}
}

// TestPlaceHoldInvalid names each bad member.
func TestPlaceHoldInvalid(t *testing.T) {
	e := newRetEnv(t, "")
	tests := []struct {
		name string
		in   custos.LegalHold
		want string
	}{
		{"unknown scope", custos.LegalHold{Scope: "planet", Reason: "r", Owner: "o"}, "scope"},
		{"customer without subject", custos.LegalHold{Scope: custos.HoldCustomer, Reason: "r", Owner: "o"}, "subject_id"},
		{"unknown category", custos.LegalHold{Scope: custos.HoldCategory, Category: "weather", Reason: "r", Owner: "o"}, "category"},
		{"no reason", custos.LegalHold{Scope: custos.HoldStore, Owner: "o"}, "reason"},
		{"past expiry", custos.LegalHold{Scope: custos.HoldStore, Reason: "r", Owner: "o", ExpiresAt: time.Now().Add(-time.Hour)}, "expires_at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.svc.PlaceHold(e.admin, tt.in)
			ce := custos.AsError(err)
			if ce == nil || ce.Code != custos.EINVALID || len(ce.Violations) == 0 || ce.Violations[0].Field != tt.want {
				t.Errorf("got %v, want invalid naming %s", err, tt.want)
			}
		})
	}
	marketing := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_m", Roles: []string{"marketing"}})
	if _, err := e.svc.PlaceHold(marketing, custos.LegalHold{Scope: custos.HoldStore, Reason: "r", Owner: "o"}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Errorf("marketing placing a hold: got %v, want forbidden", err)
	}
}

// TestAnonymisedNotLinkable: anonymised orders keep amount, month and city
// but nothing that leads back to the customer: no subject id, no record
// id, no blind index, no ciphertext under the customer's key; the originals
// are gone (PIPL Art. 73; S8).
func TestAnonymisedNotLinkable(t *testing.T) {
	e := newRetEnv(t, "") // default transaction-records rule
	sub := e.create(t, map[string]string{"name": "王小明", "mobile": "13900007777", "address": "上海市浦东新区世纪大道1号"})
	rec := e.record(t, sub, "order", e.start.Add(-time.Hour), map[string]any{"order_no": "SO2026000123", "amount": "128.50",
		"currency": "CNY", "channel": "app", "items": []any{map[string]any{"sku": "A1", "name": "茶"}}})
	e.record(t, sub, "logistics", e.start.Add(-time.Hour), map[string]any{"tracking_no": "SF1234567890",
		"location": "上海市浦东新区世纪大道1号", "status": "delivered"})
	var sealed [][]byte
	for _, r := range e.storedRecords(t, sub) {
		sealed = append(sealed, r.Sealed)
	}
	var dk *custos.DataKey
	if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
		dk, err = tx.GetDataKey(context.Background(), sub)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.at(years(3))
	if o := outcome(t, e.run(t, false), "transaction-records"); o.Anonymised != 2 {
		t.Fatalf("anonymised %d, want 2", o.Anonymised)
	}
	if n := len(e.storedRecords(t, sub)); n != 0 {
		t.Errorf("original records left: %d", n)
	}
	var rows []*custos.AnonymisedRecord
	if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
		rows, err = tx.ListAnonymised(context.Background(), "", 100)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("anonymised rows: %d, want 2", len(rows))
	}
	month := e.start.Add(-time.Hour).Format("2006-01")
	byType := map[string]*custos.AnonymisedRecord{}
	for _, r := range rows {
		byType[r.Type] = r
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, linking := range []string{string(sub), string(rec), "SO2026000123", "SF1234567890", "13900007777", "世纪大道", "浦东", "王小明"} {
			if bytes.Contains(b, []byte(linking)) {
				t.Errorf("anonymised row holds %q: %s", linking, b)
			}
		}
		if r.Month != month {
			t.Errorf("month: got %q, want %q", r.Month, month)
		}
		if strings.HasPrefix(r.ID, "rec_") {
			t.Errorf("anonymised row reuses a record id")
		}
	}
	if o := byType["order"]; o == nil || o.Data["amount"] != 128.5 || o.Data["currency"] != "CNY" || o.Data["channel"] != "app" || len(o.Data) != 3 {
		t.Errorf("order statistics: %+v; want amount, currency and channel only", o)
	}
	if l := byType["logistics"]; l == nil || l.Data["location"] != "上海市" {
		t.Errorf("logistics region: %+v; want location reduced to 上海市", l)
	}
	// No ciphertext under the customer's key survives in the rows, and no
	// blind index: the table has no column for either; check the values
	// do not open under the key either.
	aead, err := keys.NewAEAD(mustUnwrap(t, e.ring, dk))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, v := range []string{r.ID, r.Type, r.Category, r.Month, r.Rule} {
			if _, err := aead.Open([]byte(v), nil); err == nil {
				t.Errorf("a column opens under the customer's key")
			}
		}
		b, _ := json.Marshal(r.Data)
		for _, ct := range sealed {
			if bytes.Contains(b, ct[:16]) {
				t.Errorf("anonymised data holds ciphertext")
			}
		}
	}
	// The customer's profile is untouched by a records rule: still linked
	// to nothing in the anonymised table.
	if !e.subjectExists(t, sub) {
		t.Error("records rule removed the customer")
	}
}

func mustUnwrap(t *testing.T, ring *keys.Keyring, dk *custos.DataKey) []byte {
	t.Helper()
	b, err := ring.Unwrap(dk.KEKVersion, dk.Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestCertificateVerify: each run's certificate verifies with the audit
// signing key, names rules and counts but no customer, and fails once
// tampered with (L3).
func TestCertificateVerify(t *testing.T) {
	e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "subject", "period": "30d", "trigger": "account_closure", "action": "delete"}`))
	sub := e.create(t, map[string]string{"name": "王小明", "mobile": "13900005555"})
	if err := e.svc.MarkLifecycle(e.admin, sub, custos.TriggerAccountClosure, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.at(31 * day)
	rep := e.run(t, false)
	if rep.CertificateID == "" {
		t.Fatal("no certificate")
	}
	chk, err := e.svc.VerifyCertificate(e.admin, rep.CertificateID)
	if err != nil {
		t.Fatal(err)
	}
	if !chk.Valid || chk.KeyID != e.signer.KeyID() {
		t.Fatalf("fresh certificate: %+v", chk)
	}
	cert, err := e.svc.FindCertificate(e.admin, rep.CertificateID)
	if err != nil {
		t.Fatal(err)
	}
	var body custos.CertificateBody
	if err := json.Unmarshal(cert.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Totals["deleted"] != 1 || body.ByCategory["customer"]["delete"] != 1 || len(body.Rules) != 1 || body.Methods["delete"] == "" {
		t.Errorf("certificate body: %s", cert.Body)
	}
	for _, pii := range []string{string(sub), "王小明", "13900005555"} {
		if bytes.Contains(cert.Body, []byte(pii)) {
			t.Errorf("certificate holds %q", pii)
		}
	}
	list, err := e.svc.FindCertificates(e.admin)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v, %d", err, len(list))
	}
	// Tamper: a count changed in the stored body.
	tampered := bytes.Replace(cert.Body, []byte(`"deleted":1`), []byte(`"deleted":0`), 1)
	if bytes.Equal(tampered, cert.Body) {
		t.Fatal("test did not tamper")
	}
	if _, err := e.raw(t).Exec(`UPDATE retention_certificates SET body = ? WHERE id = ?`, string(tampered), cert.ID); err != nil {
		t.Fatal(err)
	}
	chk, err = e.svc.VerifyCertificate(e.admin, rep.CertificateID)
	if err != nil {
		t.Fatal(err)
	}
	if chk.Valid || chk.Problem == "" {
		t.Errorf("tampered certificate: %+v; want invalid", chk)
	}
	if _, err := e.svc.VerifyCertificate(e.admin, "cert_none"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("unknown certificate: %v", err)
	}
}

// raw opens the database file directly, as an attacker or a test would.
func (e *retEnv) raw(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", e.db.Path()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// snapshot is everything a dry run must leave alone.
func (e *retEnv) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT id, sealed, updated_at, restricted_until FROM subjects ORDER BY id`,
		`SELECT id, restricted_until FROM records ORDER BY id`,
		`SELECT COUNT(*) FROM anonymised_records`,
		`SELECT COUNT(*) FROM retention_certificates`,
		`SELECT COUNT(*) FROM data_keys`,
		`SELECT COUNT(*) FROM shred_ledger`,
		`SELECT COUNT(*) FROM lookups`,
		`SELECT key, value FROM meta WHERE key = 'retention_cursor'`,
	} {
		rows, err := e.raw(t).Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%v\n", vals)
		}
		rows.Close()
	}
	return b.String()
}

// TestDryRunChangesNothing: a dry run reports per rule what a run would do
// and changes no data (it writes only its own audit event).
func TestDryRunChangesNothing(t *testing.T) {
	e := newRetEnv(t, "")
	a := e.create(t, map[string]string{"name": "王小明", "mobile": "13900006666"})
	loc := "31.2304,121.4737"
	if _, err := e.svc.UpdateSubject(e.admin, []string{"risk-control"}, a, custos.SubjectUpdate{
		Fields: map[string]*string{"precise_location": &loc}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	e.record(t, a, "order", e.start, map[string]any{"amount": "1.00"})
	e.record(t, a, "browsing", e.start, map[string]any{"sku": "A"})
	b := e.create(t, map[string]string{"name": "赵大海"})
	if err := e.svc.MarkLifecycle(e.admin, b, custos.TriggerAccountClosure, time.Time{}); err != nil {
		t.Fatal(err)
	}
	e.at(years(3) + 10*day)
	before := e.snapshot(t)
	audit := e.auditCount(t)
	dry := e.run(t, true)
	if !dry.DryRun || dry.CertificateID != "" {
		t.Errorf("dry report: %+v", dry)
	}
	if got := e.snapshot(t); got != before {
		t.Errorf("dry run changed the store:\nbefore %s\nafter  %s", before, got)
	}
	if n := e.auditCount(t); n != audit+1 {
		t.Errorf("dry run wrote %d audit events, want 1", n-audit)
	}
	// What it announced is what a run does, for rules no earlier rule
	// overlaps (a dry run judges each rule on the unchanged store).
	rep := e.run(t, false)
	for i := range dry.Rules {
		d, r := dry.Rules[i], rep.Rules[i]
		if d.Rule == "inactive-customers" {
			continue
		}
		if d.Deleted != r.Deleted || d.Anonymised != r.Anonymised || d.Restricted != r.Restricted || d.FieldsGone != r.FieldsGone || d.LegalGuard != r.LegalGuard {
			t.Errorf("rule %s: dry %+v, run %+v", d.Rule, d, r)
		}
	}
	if o := outcome(t, dry, "transaction-records"); o.Anonymised != 1 {
		t.Errorf("dry transaction-records: %+v", o)
	}
	if o := outcome(t, dry, "precise-location"); o.FieldsGone != 1 {
		t.Errorf("dry precise-location: %+v", o)
	}
	if o := outcome(t, dry, "closed-accounts"); o.Deleted != 1 {
		t.Errorf("dry closed-accounts: %+v", o)
	}
}

// TestRetentionResume: a run cut short resumes from its saved cursor and
// its certificate counts everything once.
func TestRetentionResume(t *testing.T) {
	e := newRetEnv(t, rulesJSON(`{"name": "r", "target": "records", "category": "behaviour", "period": "1y", "trigger": "collection", "action": "delete"}`))
	sub := e.create(t, map[string]string{"name": "王小明"})
	for range 7 {
		e.record(t, sub, "browsing", e.start, map[string]any{"sku": "A"})
	}
	e.at(years(1) + day)
	ctx, cancel := context.WithCancel(e.admin)
	batches := 0
	_, err := e.svc.RunRetention(ctx, core.RetentionOptions{BatchSize: 2, Progress: func(core.RetentionProgress) {
		batches++
		if batches == 2 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("cancelled run reported success")
	}
	if n := len(e.storedRecords(t, sub)); n != 3 {
		t.Fatalf("after two batches of two: %d records left, want 3", n)
	}
	rep, err := e.svc.RunRetention(e.admin, core.RetentionOptions{BatchSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || outcome(t, rep, "r").Deleted != 7 {
		t.Errorf("resumed run: resumed %v, %+v; want resumed, deleted 7 in all", rep.Resumed, outcome(t, rep, "r"))
	}
	if n := len(e.storedRecords(t, sub)); n != 0 {
		t.Errorf("records left: %d", n)
	}
	// The next run starts afresh.
	rep, err = e.svc.RunRetention(e.admin, core.RetentionOptions{BatchSize: 2})
	if err != nil || rep.Resumed || outcome(t, rep, "r").Deleted != 0 {
		t.Errorf("next run: %v, %+v", err, rep)
	}
}

// TestMarkLifecycle: the hook the account-closure and consent features call.
func TestMarkLifecycle(t *testing.T) {
	e := newRetEnv(t, "")
	sub := e.create(t, map[string]string{"name": "王小明"})
	at := e.start.Add(-time.Hour)
	if err := e.svc.MarkLifecycle(e.admin, sub, custos.TriggerConsentWithdrawal, at); err != nil {
		t.Fatal(err)
	}
	var got map[string]time.Time
	if err := e.db.View(context.Background(), func(tx custos.Tx) (err error) {
		got, err = tx.GetLifecycle(context.Background(), sub)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if !got[custos.TriggerConsentWithdrawal].Equal(at) {
		t.Errorf("lifecycle: %v", got)
	}
	if err := e.svc.MarkLifecycle(e.admin, sub, "birthday", at); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("unknown event: %v", err)
	}
	if err := e.svc.MarkLifecycle(e.admin, "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa", custos.TriggerAccountClosure, at); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("unknown subject: %v", err)
	}
	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{SubjectID: &sub})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range evs {
		found = found || ev.Action == custos.AuditRetentionLifecycle && ev.Reason == custos.TriggerConsentWithdrawal
	}
	if !found {
		t.Error("no lifecycle audit event")
	}
}

// TestGeneralise: each generaliser keeps only what fits it.
func TestGeneralise(t *testing.T) {
	keep := map[string]string{"amount": "number", "currency": "category", "where": "city", "when": "month", "n": "number", "ref": "category"}
	got := core.Generalise(keep, map[string]any{"amount": "12.30", "currency": "CNY", "where": "广东省深圳市南山区科技园",
		"when": "2026-03-15T10:00:00Z", "n": "not a number", "ref": "13900001111", "secret": "x"})
	want := map[string]any{"amount": 12.3, "currency": "CNY", "where": "广东省深圳市", "when": "2026-03"}
	if gb, wb := mustJSON(t, got), mustJSON(t, want); gb != wb {
		t.Errorf("got %s, want %s", gb, wb)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRetentionLockRefuses: an API run while another node holds the
// sweep's lock is refused with a conflict; a dry run still works.
func TestRetentionLockRefuses(t *testing.T) {
	e := newRetEnv(t, "")
	e.svc.RetentionLock = func(context.Context) (func(), bool, error) { return nil, false, nil }
	if _, err := e.svc.RunRetention(e.admin, core.RetentionOptions{}); custos.ErrorCode(err) != custos.ECONFLICT {
		t.Errorf("run while locked: got %v, want conflict", err)
	}
	if _, err := e.svc.RunRetention(e.admin, core.RetentionOptions{DryRun: true}); err != nil {
		t.Errorf("dry run while locked: %v", err)
	}
}

// publishPersonalisation publishes a notice presenting personalisation,
// which browsing and search records rest on (consent, C4).
func publishPersonalisation(t testing.TB, svc *core.Service, admin context.Context) {
	t.Helper()
	if _, err := svc.PublishNotice(admin, custos.NoticeContent{Controller: "Shop", Contact: "dpo@example.com",
		Purposes: []custos.NoticePurpose{{Name: "personalisation", Fields: []string{"gender"}, Records: []string{"order", "browsing", "search"}, Retention: "1 year"}},
		Text:     map[string]custos.NoticeText{"zh-CN": {Title: "隐私", Body: "正文", Rights: "权利"}, "en": {Title: "Privacy", Body: "Body", Rights: "Rights"}}}); err != nil {
		t.Fatal(err)
	}
}

// consentPersonalisation records the customer's consent to personalisation.
func consentPersonalisation(t testing.TB, svc *core.Service, admin context.Context, id custos.SubjectID) {
	t.Helper()
	yes := true
	if _, err := svc.CaptureConsent(admin, id, custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
		Decisions: []custos.ConsentDecision{{Purpose: "personalisation", Granted: &yes}}}); err != nil {
		t.Fatalf("consent: %v", err)
	}
}
