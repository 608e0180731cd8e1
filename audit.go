package custos

import (
	"context"
	"time"
)

// Audit actions.
const (
	AuditSubjectCreate   = "subject.create"
	AuditSubjectRead     = "subject.read"
	AuditSubjectLookup   = "subject.lookup"
	AuditSubjectUpdate   = "subject.update"
	AuditSubjectErase    = "subject.erase"
	AuditRecordCreate    = "record.create"
	AuditRecordRead      = "record.read"
	AuditSubjectImport   = "subject.import"
	AuditPrincipalCreate = "principal.create"
	AuditPrincipalList   = "principal.list"
	AuditAPIKeyCreate    = "apikey.create"
	AuditAuditRead       = "audit.read"
	AuditKeysRotate      = "keys.rotate"
	AuditKeysRetire      = "keys.retire"
	AuditInit            = "system.init"
	AuditAuthFailed      = "auth.failed"
	AuditNoticePublish   = "notice.publish"
	AuditConsentCapture  = "consent.capture"
	AuditConsentWithdraw = "consent.withdraw"
	AuditConsentRead     = "consent.read"
)

// Decisions recorded in audit events.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// AuditEvent is one entry of the hash-chained audit log. It never holds a
// value: only ids, field names, purposes and decisions (S5).
type AuditEvent struct {
	Seq       int64       `json:"seq"`
	Time      time.Time   `json:"time"`
	ActorID   PrincipalID `json:"actor_id"`
	Action    string      `json:"action"`
	SubjectID SubjectID   `json:"subject_id,omitempty"`
	Fields    []string    `json:"fields,omitempty"`
	Purposes  []string    `json:"purposes,omitempty"`
	Decision  string      `json:"decision"`
	Reason    string      `json:"reason,omitempty"`
	RequestID string      `json:"request_id,omitempty"`
	PrevHash  []byte      `json:"prev_hash"`
	Hash      []byte      `json:"hash"`
}

// AuditCheckpoint is an Ed25519 signature over the chain head at Seq.
type AuditCheckpoint struct {
	Seq       int64     `json:"seq"`
	Hash      []byte    `json:"hash"`
	Time      time.Time `json:"time"`
	KeyID     string    `json:"key_id"`
	Signature []byte    `json:"signature"`
}

// AuditFilter selects audit events. Nil fields match everything.
type AuditFilter struct {
	SubjectID *SubjectID
	ActorID   *PrincipalID
	Action    *string
	Since     *time.Time
	Until     *time.Time
	AfterSeq  int64
	Limit     int
}

// AuditService reads the audit log. Requires the audit.read action.
type AuditService interface {
	// FindAuditEvents returns matching events in sequence order.
	FindAuditEvents(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
}
