package postgres

import (
	"context"
	"database/sql"
	"errors"
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

// ClaimWebhookDeliveries leases up to limit due deliveries until
// leaseUntil. Rows another transaction is claiming are skipped (SKIP
// LOCKED), and one it claimed and committed is no longer due, so two
// deliverers never hold the same delivery at once.
func (tx *Tx) ClaimWebhookDeliveries(ctx context.Context, now, leaseUntil time.Time, limit int) ([]*custos.WebhookDelivery, error) {
	out, err := tx.ListDeliveries(ctx, `UPDATE webhook_deliveries SET next_attempt_at = $1
		WHERE (event_id, recipient_id) IN (SELECT event_id, recipient_id FROM webhook_deliveries
			WHERE status <> 'delivered' AND next_attempt_at <= $2
			ORDER BY next_attempt_at, created_at LIMIT $3 FOR UPDATE SKIP LOCKED)
		RETURNING `+sqlutil.DeliveryColumns, sqlutil.Micros(leaseUntil), sqlutil.Micros(now), limit)
	if err != nil {
		return nil, err
	}
	sqlutil.SortDeliveries(out)
	return out, nil
}
