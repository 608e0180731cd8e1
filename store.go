package custos

import (
	"context"
	"time"
)

// Store is the persistence boundary. Adapters (sqlite/, postgres/) implement
// it with plain SQL and no business rules; core/ is the only caller.
// Every method of Tx returns *Error codes: ENOTFOUND for a missing row,
// ECONFLICT for a unique violation, anything else wrapped as EINTERNAL.
type Store interface {
	// Update runs fn in one write transaction; fn's error rolls it back.
	// On SQLite writes are serialised by a single write connection; on
	// PostgreSQL the audit head is locked by AuditHead.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(tx Tx) error) error
	// Close releases the store.
	Close() error
}

// StoredSubject is a subject as stored: every value sealed.
type StoredSubject struct {
	ID        SubjectID
	Sealed    map[string][]byte // field name → ciphertext (AAD binds subject, field, key version)
	CreatedAt time.Time
	UpdatedAt time.Time
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

	InsertRecord(ctx context.Context, r *StoredRecord) error
	// ListRecords returns a subject's records, newest first; typ "" for all.
	ListRecords(ctx context.Context, id SubjectID, typ string) ([]*StoredRecord, error)
	DeleteRecords(ctx context.Context, id SubjectID) (int, error)

	InsertShred(ctx context.Context, e *ShredEntry) error
	ListShreds(ctx context.Context, afterSeq int64) ([]*ShredEntry, error)

	// GetImportRow returns ENOTFOUND if the line was not handled yet.
	GetImportRow(ctx context.Context, job string, line int) (*ImportRow, error)
	InsertImportRow(ctx context.Context, r *ImportRow) error

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
	FindAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	InsertCheckpoint(ctx context.Context, c *AuditCheckpoint) error
	ListCheckpoints(ctx context.Context) ([]*AuditCheckpoint, error)

	// GetMeta returns ENOTFOUND for an unset key.
	GetMeta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
}
