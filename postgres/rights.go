package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// LockKey takes a transaction-level advisory lock on key (released at
// commit or rollback), so that transactions locking the same key — on any
// node — run one after the other.
func (tx *Tx) LockKey(ctx context.Context, key string) error {
	_, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('lock|' || current_setting('search_path') || '|' || $1, 0))`, key)
	return formatError(err, "Lock")
}

// InsertOTPChallenge stores c. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertOTPChallenge(ctx context.Context, c *custos.OTPChallenge) error {
	return tx.insert(ctx, "Challenge", `INSERT INTO otp_challenges (`+sqlutil.OTPColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		sqlutil.OTPArgs(c)...)
}

// GetOTPChallenge returns the challenge with id, or ENOTFOUND.
func (tx *Tx) GetOTPChallenge(ctx context.Context, id string) (*custos.OTPChallenge, error) {
	var c *custos.OTPChallenge
	err := tx.queryRow(ctx, `SELECT `+sqlutil.OTPColumns+` FROM otp_challenges WHERE id = $1`, []any{id},
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
	n, err := tx.affected(ctx, `UPDATE otp_challenges SET attempts = $1, status = $2, done_at = $3 WHERE id = $4`,
		c.Attempts, c.Status, sqlutil.MicrosOrZero(c.DoneAt), c.ID)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Challenge not found.")
	}
	return formatError(err, "Challenge")
}

// CountOTPChallenges counts the challenges of f.SubjectID (or from
// f.ClientHash) created at or after f.Since.
func (tx *Tx) CountOTPChallenges(ctx context.Context, f custos.OTPFilter) (int, error) {
	q, arg := `SELECT count(*) FROM otp_challenges WHERE subject_id = $1 AND created_at >= $2`, any(string(f.SubjectID))
	if f.SubjectID == "" {
		q, arg = `SELECT count(*) FROM otp_challenges WHERE client_hash = $1 AND created_at >= $2`, any(f.ClientHash)
	}
	var n int
	err := tx.scanRow(ctx, q, []any{arg, sqlutil.Micros(f.Since)}, &n)
	return n, formatError(err, "Challenge")
}

// DeleteOTPChallenges removes challenges that expired before t.
func (tx *Tx) DeleteOTPChallenges(ctx context.Context, before time.Time) (int, error) {
	n, err := tx.affected(ctx, `DELETE FROM otp_challenges WHERE expires_at < $1`, sqlutil.Micros(before))
	return int(n), formatError(err, "Challenge")
}

// InsertOutboxEvent appends e to the outbox and sets e.Seq.
func (tx *Tx) InsertOutboxEvent(ctx context.Context, e *custos.OutboxEvent) error {
	err := tx.scanRow(ctx, `INSERT INTO outbox (id, type, subject_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING RETURNING seq`,
		[]any{e.ID, e.Type, string(e.SubjectID), string(e.Payload), sqlutil.Micros(e.CreatedAt)}, &e.Seq)
	if errors.Is(err, sql.ErrNoRows) {
		return conflict("Event", nil)
	}
	return formatError(err, "Event")
}

// GetOutboxEvent returns the event with id, or ENOTFOUND.
func (tx *Tx) GetOutboxEvent(ctx context.Context, id string) (*custos.OutboxEvent, error) {
	var e *custos.OutboxEvent
	err := tx.queryRow(ctx, `SELECT `+sqlutil.OutboxColumns+` FROM outbox WHERE id = $1`, []any{id},
		func(s scanner) (err error) {
			e, err = sqlutil.ScanOutboxEvent(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Event")
	}
	return e, nil
}

var recipientColumns = sqlutil.RecipientColumns("disabled::int")

// InsertWebhookRecipient stores r. Returns ECONFLICT if the id or name exists.
func (tx *Tx) InsertWebhookRecipient(ctx context.Context, r *custos.WebhookRecipient) error {
	events, err := sqlutil.EncodeList(r.Events)
	if err != nil {
		return internal("recipient", err)
	}
	return tx.insert(ctx, "Recipient", `INSERT INTO webhook_recipients (id, name, url, sealed_secret, events, disabled, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		r.ID, r.Name, r.URL, r.SealedSecret, events, r.Disabled, sqlutil.Micros(r.CreatedAt), sqlutil.Micros(r.UpdatedAt))
}

// GetWebhookRecipient returns the recipient with id, or ENOTFOUND.
func (tx *Tx) GetWebhookRecipient(ctx context.Context, id string) (*custos.WebhookRecipient, error) {
	var r *custos.WebhookRecipient
	err := tx.queryRow(ctx, `SELECT `+recipientColumns+` FROM webhook_recipients WHERE id = $1`, []any{id},
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
	n, err := tx.affected(ctx, `UPDATE webhook_recipients SET disabled = $1, updated_at = $2 WHERE id = $3`,
		disabled, sqlutil.Micros(tx.now), id)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Recipient not found.")
	}
	return formatError(err, "Recipient")
}

// InsertWebhookDelivery stores d. Returns ECONFLICT if the event already
// has a delivery to the recipient.
func (tx *Tx) InsertWebhookDelivery(ctx context.Context, d *custos.WebhookDelivery) error {
	return tx.insert(ctx, "Delivery", `INSERT INTO webhook_deliveries (`+sqlutil.DeliveryColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		sqlutil.DeliveryArgs(d)...)
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
	return tx.listDeliveries(ctx, `SELECT `+sqlutil.DeliveryColumns+` FROM webhook_deliveries WHERE event_id = $1 ORDER BY recipient_id`, eventID)
}

// ClaimWebhookDeliveries leases up to limit due deliveries until
// leaseUntil. Rows another transaction is claiming are skipped (SKIP
// LOCKED), and one it claimed and committed is no longer due, so two
// deliverers never hold the same delivery at once.
func (tx *Tx) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	out, err := tx.listDeliveries(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $1
		WHERE (event_id, recipient_id) IN (SELECT event_id, recipient_id FROM webhook_deliveries
			WHERE status <> 'delivered' AND next_attempt_at <= $2
			ORDER BY next_attempt_at, created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
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
	n, err := tx.affected(ctx, `UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_attempt_at = $4,
		delivered_at = $5, last_code = $6, last_error = $7, alerted_at = $8 WHERE event_id = $9 AND recipient_id = $10`,
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
		WHERE status <> 'delivered' AND alerted_at = 0 AND created_at < $1 ORDER BY created_at, event_id, recipient_id LIMIT $2`,
		sqlutil.Micros(before), limit)
}
