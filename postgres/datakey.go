package postgres

import (
	"context"

	"custos"
	"custos/internal/sqlutil"
)

const dataKeyColumns = `subject_id, version, kek_version, wrapped, created_at`

// InsertDataKey stores k. Returns ECONFLICT if the subject has a key.
func (tx *Tx) InsertDataKey(ctx context.Context, k *custos.DataKey) error {
	return tx.insert(ctx, "Data key", `INSERT INTO data_keys (`+dataKeyColumns+`) VALUES ($1, $2, $3, $4, $5)`,
		string(k.SubjectID), k.Version, k.KEKVersion, k.Wrapped, sqlutil.Micros(k.CreatedAt))
}

// GetDataKey returns the subject's data key, or ENOTFOUND (never created,
// or shredded).
func (tx *Tx) GetDataKey(ctx context.Context, id custos.SubjectID) (*custos.DataKey, error) {
	if k, ok := tx.reads.Key(id); ok {
		// Read with the subject, in this read-only snapshot (GetSubject).
		if k == nil {
			return nil, custos.Errorf(custos.ENOTFOUND, "Data key not found.")
		}
		return k, nil
	}
	var k *custos.DataKey
	err := tx.queryRow(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE subject_id = $1`, []any{string(id)},
		func(s scanner) (err error) {
			k, err = scanDataKey(s)
			return err
		})
	if err != nil {
		return nil, formatError(err, "Data key")
	}
	return k, nil
}

// UpdateDataKey replaces every column of k.SubjectID's key with k (a
// rewrap under another master key, or a new version). Returns ENOTFOUND.
func (tx *Tx) UpdateDataKey(ctx context.Context, k *custos.DataKey) error {
	n, err := tx.affected(ctx, `UPDATE data_keys SET version = $1, kek_version = $2, wrapped = $3, created_at = $4 WHERE subject_id = $5`,
		k.Version, k.KEKVersion, k.Wrapped, sqlutil.Micros(k.CreatedAt), string(k.SubjectID))
	return mustAffect(n, err, "Data key")
}

// DeleteDataKey deletes (shreds) the subject's key. Returns ENOTFOUND.
//
// Unlike SQLite's secure_delete, PostgreSQL leaves the dead row version in
// the table file until VACUUM reclaims the space, and in the WAL and any
// base backup: shredding relies on the master key wrapping every data key.
func (tx *Tx) DeleteDataKey(ctx context.Context, id custos.SubjectID) error {
	n, err := tx.affected(ctx, `DELETE FROM data_keys WHERE subject_id = $1`, string(id))
	return mustAffect(n, err, "Data key")
}

// ListDataKeys returns up to limit keys with SubjectID > after, in id
// order (bytewise); limit <= 0 means no limit.
func (tx *Tx) ListDataKeys(ctx context.Context, after custos.SubjectID, limit int) ([]*custos.DataKey, error) {
	q := `SELECT ` + dataKeyColumns + ` FROM data_keys WHERE subject_id > $1 ORDER BY subject_id`
	args := []any{string(after)}
	if limit > 0 {
		q += ` LIMIT $2`
		args = append(args, limit)
	}
	keys := []*custos.DataKey{}
	err := tx.query(ctx, q, args, func(s scanner) error {
		k, err := scanDataKey(s)
		if err != nil {
			return err
		}
		keys = append(keys, k)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Data key")
	}
	return keys, nil
}

// CountDataKeysByKEK counts data keys per master key version.
func (tx *Tx) CountDataKeysByKEK(ctx context.Context) (map[int]int, error) {
	counts := map[int]int{}
	err := tx.query(ctx, `SELECT kek_version, COUNT(*) FROM data_keys GROUP BY kek_version`, nil, func(s scanner) error {
		var v, n int
		if err := s.Scan(&v, &n); err != nil {
			return err
		}
		counts[v] = n
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Data key")
	}
	return counts, nil
}

func scanDataKey(s scanner) (*custos.DataKey, error) {
	var (
		k       custos.DataKey
		id      string
		created int64
	)
	if err := s.Scan(&id, &k.Version, &k.KEKVersion, &k.Wrapped, &created); err != nil {
		return nil, err
	}
	k.SubjectID, k.Wrapped, k.CreatedAt = custos.SubjectID(id), orNil(k.Wrapped), sqlutil.Time(created)
	return &k, nil
}
