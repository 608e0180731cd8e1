package sqlutil

import (
	"cmp"
	"context"
	"slices"
	"time"

	"custos"
)

// One-time code challenges, the outbox and webhook deliveries: the
// statements both stores share. LockKey, InsertOutboxEvent and
// ClaimWebhookDeliveries differ per store and stay in the adapters.

// InsertOTPChallenge stores c. Returns ECONFLICT if the id exists.
func (st Stmts) InsertOTPChallenge(ctx context.Context, c *custos.OTPChallenge) error {
	return st.Q.Insert(ctx, "Challenge", `INSERT INTO otp_challenges (`+OTPColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		OTPArgs(c)...)
}

// GetOTPChallenge returns the challenge with id, or ENOTFOUND.
func (st Stmts) GetOTPChallenge(ctx context.Context, id string) (*custos.OTPChallenge, error) {
	return queryOne(ctx, st.Q, "Challenge", `SELECT `+OTPColumns+` FROM otp_challenges WHERE id = ?`, []any{id}, ScanOTPChallenge)
}

// UpdateOTPChallenge saves c's attempts, status and done time.
func (st Stmts) UpdateOTPChallenge(ctx context.Context, c *custos.OTPChallenge) error {
	n, err := st.Q.Exec(ctx, `UPDATE otp_challenges SET attempts = ?, status = ?, done_at = ? WHERE id = ?`,
		c.Attempts, c.Status, MicrosOrZero(c.DoneAt), c.ID)
	return st.updated(n, err, "Challenge")
}

// CountOTPChallenges counts the challenges of f.SubjectID (or from
// f.ClientHash) created at or after f.Since.
func (st Stmts) CountOTPChallenges(ctx context.Context, f custos.OTPFilter) (int, error) {
	q, arg := `SELECT count(*) FROM otp_challenges WHERE subject_id = ? AND created_at >= ?`, any(string(f.SubjectID))
	if f.SubjectID == "" {
		q, arg = `SELECT count(*) FROM otp_challenges WHERE client_hash = ? AND created_at >= ?`, any(f.ClientHash)
	}
	var n int
	err := st.Q.QueryRow(ctx, q, []any{arg, Micros(f.Since)}, func(s Scanner) error { return s.Scan(&n) })
	return n, st.Q.Error(err, "Challenge")
}

// DeleteOTPChallenges removes challenges that expired before t.
func (st Stmts) DeleteOTPChallenges(ctx context.Context, before time.Time) (int, error) {
	n, err := st.Q.Exec(ctx, `DELETE FROM otp_challenges WHERE expires_at < ?`, Micros(before))
	return int(n), st.Q.Error(err, "Challenge")
}

// GetOutboxEvent returns the event with id, or ENOTFOUND.
func (st Stmts) GetOutboxEvent(ctx context.Context, id string) (*custos.OutboxEvent, error) {
	return queryOne(ctx, st.Q, "Event", `SELECT `+OutboxColumns+` FROM outbox WHERE id = ?`, []any{id}, ScanOutboxEvent)
}

func (st Stmts) recipientColumns() string { return RecipientColumns(st.Q.BoolColumn("disabled")) }

// InsertWebhookRecipient stores r. Returns ECONFLICT if the id or name exists.
func (st Stmts) InsertWebhookRecipient(ctx context.Context, r *custos.WebhookRecipient) error {
	events, err := EncodeList(r.Events)
	if err != nil {
		return st.Q.Error(err, "Recipient")
	}
	return st.Q.Insert(ctx, "Recipient", `INSERT INTO webhook_recipients (id, name, url, sealed_secret, events, disabled, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, r.URL, r.SealedSecret, string(events), st.Q.Bool(r.Disabled), Micros(r.CreatedAt), Micros(r.UpdatedAt))
}

// GetWebhookRecipient returns the recipient with id, or ENOTFOUND.
func (st Stmts) GetWebhookRecipient(ctx context.Context, id string) (*custos.WebhookRecipient, error) {
	return queryOne(ctx, st.Q, "Recipient", `SELECT `+st.recipientColumns()+` FROM webhook_recipients WHERE id = ?`, []any{id}, ScanRecipient)
}

// ListWebhookRecipients returns every recipient, oldest first.
func (st Stmts) ListWebhookRecipients(ctx context.Context) ([]*custos.WebhookRecipient, error) {
	return queryAll(ctx, st.Q, "Recipient", `SELECT `+st.recipientColumns()+` FROM webhook_recipients ORDER BY created_at, id`, nil, ScanRecipient)
}

// SetWebhookRecipientDisabled disables or enables a recipient.
func (st Stmts) SetWebhookRecipientDisabled(ctx context.Context, id string, disabled bool) error {
	n, err := st.Q.Exec(ctx, `UPDATE webhook_recipients SET disabled = ?, updated_at = ? WHERE id = ?`,
		st.Q.Bool(disabled), Micros(st.Q.Now()), id)
	return st.updated(n, err, "Recipient")
}

// InsertWebhookDelivery stores d. Returns ECONFLICT if the event already
// has a delivery to the recipient.
func (st Stmts) InsertWebhookDelivery(ctx context.Context, d *custos.WebhookDelivery) error {
	return st.Q.Insert(ctx, "Delivery", `INSERT INTO webhook_deliveries (`+DeliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		DeliveryArgs(d)...)
}

// ListDeliveries runs a query returning DeliveryColumns rows.
func (st Stmts) ListDeliveries(ctx context.Context, query string, args ...any) ([]*custos.WebhookDelivery, error) {
	return queryAll(ctx, st.Q, "Delivery", query, args, ScanDelivery)
}

// ListWebhookDeliveries returns an event's deliveries by recipient id.
func (st Stmts) ListWebhookDeliveries(ctx context.Context, eventID string) ([]*custos.WebhookDelivery, error) {
	return st.ListDeliveries(ctx, `SELECT `+DeliveryColumns+` FROM webhook_deliveries WHERE event_id = ? ORDER BY recipient_id`, eventID)
}

// SortDeliveries orders claimed deliveries oldest first.
func SortDeliveries(ds []*custos.WebhookDelivery) {
	slices.SortFunc(ds, func(a, b *custos.WebhookDelivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.RecipientID, b.RecipientID))
	})
}

// UpdateWebhookDelivery saves d's progress.
func (st Stmts) UpdateWebhookDelivery(ctx context.Context, d *custos.WebhookDelivery) error {
	n, err := st.Q.Exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
		delivered_at = ?, last_code = ?, last_error = ?, alerted_at = ? WHERE event_id = ? AND recipient_id = ?`,
		d.Status, d.Attempts, MicrosOrZero(d.NextAttemptAt), MicrosOrZero(d.LastAttemptAt),
		MicrosOrZero(d.DeliveredAt), d.LastCode, d.LastError, MicrosOrZero(d.AlertedAt), d.EventID, d.RecipientID)
	return st.updated(n, err, "Delivery")
}

// ListUnackedWebhookDeliveries returns undelivered, unalerted deliveries
// created before t, oldest first.
func (st Stmts) ListUnackedWebhookDeliveries(ctx context.Context, before time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	return st.ListDeliveries(ctx, `SELECT `+DeliveryColumns+` FROM webhook_deliveries
		WHERE status <> 'delivered' AND alerted_at = 0 AND created_at < ? ORDER BY created_at, event_id, recipient_id LIMIT ?`,
		Micros(before), limit)
}
