package custos

import (
	"encoding/json"
	"time"
)

// This file holds the types behind customer-rights infrastructure (R7,
// R4): one-time codes for identity verification, and the transactional
// outbox whose events reach downstream systems through signed webhooks.

// ActWebhookManage lets a role register, list and disable webhook
// recipients (downstream systems told of erasures and closures).
const ActWebhookManage = "webhook.manage"

// Audit actions of the rights infrastructure.
const (
	AuditWebhookCreate  = "webhook.create"
	AuditWebhookList    = "webhook.list"
	AuditWebhookDisable = "webhook.disable"
	// AuditWebhookUnacked: a recipient has not acknowledged an event past
	// the alert threshold (ids only in Reason).
	AuditWebhookUnacked = "webhook.unacknowledged"
)

// OTP challenge statuses.
const (
	OTPPending  = "pending"  // issued, may be verified
	OTPVerified = "verified" // used once; never again
	OTPDead     = "dead"     // too many wrong codes
)

// OTPChallenge is one issued one-time code. The code itself is never
// stored: CodeHash is an HMAC of it bound to the challenge id, and
// ClientHash an HMAC of the client address it was requested from (for
// per-address rate limits without keeping addresses).
type OTPChallenge struct {
	ID          string
	SubjectID   SubjectID
	Purpose     string // what it verifies ("portal.signin", "dsr.verify" …)
	Channel     string // "sms" or "email"
	CodeHash    []byte
	ClientHash  []byte
	Attempts    int // wrong codes tried so far
	MaxAttempts int
	Status      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	DoneAt      time.Time // verified or dead; zero while pending
}

// OTPFilter counts challenges issued since Since to a subject or from a
// client: exactly one of SubjectID and ClientHash is set.
type OTPFilter struct {
	SubjectID  SubjectID
	ClientHash []byte
	Since      time.Time
}

// OutboxEvent is an event leaving custos through the transactional
// outbox, written in the same store transaction as the change it reports.
// Payload is JSON holding ids and names only, never personal values: it
// is sent to every subscribed recipient.
type OutboxEvent struct {
	Seq       int64 // store order; set by InsertOutboxEvent
	ID        string
	Type      string // "subject.erased", "account.closed" …
	SubjectID SubjectID
	Payload   json.RawMessage
	CreatedAt time.Time
}

// WebhookRecipient is a registered downstream endpoint. Secret is sealed
// in the store (SealedSecret) and plain only in memory.
type WebhookRecipient struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	URL          string    `json:"url"`
	Events       []string  `json:"events"` // event types; "*" for all
	Disabled     bool      `json:"disabled"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	SealedSecret []byte    `json:"-"`
	// Secret is the signing secret, returned once at registration.
	Secret string `json:"secret,omitempty"`
}

// Webhook delivery statuses: pending → (retrying →)* delivered.
const (
	DeliveryPending   = "pending"   // not tried yet
	DeliveryRetrying  = "retrying"  // tried, not acknowledged; will retry
	DeliveryDelivered = "delivered" // acknowledged with a 2xx
)

// WebhookDelivery is one event's delivery to one recipient.
type WebhookDelivery struct {
	EventID       string    `json:"event_id"`
	RecipientID   string    `json:"recipient_id"`
	Status        string    `json:"status"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"next_attempt_at"`
	LastAttemptAt time.Time `json:"last_attempt_at"`
	DeliveredAt   time.Time `json:"delivered_at"`
	LastCode      int       `json:"last_code,omitempty"`  // last HTTP status, 0 if none
	LastError     string    `json:"last_error,omitempty"` // why it failed; never payload or secret
	AlertedAt     time.Time `json:"alerted_at"`           // unacknowledged alert raised
	CreatedAt     time.Time `json:"created_at"`
}
