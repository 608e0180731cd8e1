package custos

import (
	"context"
	"errors"
	"time"
)

// Store is the persistence boundary. Adapters (sqlite/, postgres/) implement
// it with plain SQL and no business rules; core/ is the only caller.
// Every method of Tx returns *Error codes: ENOTFOUND for a missing row,
// ECONFLICT for a unique violation, anything else wrapped as EINTERNAL.
type Store interface {
	// Update runs fn in one write transaction; fn's error rolls it back.
	// On SQLite writes are serialised by a single write connection; on
	// PostgreSQL the audit head is locked by AuditHead. Both stores may
	// run several Update calls in one transaction (group commit), and
	// either may run fn again in a new transaction when another member
	// of its group fails (SQLite) or on a deadlock or serialisation
	// failure (PostgreSQL): fn must have no effect outside tx except
	// through what a later run overwrites (assign results, never append
	// to a slice declared outside fn).
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store.
	Close() error
}

// Glancer is implemented by a store that can run a read-only function
// more cheaply than in a transaction of its own: PostgreSQL runs it
// outside a transaction when it reads with one statement (a transaction
// costs two round trips of its own, BEGIN and COMMIT); SQLite runs it on
// a read transaction kept open from an earlier read when no commit since
// changed anything but the audit log (sqlite/kept.go).
type Glancer interface {
	// Glance runs fn as View does, except that the store may first run it
	// outside a transaction or on a kept snapshot; if fn then asks for
	// what that first run cannot answer (a second statement, a write, a
	// statement after a change), that request fails and fn runs again
	// from its start in View, whatever the first run returned. fn must
	// only read, and have no effect outside tx except through what a
	// later run overwrites.
	//
	// Unlike View, Glance may show a commit that is not yet on disk
	// (SQLite syncs its commits beside the writer, sqlite/durable.go).
	// The caller must not answer with what fn read until an Update it
	// begins after Glance returns has returned nil: that commit is made
	// durable only with everything committed before it.
	Glance(ctx context.Context, fn func(tx Tx) error) error
}

// ReadProver is implemented by a store whose Glance may answer from a
// cache that other nodes' writes can make stale (PostgreSQL's read cache,
// postgres/readcache.go). Its caller puts a ReadProof in the context of
// the Glance and of the Update that audits the read (WithReadProof): the
// Glance notes there the cache generation its answer came from, and that
// Update fails with ErrStaleRead, committing nothing for the read, when
// the generation has moved since. The caller must then run the read again
// with Bypass set, and answer with nothing the first run read.
type ReadProver interface {
	Glancer
	ProvesReads()
}

// ReadProof is what a Glance's answer rests on, for a ReadProver.
type ReadProof struct {
	// Gen is the cache generation the Glance answered from; 0: it read
	// the tables.
	Gen int64
	// Bypass has the Glance read the tables whatever its cache holds.
	Bypass bool
}

type readProofKey struct{}

// WithReadProof returns ctx carrying a new, empty ReadProof, and it.
func WithReadProof(ctx context.Context) (context.Context, *ReadProof) {
	p := &ReadProof{}
	return context.WithValue(ctx, readProofKey{}, p), p
}

// ReadProofFrom returns the ReadProof ctx carries, or nil.
func ReadProofFrom(ctx context.Context) *ReadProof {
	p, _ := ctx.Value(readProofKey{}).(*ReadProof)
	return p
}

// ErrStaleRead fails the Update that audits a read a ReadProver answered
// from its cache when the cache generation has moved since (ReadProver).
var ErrStaleRead = errors.New("custos: a read answered from the store's cache is out of date and must run again")

// SubjectPrefetcher is implemented by a read-only Tx that can read many
// subjects, each with its data key and consent history, in one statement
// instead of one each. A batch read (FindSubjectsByID) asks for all its
// subjects first; GetSubject, GetDataKey and ListConsentsFor then answer
// from what was read, in the same snapshot, GetSubject with ENOTFOUND for
// a subject that was not there.
type SubjectPrefetcher interface {
	PrefetchSubjects(ctx context.Context, ids []SubjectID) error
}

// AtEnder is implemented by a Tx that can defer work to the end of its
// transaction, after everything else the transaction does and just before
// it commits. A store that shares one commit among several Update calls
// (PostgreSQL's commit groups) uses it to append their audit events
// together, under one hold of the append lock.
type AtEnder interface {
	// AtEnd registers fn to run in the same transaction once the Update
	// function that registered it has returned nil; registered functions
	// run in the order registered. If that Update function returns an
	// error, fn is dropped and never runs. An error from fn fails the
	// transaction, which then commits nothing, and is returned by every
	// Update call that shared it. fn runs after the Update function has
	// returned, so it must not depend on what that function changes after
	// registering it.
	AtEnd(fn func(tx Tx) error)
}

// NewSubjectInserter is implemented by a Tx that can store a new
// customer's data key, row and blind-index keys in one statement:
// PostgreSQL, where that is one round trip instead of three inside the
// commit group's transaction (BENCHMARKS.md, sixth session). ls are s's
// own keys: they are stored under s.ID whatever their SubjectID. A key that
// exists already gives ECONFLICT naming the data key, the subject or the
// lookup, and what the statement stored stays in the transaction, to be
// undone with the Update function's error as any other write.
//
// In a commit group of Update calls the store may send the statement
// later, with the other members' or the group's end, and return nil at
// once. If it
// then fails, the store runs the whole group again with every statement
// answered where it is made, so the function sees the ECONFLICT then; a
// function must not take a nil here as proof that nothing is taken
// before its transaction commits (Update functions may run more than
// once anyway).
type NewSubjectInserter interface {
	InsertNewSubject(ctx context.Context, k *DataKey, s *StoredSubject, ls []Lookup) error
}

// StoredSubject is a subject as stored: every value sealed.
type StoredSubject struct {
	ID        SubjectID
	Sealed    map[string][]byte // field name → ciphertext (AAD binds subject, field, key version)
	CreatedAt time.Time
	UpdatedAt time.Time
	// RestrictedUntil, when set and in the future, locks the subject: kept,
	// but excluded from every use (retention "restrict" state).
	RestrictedUntil time.Time
}

// StoredRecord is a record as stored; Sealed holds data and provenance.
type StoredRecord struct {
	ID         RecordID
	SubjectID  SubjectID
	Type       string
	Category   string
	OccurredAt time.Time
	CreatedAt  time.Time
	Sealed     []byte
	// RestrictedUntil, when set and in the future, locks the record.
	RestrictedUntil time.Time
}

// DataKey is a subject's data key (DEK), wrapped by master key KEKVersion.
// It lives in a table apart from the data it protects.
type DataKey struct {
	SubjectID  SubjectID
	Version    int // DEK version, bound into every ciphertext's AAD
	KEKVersion int
	Wrapped    []byte
	CreatedAt  time.Time
}

// ShredEntry records one crypto-shredding, so a restore from an older
// backup can re-apply it.
type ShredEntry struct {
	Seq       int64
	SubjectID SubjectID
	ShredAt   time.Time
	Reason    string
	ActorID   PrincipalID
}

// ImportRow remembers that line Line of import job Job was handled, and
// how: a refused line keeps its reasons (never its values), so that a run
// resuming the job can still report it (C5).
type ImportRow struct {
	Job        string
	Line       int
	Status     string
	SubjectID  SubjectID
	Violations []Violation
	Message    string
}

// Lookup is one blind index entry: (Field, Hash) → SubjectID.
type Lookup struct {
	Field     string
	Hash      []byte
	SubjectID SubjectID
}

// StoredConsent is a consent decision as stored: Sealed holds the evidence
// and guardian details (nil when there are none) under the subject's data
// key; everything else is ids, names and times.
type StoredConsent struct {
	Seq           int64
	ID            string
	SubjectID     SubjectID
	Purpose       string
	Scope         string
	Action        string
	NoticeVersion int
	At            time.Time
	Channel       string
	InitiatedBy   string
	ByGuardian    bool
	ActorID       PrincipalID
	Sealed        []byte
}

// Granted reports whether c is a grant.
func (c *StoredConsent) Granted() bool { return c.Action == ConsentGranted }

// StoredRightsRequest is a rights request as stored: Request without its
// Details and Deliveries, and Sealed holding the details under the
// customer's data key (nil when there are none).
type StoredRightsRequest struct {
	Request *RightsRequest
	Sealed  []byte
}

// Tx is one store transaction.
type Tx interface {
	// Now is the transaction's fixed time.
	Now() time.Time

	InsertSubject(ctx context.Context, s *StoredSubject) error
	GetSubject(ctx context.Context, id SubjectID) (*StoredSubject, error)
	UpdateSubject(ctx context.Context, s *StoredSubject) error
	DeleteSubject(ctx context.Context, id SubjectID) error
	CountSubjects(ctx context.Context) (int, error)

	InsertDataKey(ctx context.Context, k *DataKey) error
	GetDataKey(ctx context.Context, id SubjectID) (*DataKey, error)
	UpdateDataKey(ctx context.Context, k *DataKey) error
	DeleteDataKey(ctx context.Context, id SubjectID) error
	// ListDataKeys returns up to limit keys with SubjectID > after, in id order.
	ListDataKeys(ctx context.Context, after SubjectID, limit int) ([]*DataKey, error)
	// CountDataKeysByKEK counts data keys per master key version.
	CountDataKeysByKEK(ctx context.Context) (map[int]int, error)

	// InsertLookup adds a blind index entry. If (field, hash) exists it
	// returns ECONFLICT with ConflictID set to the owning subject.
	InsertLookup(ctx context.Context, field string, hash []byte, id SubjectID) error
	FindLookup(ctx context.Context, field string, hash []byte) (SubjectID, error)
	// DeleteLookups removes a subject's entries for field, or all when field is "".
	DeleteLookups(ctx context.Context, id SubjectID, field string) error

	// Batch forms for an import batch: one statement for many rows (or a
	// few, in chunks), so the single writer spends its time on the rows
	// rather than on statements. Each inserts all of its rows or returns
	// an error; a key that exists already gives ECONFLICT (the caller
	// fails the whole transaction then).
	InsertSubjects(ctx context.Context, ss []*StoredSubject) error
	InsertDataKeys(ctx context.Context, ks []*DataKey) error
	InsertLookups(ctx context.Context, ls []Lookup) error
	// FindLookups returns the owners of those of hashes that field has,
	// keyed by string(hash); a hash nobody has is absent.
	FindLookups(ctx context.Context, field string, hashes [][]byte) (map[string]SubjectID, error)

	InsertRecord(ctx context.Context, r *StoredRecord) error
	// InsertRecords stores many records (an import batch's) in a few
	// statements; ECONFLICT if an id exists.
	InsertRecords(ctx context.Context, rs []*StoredRecord) error
	// ListRecords returns a subject's records, newest first; typ "" for all.
	ListRecords(ctx context.Context, id SubjectID, typ string) ([]*StoredRecord, error)
	DeleteRecords(ctx context.Context, id SubjectID) (int, error)

	// EraseSubjectRows reads subject id as GetSubject does in a write
	// transaction, then deletes it and everything stored with it, as an
	// erasure does (R4, L3): its data key (crypto-shredding), records,
	// blind-index keys, consent history, lifecycle events and the
	// subject row. It returns the subject as it was and how many records
	// it deleted, or ENOTFOUND ("Subject not found.", else "Data key not
	// found.") when either row is missing; the transaction must not
	// commit then. A store may send it all in one round trip.
	EraseSubjectRows(ctx context.Context, id SubjectID) (subject *StoredSubject, records int, err error)

	// InsertShred appends e to the store's shred ledger and sets e.Seq,
	// in increasing order. At a transaction's end (AtEnder) a store may
	// write the entry with the commit and set e.Seq there; should it then
	// fail to learn the seq after a commit that succeeded, e.Seq stays 0
	// and the commit is reported as it went.
	InsertShred(ctx context.Context, e *ShredEntry) error
	ListShreds(ctx context.Context, afterSeq int64) ([]*ShredEntry, error)

	// GetImportRow returns ENOTFOUND if the line was not handled yet.
	GetImportRow(ctx context.Context, job string, line int) (*ImportRow, error)
	InsertImportRow(ctx context.Context, r *ImportRow) error
	// GetImportRows returns the rows of job recorded for lines, by line;
	// a line not handled yet is absent.
	GetImportRows(ctx context.Context, job string, lines []int) (map[int]*ImportRow, error)
	// InsertImportRows records many lines; ECONFLICT if one exists.
	InsertImportRows(ctx context.Context, rs []*ImportRow) error

	InsertPrincipal(ctx context.Context, p *Principal) error
	GetPrincipal(ctx context.Context, id PrincipalID) (*Principal, error)
	ListPrincipals(ctx context.Context) ([]*Principal, error)
	// UpdatePrincipal saves Blocked and Prerequisites. Returns ENOTFOUND.
	UpdatePrincipal(ctx context.Context, p *Principal) error
	InsertAPIKey(ctx context.Context, k *APIKey) error
	// FindAPIKey returns the key with this SHA-256 hash, or ENOTFOUND.
	FindAPIKey(ctx context.Context, hash []byte) (*APIKey, error)

	// InsertPlan stores a plan; ECONFLICT if the id exists.
	InsertPlan(ctx context.Context, p *Plan) error
	// GetPlan returns ENOTFOUND for an unknown id.
	GetPlan(ctx context.Context, id PlanID) (*Plan, error)
	// UpdatePlan saves a plan's review. Returns ENOTFOUND.
	UpdatePlan(ctx context.Context, p *Plan) error
	// ListPlans returns matching plans, oldest first.
	ListPlans(ctx context.Context, f PlanFilter) ([]*Plan, error)

	// InsertGrant stores a data-use request; ECONFLICT if the id exists.
	InsertGrant(ctx context.Context, g *Grant) error
	// GetGrant returns ENOTFOUND for an unknown id.
	GetGrant(ctx context.Context, id GrantID) (*Grant, error)
	// UpdateGrant saves a grant's review and expiry. Returns ENOTFOUND.
	UpdateGrant(ctx context.Context, g *Grant) error
	// ListGrants returns matching grants, oldest first.
	ListGrants(ctx context.Context, f GrantFilter) ([]*Grant, error)

	// AuditHead returns the last event's seq and hash (0, nil when empty),
	// and serialises appenders until the transaction ends.
	AuditHead(ctx context.Context) (int64, []byte, error)
	InsertAuditEvent(ctx context.Context, e *AuditEvent) error
	// InsertAuditEvents stores events already chained by the caller, in
	// order, as InsertAuditEvent would one by one.
	InsertAuditEvents(ctx context.Context, es []*AuditEvent) error
	FindAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	InsertCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	ListCheckpoints(ctx context.Context) ([]*AuditCheckpoint, error)
	// LastCheckpoint returns the checkpoint of the highest seq, or nil
	// when there is none: what the periodic signing needs, without
	// reading every checkpoint (one a thousand events) each time.
	LastCheckpoint(ctx context.Context) (*AuditCheckpoint, error)

	// InsertNotice stores a published notice; ECONFLICT if the version exists.
	InsertNotice(ctx context.Context, n *Notice) error
	// GetNotice returns ENOTFOUND for an unknown version.
	GetNotice(ctx context.Context, version int) (*Notice, error)
	// ListNotices returns every notice, oldest first.
	ListNotices(ctx context.Context) ([]*Notice, error)
	// InsertConsent appends a consent decision and sets c.Seq.
	InsertConsent(ctx context.Context, c *StoredConsent) error
	// InsertConsents appends many consent decisions in order (an import
	// batch's), as InsertConsent would one by one, and sets each Seq;
	// ECONFLICT if an id exists.
	InsertConsents(ctx context.Context, cs []*StoredConsent) error
	// ListConsents returns a subject's consent history in the order it was
	// recorded (empty, not ENOTFOUND, when there is none).
	ListConsents(ctx context.Context, id SubjectID) ([]*StoredConsent, error)
	// ListConsentsFor is ListConsents restricted to the given purposes
	// (the access decision needs only the purposes of the request).
	ListConsentsFor(ctx context.Context, id SubjectID, purposes []string) ([]*StoredConsent, error)
	// DeleteConsents removes a subject's consent history (erasure).
	DeleteConsents(ctx context.Context, id SubjectID) (int, error)
	// LockKey serialises the transactions that lock key until each ends
	// (a PostgreSQL transaction-level advisory lock; on SQLite writes are
	// serialised anyway). Lock keys in one fixed order to avoid deadlock.
	LockKey(ctx context.Context, key string) error

	InsertOTPChallenge(ctx context.Context, c *OTPChallenge) error
	// GetOTPChallenge returns ENOTFOUND for an unknown id.
	GetOTPChallenge(ctx context.Context, id string) (*OTPChallenge, error)
	// UpdateOTPChallenge saves Attempts, Status and DoneAt.
	UpdateOTPChallenge(ctx context.Context, c *OTPChallenge) error
	// CountOTPChallenges counts challenges created at or after f.Since
	// for f.SubjectID or f.ClientHash.
	CountOTPChallenges(ctx context.Context, f OTPFilter) (int, error)
	// DeleteOTPChallenges removes challenges that expired before t.
	DeleteOTPChallenges(ctx context.Context, before time.Time) (int, error)

	// InsertOutboxEvent appends e and sets e.Seq.
	InsertOutboxEvent(ctx context.Context, e *OutboxEvent) error
	GetOutboxEvent(ctx context.Context, id string) (*OutboxEvent, error)
	InsertWebhookRecipient(ctx context.Context, r *WebhookRecipient) error
	GetWebhookRecipient(ctx context.Context, id string) (*WebhookRecipient, error)
	// ListWebhookRecipients returns every recipient, oldest first.
	ListWebhookRecipients(ctx context.Context) ([]*WebhookRecipient, error)
	// SetWebhookRecipientDisabled returns ENOTFOUND for an unknown id.
	SetWebhookRecipientDisabled(ctx context.Context, id string, disabled bool) error
	InsertWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// ListWebhookDeliveries returns an event's deliveries by recipient id.
	ListWebhookDeliveries(ctx context.Context, eventID string) ([]*WebhookDelivery, error)
	// ClaimWebhookDeliveries returns up to limit undelivered deliveries due
	// at now (NextAttemptAt <= now), oldest due first, and moves their
	// NextAttemptAt to leaseUntil, so that no other deliverer claims them
	// meanwhile (on PostgreSQL rows locked by a concurrent claim are
	// skipped).
	ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*WebhookDelivery, error)
	// UpdateWebhookDelivery saves status, attempts, times, code and error.
	UpdateWebhookDelivery(ctx context.Context, d *WebhookDelivery) error
	// ListUnackedWebhookDeliveries returns up to limit deliveries not
	// delivered, not yet alerted, created before t, oldest first.
	ListUnackedWebhookDeliveries(ctx context.Context, before time.Time, limit int) ([]*WebhookDelivery, error)

	InsertRightsRequest(ctx context.Context, r *StoredRightsRequest) error
	// GetRightsRequest returns ENOTFOUND for an unknown id.
	GetRightsRequest(ctx context.Context, id string) (*StoredRightsRequest, error)
	// UpdateRightsRequest saves the request's status, document and seal.
	UpdateRightsRequest(ctx context.Context, r *StoredRightsRequest) error
	// ListRightsRequests returns requests matching f, earliest deadline first.
	ListRightsRequests(ctx context.Context, f RightsFilter) ([]*StoredRightsRequest, error)

	// GetMeta returns ENOTFOUND for an unset key.
	GetMeta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error

	RetentionTx
}

// RetentionTx holds the store methods of retention (L1–L3): lifecycle
// events, restriction, the sweeper's scans, anonymised records, legal
// holds and destruction certificates.
type RetentionTx interface {
	// SetLifecycle records that event happened to subject id at at,
	// replacing an earlier time for the same event.
	SetLifecycle(ctx context.Context, id SubjectID, event string, at time.Time) error
	// GetLifecycle returns the subject's events (empty map when none).
	GetLifecycle(ctx context.Context, id SubjectID) (map[string]time.Time, error)
	// DeleteLifecycle removes a subject's events.
	DeleteLifecycle(ctx context.Context, id SubjectID) error
	// RestrictSubject sets the subject's restricted_until (zero lifts it).
	// Returns ENOTFOUND.
	RestrictSubject(ctx context.Context, id SubjectID, until time.Time) error
	// RestrictRecords sets restricted_until on the records and returns how
	// many exist.
	RestrictRecords(ctx context.Context, ids []RecordID, until time.Time) (int, error)
	// DeleteRecordsByID deletes the records and returns how many existed.
	DeleteRecordsByID(ctx context.Context, ids []RecordID) (int, error)
	// ScanRecords returns up to q.Limit records with id > q.After, in id
	// order, whose type is in q.Types and whose clock is before q.Before.
	ScanRecords(ctx context.Context, q RecordScan) ([]*ScannedRecord, error)
	// ScanSubjects returns up to q.Limit subjects with id > q.After, in id
	// order, whose clock is before q.Before.
	ScanSubjects(ctx context.Context, q SubjectScan) ([]*ScannedSubject, error)
	// SubjectWindowEnd returns the id of the n-th subject after after, in
	// id order, or "" when fewer than n follow: the end of a window of the
	// table that one sweeper transaction goes through (SubjectScan.Through),
	// so that it holds the writer for a bounded time however few of the
	// customers are due.
	SubjectWindowEnd(ctx context.Context, after SubjectID, n int) (SubjectID, error)
	// RecordWindowEnd is SubjectWindowEnd for records (RecordScan.Through).
	RecordWindowEnd(ctx context.Context, after RecordID, n int) (RecordID, error)
	// InsertAnonymised stores anonymised records. ECONFLICT on a taken id.
	InsertAnonymised(ctx context.Context, rows []*AnonymisedRecord) error
	// ListAnonymised returns up to limit rows with id > after, in id order.
	ListAnonymised(ctx context.Context, after string, limit int) ([]*AnonymisedRecord, error)
	// InsertHold stores a legal hold. ECONFLICT on a taken id.
	InsertHold(ctx context.Context, h *LegalHold) error
	// GetHold returns the hold, or ENOTFOUND.
	GetHold(ctx context.Context, id string) (*LegalHold, error)
	// ListHolds returns every hold, oldest first (then by id).
	ListHolds(ctx context.Context) ([]*LegalHold, error)
	// ReleaseHold marks an unreleased hold released. ENOTFOUND when there
	// is no such hold or it is already released.
	ReleaseHold(ctx context.Context, id string, at time.Time, by PrincipalID) error
	// InsertCertificate stores a destruction certificate. ECONFLICT on a taken id.
	InsertCertificate(ctx context.Context, c *RetentionCertificate) error
	// GetCertificate returns the certificate, or ENOTFOUND.
	GetCertificate(ctx context.Context, id string) (*RetentionCertificate, error)
	// ListCertificates returns every certificate, oldest first (then by id).
	ListCertificates(ctx context.Context) ([]*RetentionCertificate, error)
}

// Clocks a retention scan compares with its cutoff.
const (
	ClockCreated      = "created_at"  // record or subject creation
	ClockOccurred     = "occurred_at" // record occurrence (transaction completion)
	ClockLastActivity = "last_activity"
	// Any lifecycle event name (account_closure, consent_withdrawal) is a
	// clock too: the subject's recorded time of that event.
)

// RecordScan selects records for the sweeper.
type RecordScan struct {
	Types  []string
	Clock  string // ClockCreated, ClockOccurred or a lifecycle event
	Before time.Time
	After  RecordID
	Limit  int
	// Through, when set, ends the scan at that id, included (a window,
	// Tx.RecordWindowEnd).
	Through RecordID
}

// ScannedRecord is a record found by ScanRecords, with its clock's time.
type ScannedRecord struct {
	StoredRecord
	Clock time.Time
}

// SubjectScan selects subjects for the sweeper.
type SubjectScan struct {
	Clock  string // ClockCreated, ClockLastActivity or a lifecycle event
	Before time.Time
	After  SubjectID
	Limit  int
	// Through, when set, ends the scan at that id, included (a window,
	// Tx.SubjectWindowEnd).
	Through SubjectID
}

// ScannedSubject is a subject found by ScanSubjects (no sealed data).
type ScannedSubject struct {
	ID              SubjectID
	CreatedAt       time.Time
	RestrictedUntil time.Time
	Clock           time.Time
}
