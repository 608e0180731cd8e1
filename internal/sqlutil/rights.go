package sqlutil

import (
	"time"

	"custos"
)

// Scanner is a *sql.Row or *sql.Rows.
type Scanner interface {
	Scan(dest ...any) error
}

// MicrosOrZero is Micros, with 0 for the zero time ("not yet").
func MicrosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// TimeOrZero is Time, with the zero time for 0.
func TimeOrZero(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return Time(us)
}

// OTPColumns are the otp_challenges columns ScanOTPChallenge reads.
const OTPColumns = `id, subject_id, purpose, channel, code_hash, client_hash, attempts, max_attempts, status, created_at, expires_at, done_at`

// OTPArgs returns c's values in OTPColumns order.
func OTPArgs(c *custos.OTPChallenge) []any {
	return []any{c.ID, string(c.SubjectID), c.Purpose, c.Channel, c.CodeHash, c.ClientHash, c.Attempts, c.MaxAttempts,
		c.Status, Micros(c.CreatedAt), Micros(c.ExpiresAt), MicrosOrZero(c.DoneAt)}
}

// ScanOTPChallenge scans a row of OTPColumns.
func ScanOTPChallenge(s Scanner) (*custos.OTPChallenge, error) {
	var (
		c                      custos.OTPChallenge
		sub                    string
		created, expires, done int64
	)
	if err := s.Scan(&c.ID, &sub, &c.Purpose, &c.Channel, &c.CodeHash, &c.ClientHash, &c.Attempts, &c.MaxAttempts,
		&c.Status, &created, &expires, &done); err != nil {
		return nil, err
	}
	c.SubjectID, c.CreatedAt, c.ExpiresAt, c.DoneAt = custos.SubjectID(sub), Time(created), Time(expires), TimeOrZero(done)
	return &c, nil
}

// OutboxColumns are the outbox columns ScanOutboxEvent reads.
const OutboxColumns = `seq, id, type, subject_id, payload, created_at`

// ScanOutboxEvent scans a row of OutboxColumns.
func ScanOutboxEvent(s Scanner) (*custos.OutboxEvent, error) {
	var (
		e        custos.OutboxEvent
		sub, pay string
		created  int64
	)
	if err := s.Scan(&e.Seq, &e.ID, &e.Type, &sub, &pay, &created); err != nil {
		return nil, err
	}
	e.SubjectID, e.Payload, e.CreatedAt = custos.SubjectID(sub), []byte(pay), Time(created)
	return &e, nil
}

// RecipientColumns are the webhook_recipients columns ScanRecipient reads;
// disabledExpr reads the disabled column as an integer 0 or 1.
func RecipientColumns(disabledExpr string) string {
	return `id, name, url, sealed_secret, events, ` + disabledExpr + `, created_at, updated_at`
}

// ScanRecipient scans a row of RecipientColumns.
func ScanRecipient(s Scanner) (*custos.WebhookRecipient, error) {
	var (
		r                custos.WebhookRecipient
		events           []byte
		disabled         int64
		created, updated int64
	)
	if err := s.Scan(&r.ID, &r.Name, &r.URL, &r.SealedSecret, &events, &disabled, &created, &updated); err != nil {
		return nil, err
	}
	ev, err := DecodeList(events)
	if err != nil {
		return nil, err
	}
	r.Events, r.Disabled, r.CreatedAt, r.UpdatedAt = ev, disabled != 0, Time(created), Time(updated)
	return &r, nil
}

// DeliveryColumns are the webhook_deliveries columns ScanDelivery reads.
const DeliveryColumns = `event_id, recipient_id, status, attempts, next_attempt_at, last_attempt_at, delivered_at, last_code, last_error, alerted_at, created_at`

// DeliveryArgs returns d's values in DeliveryColumns order.
func DeliveryArgs(d *custos.WebhookDelivery) []any {
	return []any{d.EventID, d.RecipientID, d.Status, d.Attempts, MicrosOrZero(d.NextAttemptAt), MicrosOrZero(d.LastAttemptAt),
		MicrosOrZero(d.DeliveredAt), d.LastCode, d.LastError, MicrosOrZero(d.AlertedAt), Micros(d.CreatedAt)}
}

// ScanDelivery scans a row of DeliveryColumns.
func ScanDelivery(s Scanner) (*custos.WebhookDelivery, error) {
	var (
		d                                       custos.WebhookDelivery
		next, last, delivered, alerted, created int64
	)
	if err := s.Scan(&d.EventID, &d.RecipientID, &d.Status, &d.Attempts, &next, &last, &delivered, &d.LastCode, &d.LastError,
		&alerted, &created); err != nil {
		return nil, err
	}
	d.NextAttemptAt, d.LastAttemptAt, d.DeliveredAt = TimeOrZero(next), TimeOrZero(last), TimeOrZero(delivered)
	d.AlertedAt, d.CreatedAt = TimeOrZero(alerted), Time(created)
	return &d, nil
}
