package sqlite

import (
	"cmp"
	"context"
	"slices"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// LockKey does nothing on SQLite: its single write connection already
// serialises every write transaction.
func (tx *Tx) LockKey(ctx context.Context, key string) error { return nil }

// InsertOTPChallenge stores c. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertOTPChallenge(ctx context.Context, c *custos.OTPChallenge) error {
	_, err := tx.exec(ctx, `INSERT INTO otp_challenges (`+sqlutil.OTPColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sqlutil.OTPArgs(c)...)
	return formatError(err, "Challenge")
}

// GetOTPChallenge returns the challenge with id, or ENOTFOUND.
func (tx *Tx) GetOTPChallenge(ctx context.Context, id string) (*custos.OTPChallenge, error) {
	var c *custos.OTPChallenge
	err := tx.queryRow(ctx, `SELECT `+sqlutil.OTPColumns+` FROM otp_challenges WHERE id = ?`, []any{id},
		func(s scanner) (err error) {
			c, err = sqlutil.ScanOTPChallenge(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Challenge")
	}
	return c, nil
}

// UpdateOTPChallenge saves c's attempts, status and done time.
func (tx *Tx) UpdateOTPChallenge(ctx context.Context, c *custos.OTPChallenge) error {
	n, err := tx.affected(ctx, `UPDATE otp_challenges SET attempts = ?, status = ?, done_at = ? WHERE id = ?`,
		c.Attempts, c.Status, sqlutil.MicrosOrZero(c.DoneAt), c.ID)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Challenge not found.")
	}
	return formatError(err, "Challenge")
}

// CountOTPChallenges counts the challenges of f.SubjectID (or from
// f.ClientHash) created at or after f.Since.
func (tx *Tx) CountOTPChallenges(ctx context.Context, f custos.OTPFilter) (int, error) {
	q, arg := `SELECT count(*) FROM otp_challenges WHERE subject_id = ? AND created_at >= ?`, any(string(f.SubjectID))
	if f.SubjectID == "" {
		q, arg = `SELECT count(*) FROM otp_challenges WHERE client_hash = ? AND created_at >= ?`, any(f.ClientHash)
	}
	var n int
	err := tx.scanRow(ctx, q, []any{arg, sqlutil.Micros(f.Since)}, &n)
	return n, formatError(err, "Challenge")
}

// DeleteOTPChallenges removes challenges that expired before t.
func (tx *Tx) DeleteOTPChallenges(ctx context.Context, before time.Time) (int, error) {
	n, err := tx.affected(ctx, `DELETE FROM otp_challenges WHERE expires_at < ?`, sqlutil.Micros(before))
	return int(n), formatError(err, "Challenge")
}

// InsertOutboxEvent appends e to the outbox and sets e.Seq.
func (tx *Tx) InsertOutboxEvent(ctx context.Context, e *custos.OutboxEvent) error {
	err := tx.scanRow(ctx, `INSERT INTO outbox (id, type, subject_id, payload, created_at) VALUES (?, ?, ?, ?, ?) RETURNING seq`,
		[]any{e.ID, e.Type, string(e.SubjectID), string(e.Payload), sqlutil.Micros(e.CreatedAt)}, &e.Seq)
	return formatError(err, "Event")
}

// GetOutboxEvent returns the event with id, or ENOTFOUND.
func (tx *Tx) GetOutboxEvent(ctx context.Context, id string) (*custos.OutboxEvent, error) {
	var e *custos.OutboxEvent
	err := tx.queryRow(ctx, `SELECT `+sqlutil.OutboxColumns+` FROM outbox WHERE id = ?`, []any{id},
		func(s scanner) (err error) {
			e, err = sqlutil.ScanOutboxEvent(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Event")
	}
	return e, nil
}

var recipientColumns = sqlutil.RecipientColumns("disabled")

// InsertWebhookRecipient stores r. Returns ECONFLICT if the id or name exists.
func (tx *Tx) InsertWebhookRecipient(ctx context.Context, r *custos.WebhookRecipient) error {
	events, err := sqlutil.EncodeList(r.Events)
	if err != nil {
		return internal("recipient", err)
	}
	_, err = tx.exec(ctx, `INSERT INTO webhook_recipients (`+recipientColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID, r.Name, r.URL, r.SealedSecret, string(events), boolInt(r.Disabled), sqlutil.Micros(r.CreatedAt), sqlutil.Micros(r.UpdatedAt))
	return formatError(err, "Recipient")
}

// GetWebhookRecipient returns the recipient with id, or ENOTFOUND.
func (tx *Tx) GetWebhookRecipient(ctx context.Context, id string) (*custos.WebhookRecipient, error) {
	var r *custos.WebhookRecipient
	err := tx.queryRow(ctx, `SELECT `+recipientColumns+` FROM webhook_recipients WHERE id = ?`, []any{id},
		func(s scanner) (err error) {
			r, err = sqlutil.ScanRecipient(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Recipient")
	}
	return r, nil
}

// ListWebhookRecipients returns every recipient, oldest first.
func (tx *Tx) ListWebhookRecipients(ctx context.Context) ([]*custos.WebhookRecipient, error) {
	out := []*custos.WebhookRecipient{}
	err := tx.query(ctx, `SELECT `+recipientColumns+` FROM webhook_recipients ORDER BY created_at, id`, nil,
		func(s scanner) error {
			r, err := sqlutil.ScanRecipient(s)
			if err != nil {
				return err
			}
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, formatError(err, "Recipient")
	}
	return out, nil
}

// SetWebhookRecipientDisabled disables or enables a recipient.
func (tx *Tx) SetWebhookRecipientDisabled(ctx context.Context, id string, disabled bool) error {
	n, err := tx.affected(ctx, `UPDATE webhook_recipients SET disabled = ?, updated_at = ? WHERE id = ?`,
		boolInt(disabled), sqlutil.Micros(tx.now), id)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Recipient not found.")
	}
	return formatError(err, "Recipient")
}

// InsertWebhookDelivery stores d. Returns ECONFLICT if the event already
// has a delivery to the recipient.
func (tx *Tx) InsertWebhookDelivery(ctx context.Context, d *custos.WebhookDelivery) error {
	_, err := tx.exec(ctx, `INSERT INTO webhook_deliveries (`+sqlutil.DeliveryColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sqlutil.DeliveryArgs(d)...)
	return formatError(err, "Delivery")
}

func (tx *Tx) listDeliveries(ctx context.Context, query string, args ...any) ([]*custos.WebhookDelivery, error) {
	out := []*custos.WebhookDelivery{}
	err := tx.query(ctx, query, args, func(s scanner) error {
		d, err := sqlutil.ScanDelivery(s)
		if err != nil {
			return err
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Delivery")
	}
	return out, nil
}

// ListWebhookDeliveries returns an event's deliveries by recipient id.
func (tx *Tx) ListWebhookDeliveries(ctx context.Context, eventID string) ([]*custos.WebhookDelivery, error) {
	return tx.listDeliveries(ctx, `SELECT `+sqlutil.DeliveryColumns+` FROM webhook_deliveries WHERE event_id = ? ORDER BY recipient_id`, eventID)
}

// ClaimWebhookDeliveries leases up to limit due deliveries until leaseUntil.
func (tx *Tx) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	out, err := tx.listDeliveries(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?
		WHERE rowid IN (SELECT rowid FROM webhook_deliveries WHERE status <> 'delivered' AND next_attempt_at <= ?
			ORDER BY next_attempt_at, created_at LIMIT ?)
		RETURNING `+sqlutil.DeliveryColumns, sqlutil.Micros(leaseUntil), sqlutil.Micros(now), limit)
	if err != nil {
		return nil, err
	}
	sortDeliveries(out)
	return out, nil
}

func sortDeliveries(ds []*custos.WebhookDelivery) {
	slices.SortFunc(ds, func(a, b *custos.WebhookDelivery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.EventID, b.EventID), cmp.Compare(a.RecipientID, b.RecipientID))
	})
}

// UpdateWebhookDelivery saves d's progress.
func (tx *Tx) UpdateWebhookDelivery(ctx context.Context, d *custos.WebhookDelivery) error {
	n, err := tx.affected(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
		delivered_at = ?, last_code = ?, last_error = ?, alerted_at = ? WHERE event_id = ? AND recipient_id = ?`,
		d.Status, d.Attempts, sqlutil.MicrosOrZero(d.NextAttemptAt), sqlutil.MicrosOrZero(d.LastAttemptAt),
		sqlutil.MicrosOrZero(d.DeliveredAt), d.LastCode, d.LastError, sqlutil.MicrosOrZero(d.AlertedAt), d.EventID, d.RecipientID)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Delivery not found.")
	}
	return formatError(err, "Delivery")
}

// ListUnackedWebhookDeliveries returns undelivered, unalerted deliveries
// created before t, oldest first.
func (tx *Tx) ListUnackedWebhookDeliveries(ctx context.Context, before time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	return tx.listDeliveries(ctx, `SELECT `+sqlutil.DeliveryColumns+` FROM webhook_deliveries
		WHERE status <> 'delivered' AND alerted_at = 0 AND created_at < ? ORDER BY created_at, event_id, recipient_id LIMIT ?`,
		sqlutil.Micros(before), limit)
}
