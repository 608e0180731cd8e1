package sqlite

import (
	"context"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// LockKey does nothing on SQLite: its single write connection already
// serialises every write transaction.
func (tx *Tx) LockKey(ctx context.Context, key string) error { return nil }

// InsertOutboxEvent appends e to the outbox and sets e.Seq.
func (tx *Tx) InsertOutboxEvent(ctx context.Context, e *custos.OutboxEvent) error {
	err := tx.scanRow(ctx, `INSERT INTO outbox (id, type, subject_id, payload, created_at) VALUES (?, ?, ?, ?, ?) RETURNING seq`,
		[]any{e.ID, e.Type, string(e.SubjectID), string(e.Payload), sqlutil.Micros(e.CreatedAt)}, &e.Seq)
	return formatError(err, "Event")
}

// ClaimWebhookDeliveries leases up to limit due deliveries until leaseUntil.
func (tx *Tx) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	out, err := tx.ListDeliveries(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ?
		WHERE rowid IN (SELECT rowid FROM webhook_deliveries WHERE status <> 'delivered' AND next_attempt_at <= ?
			ORDER BY next_attempt_at, created_at LIMIT ?)
		RETURNING `+sqlutil.DeliveryColumns, sqlutil.Micros(leaseUntil), sqlutil.Micros(now), limit)
	if err != nil {
		return nil, err
	}
	sqlutil.SortDeliveries(out)
	return out, nil
}
