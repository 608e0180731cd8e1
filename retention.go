package custos

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Retention targets: what a rule destroys, anonymises or restricts (L1).
const (
	TargetRecords           = "records"            // records of the rule's types or category
	TargetSubject           = "subject"            // the whole customer (profile and records)
	TargetFields            = "fields"             // some profile fields of a customer
	TargetAudit             = "audit"              // the audit log (kept; floor checked only)
	TargetSharing           = "sharing"            // records of sharing with other processors (kept; floor checked only)
	TargetProcessingRecords = "processing_records" // impact assessments and processing records (kept; floor checked only)
)

// Lifecycle events a retention period counts from.
const (
	TriggerCollection            = "collection"             // subject or record created_at
	TriggerLastActivity          = "last_activity"          // latest write to the subject or its records
	TriggerTransactionCompletion = "transaction_completion" // a transaction record's occurred_at
	TriggerAccountClosure        = "account_closure"        // marked by the account-closure feature
	TriggerConsentWithdrawal     = "consent_withdrawal"     // marked by the consent feature
)

// Triggers lists every lifecycle event a rule may count from.
var Triggers = []string{TriggerCollection, TriggerLastActivity, TriggerTransactionCompletion,
	TriggerAccountClosure, TriggerConsentWithdrawal}

// LifecycleEvents are the events MarkLifecycle records per subject.
var LifecycleEvents = []string{TriggerAccountClosure, TriggerConsentWithdrawal, TriggerLastActivity}

// Actions at expiry.
const (
	ActionDelete    = "delete"    // crypto-shred / row delete
	ActionAnonymise = "anonymise" // keep statistics in an unlinked table, destroy the original
	ActionRestrict  = "restrict"  // keep, locked and excluded from every use, then delete
)

// Generalisers an anonymise rule applies to the data attributes it keeps.
const (
	KeepNumber   = "number"   // a number (or numeric string) kept as is
	KeepCategory = "category" // a short code (currency, channel, status) kept as is
	KeepCity     = "city"     // an address or region cut down to its city (…市)
	KeepMonth    = "month"    // a date or time truncated to YYYY-MM
)

// Period is a retention period in calendar years, months and days. Its JSON
// form is a string such as "3y", "6m", "30d" or "1y6m".
type Period struct {
	Years, Months, Days int
}

var periodRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?$`)

// ParsePeriod parses "3y", "6m", "30d", "1y6m" … Returns EINVALID.
func ParsePeriod(s string) (Period, error) {
	m := periodRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil || strings.TrimSpace(s) == "" {
		return Period{}, Errorf(EINVALID, "period %q: want a number of years, months and days such as 3y, 6m, 30d or 1y6m", s)
	}
	var p Period
	for i, dst := range []*int{&p.Years, &p.Months, &p.Days} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		if err != nil || n > 100000 {
			return Period{}, Errorf(EINVALID, "period %q: number too large", s)
		}
		*dst = n
	}
	return p, nil
}

// String returns the period in its JSON form ("0d" when zero).
func (p Period) String() string {
	var b strings.Builder
	for _, part := range []struct {
		n    int
		unit string
	}{{p.Years, "y"}, {p.Months, "m"}, {p.Days, "d"}} {
		if part.n != 0 {
			b.WriteString(strconv.Itoa(part.n) + part.unit)
		}
	}
	if b.Len() == 0 {
		return "0d"
	}
	return b.String()
}

// IsZero reports a zero period.
func (p Period) IsZero() bool { return p == Period{} }

// After returns t plus the period.
func (p Period) After(t time.Time) time.Time { return t.AddDate(p.Years, p.Months, p.Days) }

// Before returns t minus the period: data whose clock is before it has expired.
func (p Period) Before(t time.Time) time.Time { return t.AddDate(-p.Years, -p.Months, -p.Days) }

// periodRef is the date periods are compared at.
var periodRef = time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)

// AtLeast reports whether p is at least q long (compared from a fixed date,
// so 36m equals 3y).
func (p Period) AtLeast(q Period) bool { return !p.After(periodRef).Before(q.After(periodRef)) }

// MarshalJSON writes the period as a string.
func (p Period) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads "3y", "6m", "30d", "1y6m" …
func (p *Period) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("period: want a string such as \"3y\"")
	}
	q, err := ParsePeriod(s)
	if err != nil {
		return err
	}
	*p = q
	return nil
}

// RetentionFloor is a legal minimum retention period (RULES.md).
type RetentionFloor struct {
	Name   string `json:"name"`
	Data   string `json:"data"`
	Min    Period `json:"min"`
	From   string `json:"from"`
	Source string `json:"source"`
}

// Legal minimum floors. A rule covering such data with a shorter period is
// refused when rules are loaded; the sweeper also never destroys a
// transaction record before its floor has passed from completion, whatever
// rule reaches it (a whole-customer deletion restricts the customer instead).
var (
	FloorTransaction = RetentionFloor{Name: "transaction", Data: "transaction information (orders, payments, goods and services)",
		Min: Period{Years: 3}, From: TriggerTransactionCompletion, Source: "E-commerce Law Art. 31"}
	FloorAudit = RetentionFloor{Name: "audit", Data: "network and access logs, including the audit log",
		Min: Period{Months: 6}, From: TriggerCollection, Source: "Cybersecurity Law Art. 21 (Art. 23 from 2026)"}
	FloorSharing = RetentionFloor{Name: "sharing", Data: "records of sharing with or entrusting to other processors",
		Min: Period{Years: 3}, From: TriggerCollection, Source: "NDSMR Art. 12"}
	FloorProcessingRecords = RetentionFloor{Name: "processing_records", Data: "impact assessments and processing records",
		Min: Period{Years: 3}, From: TriggerCollection, Source: "PIPL Art. 56"}
)

// RetentionFloors lists every legal minimum.
var RetentionFloors = []RetentionFloor{FloorTransaction, FloorAudit, FloorSharing, FloorProcessingRecords}

// RetentionRule says how long some data is kept, from which event, and what
// happens at expiry (L1, L2).
type RetentionRule struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Target      string   `json:"target"`
	Category    string   `json:"category,omitempty"`     // records or fields of this category
	RecordTypes []string `json:"record_types,omitempty"` // records of these types
	Fields      []string `json:"fields,omitempty"`       // profile fields (target fields)
	Period      Period   `json:"period"`
	Trigger     string   `json:"trigger"`
	Action      string   `json:"action"`
	// RestrictFor is, for action restrict, how long the data stays locked
	// after expiry before it is deleted.
	RestrictFor Period `json:"restrict_for,omitzero"`
	// Keep names, for action anonymise, the data attributes kept and how
	// each is generalised (number, category, city, month); everything else
	// is dropped.
	Keep map[string]string `json:"keep,omitempty"`
}

// Covers reports whether the rule's records include record type rt.
func (r *RetentionRule) Covers(rt string) bool { return slices.Contains(r.RecordTypes, rt) }

// RetentionPolicy is the set of retention rules in force.
type RetentionPolicy struct {
	Version string          `json:"version"`
	Rules   []RetentionRule `json:"rules"`
}

// Rule returns the rule named name, or nil.
func (p *RetentionPolicy) Rule(name string) *RetentionRule {
	for i := range p.Rules {
		if p.Rules[i].Name == name {
			return &p.Rules[i]
		}
	}
	return nil
}

//go:embed retention_default.json
var defaultRetention []byte

// DefaultRetention returns the embedded rules, which follow RULES.md.
func DefaultRetention(cat *Catalog) *RetentionPolicy {
	p, err := ParseRetention(strings.NewReader(string(defaultRetention)), cat)
	if err != nil {
		panic("custos: embedded retention rules are invalid: " + err.Error())
	}
	return p
}

// ParseRetention reads retention rules in JSON and checks them against the
// catalog and the legal floors. A rule below a legal minimum is refused with
// EINVALID naming the rule, the floor and its source.
func ParseRetention(r io.Reader, cat *Catalog) (*RetentionPolicy, error) {
	var p RetentionPolicy
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, Errorf(EINVALID, "retention rules: %v", err)
	}
	if err := p.Check(cat); err != nil {
		return nil, err
	}
	return &p, nil
}

// Check validates every rule and resolves a rule's category into its record
// types or fields. Returns EINVALID with one violation per problem.
func (p *RetentionPolicy) Check(cat *Catalog) error {
	var vs []Violation
	seen := map[string]bool{}
	for i := range p.Rules {
		vs = append(vs, p.Rules[i].check(cat, fmt.Sprintf("rules[%d]", i), seen)...)
	}
	if len(vs) == 0 {
		return nil
	}
	msg := "Retention rules refused: " + vs[0].Detail
	if len(vs) > 1 {
		msg += fmt.Sprintf(" (and %d more)", len(vs)-1)
	}
	return &Error{Code: EINVALID, Message: msg, Violations: vs}
}

func (r *RetentionRule) check(cat *Catalog, at string, seen map[string]bool) []Violation {
	var vs []Violation
	bad := func(field, rule, format string, args ...any) {
		vs = append(vs, Violation{Field: at + "." + field, Rule: rule, Detail: fmt.Sprintf("rule %q: ", r.Name) + fmt.Sprintf(format, args...)})
	}
	if r.Name == "" || seen[r.Name] || len(r.Name) > 100 {
		bad("name", "required", "a unique name of at most 100 bytes is required")
	}
	seen[r.Name] = true
	if !slices.Contains(Triggers, r.Trigger) {
		bad("trigger", "enum", "trigger %q is not one of %s", r.Trigger, strings.Join(Triggers, ", "))
	}
	switch r.Action {
	case ActionDelete, ActionAnonymise, ActionRestrict:
	default:
		bad("action", "enum", "action %q is not one of delete, anonymise, restrict", r.Action)
	}
	if r.Action == ActionRestrict && r.RestrictFor.IsZero() {
		bad("restrict_for", "required", "action restrict needs restrict_for: how long the data stays locked before deletion")
	}
	if r.Action != ActionRestrict && !r.RestrictFor.IsZero() {
		bad("restrict_for", "not_allowed", "restrict_for applies to action restrict only")
	}
	if r.Action != ActionAnonymise && len(r.Keep) > 0 {
		bad("keep", "not_allowed", "keep applies to action anonymise only")
	}
	for _, k := range slices.Sorted(maps.Keys(r.Keep)) {
		switch r.Keep[k] {
		case KeepNumber, KeepCategory, KeepCity, KeepMonth:
		default:
			bad("keep."+k, "enum", "generaliser %q is not one of number, category, city, month", r.Keep[k])
		}
	}
	if r.Category != "" && !slices.Contains(Categories, r.Category) {
		bad("category", "enum", "unknown category %q", r.Category)
	}
	var floor *RetentionFloor
	switch r.Target {
	case TargetRecords:
		if len(r.RecordTypes) == 0 && r.Category == "" {
			bad("record_types", "required", "name record_types or a category")
		}
		if len(r.Fields) > 0 {
			bad("fields", "not_allowed", "fields apply to target fields only")
		}
		for _, rt := range r.RecordTypes {
			def := cat.RecordType(rt)
			if def == nil {
				bad("record_types", "unknown", "unknown record type %q", rt)
			} else if r.Category != "" && def.Category != r.Category {
				bad("record_types", "category", "record type %q is not in category %q", rt, r.Category)
			}
		}
		if len(r.RecordTypes) == 0 && r.Category != "" {
			for _, rt := range cat.RecordTypes {
				if rt.Category == r.Category {
					r.RecordTypes = append(r.RecordTypes, rt.Name)
				}
			}
			if len(r.RecordTypes) == 0 {
				bad("category", "empty", "no record type of the catalog is in category %q", r.Category)
			}
		}
		transaction := false
		for _, rt := range r.RecordTypes {
			if def := cat.RecordType(rt); def != nil && def.Category == CatTransaction {
				transaction = true
			} else if r.Trigger == TriggerTransactionCompletion {
				bad("trigger", "transaction_only", "transaction_completion applies to transaction records only, not %q", rt)
			}
		}
		if transaction {
			floor = &FloorTransaction
		}
		if r.Trigger == TriggerLastActivity {
			bad("trigger", "subject_only", "last_activity applies to subject and fields rules")
		}
	case TargetSubject, TargetFields:
		if len(r.RecordTypes) > 0 {
			bad("record_types", "not_allowed", "record_types apply to target records only")
		}
		if r.Trigger == TriggerTransactionCompletion {
			bad("trigger", "records_only", "transaction_completion applies to transaction records only")
		}
		if r.Target == TargetSubject {
			if r.Category != "" || len(r.Fields) > 0 {
				bad("target", "whole_subject", "a subject rule covers the whole customer; use target fields or records for parts")
			}
			break
		}
		if r.Action != ActionDelete {
			bad("action", "fields_delete_only", "a fields rule can only delete the fields (anonymise or restrict the records or the whole subject instead)")
		}
		for _, f := range r.Fields {
			if def := cat.Field(f); def == nil {
				bad("fields", "unknown", "unknown field %q", f)
			} else if r.Category != "" && def.Category != r.Category {
				bad("fields", "category", "field %q is not in category %q", f, r.Category)
			}
		}
		if len(r.Fields) == 0 && r.Category != "" {
			for _, f := range cat.Fields {
				if f.Category == r.Category {
					r.Fields = append(r.Fields, f.Name)
				}
			}
		}
		if len(r.Fields) == 0 {
			bad("fields", "required", "name fields or a category with fields")
		}
	case TargetAudit:
		floor = &FloorAudit
	case TargetSharing:
		floor = &FloorSharing
	case TargetProcessingRecords:
		floor = &FloorProcessingRecords
	default:
		bad("target", "enum", "target %q is not one of records, subject, fields, audit, sharing, processing_records", r.Target)
	}
	if r.Period.IsZero() && r.Trigger == TriggerCollection {
		bad("period", "required", "a period counted from collection must not be zero")
	}
	if floor != nil && !r.Period.AtLeast(floor.Min) {
		bad("period", "legal_minimum", "period %s is below the legal minimum of %s for %s (%s)", r.Period, floor.Min, floor.Data, floor.Source)
	}
	return vs
}

// Legal holds (L3).
const (
	HoldCustomer = "customer" // one customer's data
	HoldCategory = "category" // one category of data, for every customer
	HoldStore    = "store"    // everything
)

// LegalHold stops the destruction (delete, anonymise) of what it covers
// until it is released or expires. Reason and owner are staff text: never
// put a customer's personal data in them.
type LegalHold struct {
	ID         string      `json:"id"`
	Scope      string      `json:"scope"`
	SubjectID  SubjectID   `json:"subject_id,omitempty"`
	Category   string      `json:"category,omitempty"`
	Reason     string      `json:"reason"`
	Owner      string      `json:"owner"`
	CreatedAt  time.Time   `json:"created_at"`
	CreatedBy  PrincipalID `json:"created_by"`
	ExpiresAt  time.Time   `json:"expires_at,omitzero"`
	ReleasedAt time.Time   `json:"released_at,omitzero"`
	ReleasedBy PrincipalID `json:"released_by,omitempty"`
}

// Active reports whether the hold is in force at t.
func (h *LegalHold) Active(t time.Time) bool {
	return h.ReleasedAt.IsZero() && (h.ExpiresAt.IsZero() || t.Before(h.ExpiresAt))
}

// Holds reports whether the hold, if active at t, covers data of category
// cat belonging to subject sub.
func (h *LegalHold) Holds(t time.Time, sub SubjectID, cat string) bool {
	if !h.Active(t) {
		return false
	}
	switch h.Scope {
	case HoldStore:
		return true
	case HoldCustomer:
		return h.SubjectID == sub
	case HoldCategory:
		return h.Category == cat
	}
	return false
}

// AnonymisedRecord is a record's statistical residue after anonymisation:
// no subject id, no record id, no sealed data, no blind index; the month
// only, and the attributes its rule keeps, generalised (PIPL Art. 73).
type AnonymisedRecord struct {
	ID       string         `json:"id"`
	Type     string         `json:"type"`
	Category string         `json:"category"`
	Month    string         `json:"month"` // YYYY-MM of occurred_at
	Data     map[string]any `json:"data"`
	Rule     string         `json:"rule"`
}

// RetentionCertificate is the signed record of one retention run (L3): what
// was destroyed, how, under which rules, and what holds kept back. It holds
// counts only, never personal data or customer ids.
type RetentionCertificate struct {
	ID         string    `json:"id"`
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	AsOf       time.Time `json:"as_of"` // the time expiry was judged at
	// Body is the canonical JSON of CertificateBody that was signed.
	Body      json.RawMessage `json:"body"`
	KeyID     string          `json:"key_id"`
	Signature []byte          `json:"signature"`
}

// CertificateBody is what a certificate attests; it is signed as JSON.
type CertificateBody struct {
	Format     string                    `json:"format"`
	ID         string                    `json:"id"`
	RunID      string                    `json:"run_id"`
	StartedAt  time.Time                 `json:"started_at"`
	FinishedAt time.Time                 `json:"finished_at"`
	AsOf       time.Time                 `json:"as_of"`
	Rules      []RuleOutcome             `json:"rules"`
	ByCategory map[string]map[string]int `json:"by_category"` // category → method → items
	Holds      []HoldOutcome             `json:"holds"`
	Methods    map[string]string         `json:"methods"` // action → how it was done
	Totals     map[string]int            `json:"totals"`
}

// RuleOutcome counts what one rule did (or, in a dry run, would do).
type RuleOutcome struct {
	Rule        string `json:"rule"`
	Target      string `json:"target"`
	Trigger     string `json:"trigger"`
	Period      string `json:"period"`
	Action      string `json:"action"`
	Deleted     int    `json:"deleted"`
	Anonymised  int    `json:"anonymised"`
	Restricted  int    `json:"restricted"`
	FieldsGone  int    `json:"fields_deleted,omitempty"`
	Held        int    `json:"held"`         // kept back by a legal hold
	LegalGuard  int    `json:"legal_guard"`  // restricted instead: a legal minimum still runs
	StillLocked int    `json:"still_locked"` // restricted and not yet due
}

// HoldOutcome says how many items a hold kept back in a run.
type HoldOutcome struct {
	HoldID string `json:"hold_id"`
	Scope  string `json:"scope"`
	Held   int    `json:"held"`
}

// RetentionReport is the result of a run or a dry run.
type RetentionReport struct {
	RunID         string        `json:"run_id,omitempty"`
	DryRun        bool          `json:"dry_run"`
	AsOf          time.Time     `json:"as_of"`
	Resumed       bool          `json:"resumed,omitempty"`
	Rules         []RuleOutcome `json:"rules"`
	Holds         []HoldOutcome `json:"holds"`
	CertificateID string        `json:"certificate_id,omitempty"`
}

// RetentionCursor is a run's persisted position, so an interrupted run
// resumes where it stopped (and its certificate counts everything).
type RetentionCursor struct {
	RunID     string          `json:"run_id"`
	StartedAt time.Time       `json:"started_at"`
	AsOf      time.Time       `json:"as_of"`
	Rule      int             `json:"rule"`  // index of the rule in progress
	After     string          `json:"after"` // last id handled in that rule
	Report    RetentionReport `json:"report"`
	// HoldCounts counts held items per hold id.
	HoldCounts map[string]int            `json:"hold_counts"`
	ByCategory map[string]map[string]int `json:"by_category"`
}

// ActRetentionManage lets a role read retention rules, run the sweeper and
// place or release legal holds.
const ActRetentionManage = "retention.manage"

// Audit actions of retention.
const (
	AuditRetentionSweep     = "retention.sweep"     // one batch of record-level actions (counts)
	AuditRetentionExpire    = "retention.expire"    // one customer deleted, anonymised, restricted or trimmed
	AuditRetentionRun       = "retention.run"       // a run finished; its certificate id
	AuditRetentionDryRun    = "retention.dry_run"   // a dry run (nothing changed)
	AuditRetentionLifecycle = "retention.lifecycle" // a lifecycle event marked
	AuditRetentionRules     = "retention.rules"     // a refused attempt to read the rules
	AuditHoldPlace          = "legalhold.place"
	AuditHoldRelease        = "legalhold.release"
	AuditHoldList           = "legalhold.list" // a refused attempt to list holds
)

// DefaultRetentionJSON returns a copy of the embedded default rules file.
func DefaultRetentionJSON() []byte { return slices.Clone(defaultRetention) }
