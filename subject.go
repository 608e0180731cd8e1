package custos

import (
	"context"
	"time"
)

// SubjectID identifies a customer (data subject). Random, prefixed "sub_".
type SubjectID string

// RecordID identifies a record. Random, prefixed "rec_".
type RecordID string

// Provenance says where collected values came from (C6).
type Provenance struct {
	Collector string    `json:"collector"`          // who collected (staff or system id)
	Channel   string    `json:"channel"`            // app, web, pos, crm, import, …
	Location  string    `json:"location,omitempty"` // store, site or region
	Source    string    `json:"source"`             // the customer, a partner, a system log …
	Plan      string    `json:"plan,omitempty"`     // collection plan id (issue: collection plans)
	Time      time.Time `json:"time"`
}

// Outcome of the access decision for one field.
type Outcome string

// Outcomes.
const (
	Plain  Outcome = "plain"
	Masked Outcome = "masked"
	Denied Outcome = "denied"
)

// FieldDecision is the access decision for one field, with a reason code.
type FieldDecision struct {
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason"`
}

// Subject is a customer as returned to a caller: Fields holds the values the
// access decision allowed (plain or masked); Decisions holds a decision for
// every field the subject has.
type Subject struct {
	ID         SubjectID                `json:"id"`
	Fields     map[string]string        `json:"fields"`
	Decisions  map[string]FieldDecision `json:"decisions,omitempty"`
	Provenance map[string]Provenance    `json:"provenance,omitempty"` // per field, when the caller may see it
	CreatedAt  time.Time                `json:"created_at"`
	UpdatedAt  time.Time                `json:"updated_at"`
	// ConsentReceipt is the signed receipt of a consent captured with the
	// subject's creation (NewSubject.Consent).
	ConsentReceipt *ConsentReceipt `json:"consent_receipt,omitempty"`
}

// NewSubject is the input to CreateSubject. Fields are raw, unvalidated values.
type NewSubject struct {
	Fields     map[string]string `json:"fields"`
	Provenance Provenance        `json:"provenance"`
	// Consent, when given, is captured in the same transaction as the
	// subject: a sign-up form collects fields for a consent-based purpose
	// together with the consent to it (C4).
	Consent *ConsentCapture `json:"consent,omitempty"`
}

// SubjectUpdate corrects fields. A nil value removes the field.
type SubjectUpdate struct {
	Fields     map[string]*string `json:"fields"`
	Provenance Provenance         `json:"provenance"`
}

// Record is an order, payment, event, ticket … appended to a subject.
type Record struct {
	ID         RecordID       `json:"id"`
	SubjectID  SubjectID      `json:"subject_id"`
	Type       string         `json:"type"`
	Category   string         `json:"category"`
	OccurredAt time.Time      `json:"occurred_at"`
	CreatedAt  time.Time      `json:"created_at"`
	Data       map[string]any `json:"data,omitempty"`
	Decision   *FieldDecision `json:"decision,omitempty"`
	Provenance Provenance     `json:"provenance"`
}

// NewRecord is the input to CreateRecord.
type NewRecord struct {
	Type       string         `json:"type"`
	OccurredAt time.Time      `json:"occurred_at"`
	Data       map[string]any `json:"data"`
	Provenance Provenance     `json:"provenance"`
}

// ErasureReceipt is what an erasure leaves behind: no personal data, only
// proof that the subject's key was destroyed.
type ErasureReceipt struct {
	SubjectID SubjectID `json:"subject_id"`
	ErasedAt  time.Time `json:"erased_at"`
	Reason    string    `json:"reason"`
	Records   int       `json:"records"`
}

// ReadBatchMax is the most subjects one batch read (FindSubjectsByID,
// POST /v1/subjects/read) may name: a page of a customer-service list or a
// sync step, small enough that one request stays short and a bulk download
// still takes many requests, each audited per subject.
const ReadBatchMax = 100

// SubjectRead is one subject of a batch read: the subject as
// FindSubjectByID returns it, or, in Err, the error it would have returned
// for that subject alone (ENOTFOUND, EFORBIDDEN).
type SubjectRead struct {
	ID      SubjectID
	Subject *Subject
	Err     error
}

// SubjectService stores and reads customers. Every method takes the acting
// principal from ctx (ActorFromContext) and the declared purposes, runs the
// access decision, and writes one audit event in the same transaction.
type SubjectService interface {
	// CreateSubject validates, normalises, seals and stores a customer.
	// Returns EINVALID listing each refused field, ECONFLICT with the
	// existing id when a lookup key is taken, EFORBIDDEN.
	CreateSubject(ctx context.Context, purposes []string, in NewSubject) (*Subject, error)
	// FindSubjectByID returns the subject with each field plain, masked or
	// left out. Returns ENOTFOUND, EFORBIDDEN.
	FindSubjectByID(ctx context.Context, purposes []string, id SubjectID) (*Subject, error)
	// FindSubjectsByID reads up to ReadBatchMax subjects at once, each as
	// FindSubjectByID would, with one audit event per subject; the results
	// follow the order of ids. A subject that cannot be read (not found,
	// restricted) is a result with Err, not a failed call. Returns EINVALID
	// for an empty, oversized, duplicated or malformed list, EFORBIDDEN when
	// the decision refuses the request as a whole (every subject is then
	// audited as refused).
	FindSubjectsByID(ctx context.Context, purposes []string, ids []SubjectID) ([]SubjectRead, error)
	// FindSubjectByLookup finds a subject by a lookup field's value through
	// its blind index. Returns ENOTFOUND, EINVALID, EFORBIDDEN.
	FindSubjectByLookup(ctx context.Context, purposes []string, field, value string) (*Subject, error)
	// UpdateSubject corrects fields (validated again). Returns EINVALID,
	// ENOTFOUND, ECONFLICT, EFORBIDDEN.
	UpdateSubject(ctx context.Context, purposes []string, id SubjectID, upd SubjectUpdate) (*Subject, error)
	// EraseSubject crypto-shreds a subject. Returns ENOTFOUND, EFORBIDDEN.
	EraseSubject(ctx context.Context, purposes []string, id SubjectID, reason string) (*ErasureReceipt, error)
	// CreateRecord appends a record. Returns EINVALID, ENOTFOUND, EFORBIDDEN.
	CreateRecord(ctx context.Context, purposes []string, id SubjectID, in NewRecord) (*Record, error)
	// FindRecords lists a subject's records the purposes allow, newest first.
	FindRecords(ctx context.Context, purposes []string, id SubjectID, typ string) ([]*Record, error)
	// ImportRow stores one row of import job job at line; a row already
	// stored by that job is reported with Status "already" and not stored twice.
	ImportRow(ctx context.Context, purposes []string, job string, line int, in NewSubject) (*ImportResult, error)
}

// ImportResult is the outcome of one imported row.
type ImportResult struct {
	Line      int       `json:"line"`
	Status    string    `json:"status"` // stored, already, duplicate, rejected
	SubjectID SubjectID `json:"subject_id,omitempty"`
	// Previous is, for Status "already", the status the earlier run gave
	// the line; Violations and Message then are that run's reasons.
	Previous   string      `json:"previous,omitempty"`
	Violations []Violation `json:"errors,omitempty"`
	Message    string      `json:"message,omitempty"`
	// ConsentReceipt is, for a row stored with a consent captured
	// (NewSubject.Consent), the signed receipt of that consent, as
	// CreateSubject returns it: the importing system hands it to the
	// customer (C4). Not kept by custos, so a line answered "already"
	// has none.
	ConsentReceipt *ConsentReceipt `json:"consent_receipt,omitempty"`
}

// Import row statuses.
const (
	ImportStored    = "stored"
	ImportAlready   = "already"   // stored by an earlier run of the same job
	ImportDuplicate = "duplicate" // a lookup key matched an existing subject
	ImportRejected  = "rejected"
)
