package postgres

import (
	"context"
)

// GetMeta returns the value of key, or ENOTFOUND for an unset key.
func (tx *Tx) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	if err := tx.scanRow(ctx, `SELECT value FROM meta WHERE key = $1`, []any{key}, &v); err != nil {
		return "", formatError(err, "Setting")
	}
	return v, nil
}

// SetMeta sets key to value, replacing any previous value.
func (tx *Tx) SetMeta(ctx context.Context, key, value string) error {
	_, err := tx.exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return formatError(err, "Setting")
}
