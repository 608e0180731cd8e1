package sqlite

import (
	"context"
	"database/sql"

	"custos"
	"custos/internal/sqlutil"
)

const dataKeyColumns = `subject_id, version, kek_version, wrapped, created_at`

// InsertDataKey stores k. Returns ECONFLICT if the subject has a key.
func (tx *Tx) InsertDataKey(ctx context.Context, k *custos.DataKey) error {
	_, err := tx.exec(ctx, `INSERT INTO data_keys (`+dataKeyColumns+`) VALUES (?, ?, ?, ?, ?)`,
		string(k.SubjectID), k.Version, k.KEKVersion, k.Wrapped, sqlutil.Micros(k.CreatedAt))
	return formatError(err, "Data key")
}

// GetDataKey returns the subject's data key, or ENOTFOUND (never created,
// or shredded). In a View it answers with the key GetSubject read, or the
// read cache's.
func (tx *Tx) GetDataKey(ctx context.Context, id custos.SubjectID) (*custos.DataKey, error) {
	if k, ok := tx.reads.Key(id); ok {
		if k == nil {
			return nil, formatError(sql.ErrNoRows, "Data key")
		}
		return k, nil
	}
	if tx.rc != nil {
		if k := tx.rc.getKey(id); k != nil {
			return k, nil
		}
	}
	var k *custos.DataKey
	err := tx.queryRow(ctx, `SELECT `+dataKeyColumns+` FROM data_keys WHERE subject_id = ?`, []any{string(id)},
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
	defer tx.about(k.SubjectID)()
	n, err := tx.affected(ctx, `UPDATE data_keys SET version = ?, kek_version = ?, wrapped = ?, created_at = ? WHERE subject_id = ?`,
		k.Version, k.KEKVersion, k.Wrapped, sqlutil.Micros(k.CreatedAt), string(k.SubjectID))
	return mustAffect(n, err, "Data key")
}

// DeleteDataKey deletes (shreds) the subject's key. The file overwrites
// deleted content (secure_delete). Returns ENOTFOUND.
func (tx *Tx) DeleteDataKey(ctx context.Context, id custos.SubjectID) error {
	defer tx.about(id)()
	n, err := tx.affected(ctx, `DELETE FROM data_keys WHERE subject_id = ?`, string(id))
	return mustAffect(n, err, "Data key")
}

// ListDataKeys returns up to limit keys with SubjectID > after, in id
// order; limit <= 0 means no limit.
func (tx *Tx) ListDataKeys(ctx context.Context, after custos.SubjectID, limit int) ([]*custos.DataKey, error) {
	q := `SELECT ` + dataKeyColumns + ` FROM data_keys WHERE subject_id > ? ORDER BY subject_id`
	args := []any{string(after)}
	if limit > 0 {
		q += ` LIMIT ?`
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
	k.SubjectID, k.CreatedAt = custos.SubjectID(id), sqlutil.Time(created)
	return &k, nil
}
