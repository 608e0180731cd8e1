package postgres

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// SetLifecycle records a subject's lifecycle event, replacing an earlier time.
func (tx *Tx) SetLifecycle(ctx context.Context, id custos.SubjectID, event string, at time.Time) error {
	_, err := tx.exec(ctx, `INSERT INTO subject_lifecycle (subject_id, event, at) VALUES ($1, $2, $3)
		ON CONFLICT (subject_id, event) DO UPDATE SET at = excluded.at`, string(id), event, sqlutil.Micros(at))
	return formatError(err, "Lifecycle event")
}

// GetLifecycle returns a subject's lifecycle events.
func (tx *Tx) GetLifecycle(ctx context.Context, id custos.SubjectID) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := tx.query(ctx, `SELECT event, at FROM subject_lifecycle WHERE subject_id = $1`, []any{string(id)}, func(s scanner) error {
		var ev string
		var at int64
		if err := s.Scan(&ev, &at); err != nil {
			return err
		}
		out[ev] = sqlutil.Time(at)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Lifecycle event")
	}
	return out, nil
}

// DeleteLifecycle removes a subject's lifecycle events.
func (tx *Tx) DeleteLifecycle(ctx context.Context, id custos.SubjectID) error {
	_, err := tx.exec(ctx, `DELETE FROM subject_lifecycle WHERE subject_id = $1`, string(id))
	return formatError(err, "Lifecycle event")
}

// RestrictSubject sets restricted_until; the zero time lifts it. ENOTFOUND.
func (tx *Tx) RestrictSubject(ctx context.Context, id custos.SubjectID, until time.Time) error {
	n, err := tx.affected(ctx, `UPDATE subjects SET restricted_until = $1 WHERE id = $2`, sqlutil.OptMicros(until), string(id))
	return mustAffect(n, err, "Subject")
}

// placeholders returns "$from, $from+1, …" for n arguments.
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ps, ", ")
}

func recordArgs(ids []custos.RecordID) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = string(id)
	}
	return args
}

// RestrictRecords sets restricted_until on the records.
func (tx *Tx) RestrictRecords(ctx context.Context, ids []custos.RecordID, until time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := append([]any{sqlutil.OptMicros(until)}, recordArgs(ids)...)
	n, err := tx.affected(ctx, `UPDATE records SET restricted_until = $1 WHERE id IN (`+placeholders(2, len(ids))+`)`, args...)
	if err != nil {
		return 0, formatError(err, "Record")
	}
	return int(n), nil
}

// DeleteRecordsByID deletes the records.
func (tx *Tx) DeleteRecordsByID(ctx context.Context, ids []custos.RecordID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := tx.affected(ctx, `DELETE FROM records WHERE id IN (`+placeholders(1, len(ids))+`)`, recordArgs(ids)...)
	if err != nil {
		return 0, formatError(err, "Record")
	}
	return int(n), nil
}

// ScanRecords returns records for the sweeper, in id order.
func (tx *Tx) ScanRecords(ctx context.Context, q custos.RecordScan) ([]*custos.ScannedRecord, error) {
	if len(q.Types) == 0 || q.Limit <= 0 {
		return nil, nil
	}
	var clock, from string
	args := []any{}
	switch q.Clock {
	case custos.ClockCreated, custos.ClockOccurred:
		clock, from = "r."+q.Clock, "records r"
	default:
		clock, from = "l.at", "records r JOIN subject_lifecycle l ON l.subject_id = r.subject_id AND l.event = $1"
		args = append(args, q.Clock)
	}
	n := len(args)
	args = append(args, string(q.After), sqlutil.Micros(q.Before))
	for _, t := range q.Types {
		args = append(args, t)
	}
	args = append(args, q.Limit)
	out := []*custos.ScannedRecord{}
	err := tx.query(ctx, `SELECT r.id, r.subject_id, r.type, r.category, r.occurred_at, r.created_at, r.sealed, r.restricted_until, `+clock+`
		FROM `+from+` WHERE r.id > $`+strconv.Itoa(n+1)+` AND `+clock+` < $`+strconv.Itoa(n+2)+`
		AND r.type IN (`+placeholders(n+3, len(q.Types))+`)
		ORDER BY r.id LIMIT $`+strconv.Itoa(n+3+len(q.Types)), args, func(s scanner) error {
		var (
			r                                  custos.ScannedRecord
			id, sub                            string
			occurred, created, restricted, clk int64
		)
		if err := s.Scan(&id, &sub, &r.Type, &r.Category, &occurred, &created, &r.Sealed, &restricted, &clk); err != nil {
			return err
		}
		r.ID, r.SubjectID, r.Sealed = custos.RecordID(id), custos.SubjectID(sub), orNil(r.Sealed)
		r.OccurredAt, r.CreatedAt, r.RestrictedUntil, r.Clock = sqlutil.Time(occurred), sqlutil.Time(created), sqlutil.OptTime(restricted), sqlutil.Time(clk)
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Record")
	}
	return out, nil
}

// ScanSubjects returns subjects for the sweeper, in id order.
func (tx *Tx) ScanSubjects(ctx context.Context, q custos.SubjectScan) ([]*custos.ScannedSubject, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var clock string
	args := []any{}
	switch q.Clock {
	case custos.ClockCreated:
		clock = "s.created_at"
	case custos.ClockLastActivity:
		clock = `GREATEST(s.updated_at,
			COALESCE((SELECT MAX(r.created_at) FROM records r WHERE r.subject_id = s.id), 0),
			COALESCE((SELECT l.at FROM subject_lifecycle l WHERE l.subject_id = s.id AND l.event = $1), 0))`
		args = append(args, custos.ClockLastActivity)
	default:
		clock = `(SELECT l.at FROM subject_lifecycle l WHERE l.subject_id = s.id AND l.event = $1)`
		args = append(args, q.Clock)
	}
	args = append(args, string(q.After), sqlutil.Micros(q.Before), q.Limit)
	out := []*custos.ScannedSubject{}
	err := tx.query(ctx, `SELECT id, created_at, restricted_until, clock FROM (
		SELECT s.id, s.created_at, s.restricted_until, `+clock+` AS clock FROM subjects s) AS c
		WHERE id > $`+strconv.Itoa(len(args)-2)+` AND clock < $`+strconv.Itoa(len(args)-1)+` ORDER BY id LIMIT $`+strconv.Itoa(len(args)), args, func(s scanner) error {
		var (
			sub                        custos.ScannedSubject
			id                         string
			created, restricted, clock int64
		)
		if err := s.Scan(&id, &created, &restricted, &clock); err != nil {
			return err
		}
		sub.ID, sub.CreatedAt, sub.RestrictedUntil, sub.Clock = custos.SubjectID(id), sqlutil.Time(created), sqlutil.OptTime(restricted), sqlutil.Time(clock)
		out = append(out, &sub)
		return nil
	})
	if err != nil {
		return nil, formatError(err, "Subject")
	}
	return out, nil
}

// InsertAnonymised stores anonymised records.
func (tx *Tx) InsertAnonymised(ctx context.Context, rows []*custos.AnonymisedRecord) error {
	for _, a := range rows {
		data, err := json.Marshal(a.Data)
		if err != nil {
			return internal("anonymised record", err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO anonymised_records (id, type, category, month, data, rule) VALUES ($1, $2, $3, $4, $5, $6)`,
			a.ID, a.Type, a.Category, a.Month, string(data), a.Rule); err != nil {
			return formatError(err, "Anonymised record")
		}
	}
	return nil
}

// ListAnonymised pages through anonymised records in id order.
func (tx *Tx) ListAnonymised(ctx context.Context, after string, limit int) ([]*custos.AnonymisedRecord, error) {
	out := []*custos.AnonymisedRecord{}
	err := tx.query(ctx, `SELECT id, type, category, month, data, rule FROM anonymised_records WHERE id > $1 ORDER BY id LIMIT $2`,
		[]any{after, limit}, func(s scanner) error {
			var a custos.AnonymisedRecord
			var data string
			if err := s.Scan(&a.ID, &a.Type, &a.Category, &a.Month, &data, &a.Rule); err != nil {
				return err
			}
			if err := json.Unmarshal([]byte(data), &a.Data); err != nil {
				return err
			}
			out = append(out, &a)
			return nil
		})
	if err != nil {
		return nil, formatError(err, "Anonymised record")
	}
	return out, nil
}

// InsertHold stores a legal hold.
func (tx *Tx) InsertHold(ctx context.Context, h *custos.LegalHold) error {
	_, err := tx.exec(ctx, `INSERT INTO legal_holds (id, scope, subject_id, category, reason, owner, created_at, created_by, expires_at, released_at, released_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		h.ID, h.Scope, string(h.SubjectID), h.Category, h.Reason, h.Owner, sqlutil.Micros(h.CreatedAt), string(h.CreatedBy),
		sqlutil.OptMicros(h.ExpiresAt), sqlutil.OptMicros(h.ReleasedAt), string(h.ReleasedBy))
	return formatError(err, "Legal hold")
}

const holdColumns = `id, scope, subject_id, category, reason, owner, created_at, created_by, expires_at, released_at, released_by`

func scanHold(s scanner) (*custos.LegalHold, error) {
	var (
		h                          custos.LegalHold
		sub, by, relBy             string
		created, expires, released int64
	)
	if err := s.Scan(&h.ID, &h.Scope, &sub, &h.Category, &h.Reason, &h.Owner, &created, &by, &expires, &released, &relBy); err != nil {
		return nil, err
	}
	h.SubjectID, h.CreatedBy, h.ReleasedBy = custos.SubjectID(sub), custos.PrincipalID(by), custos.PrincipalID(relBy)
	h.CreatedAt, h.ExpiresAt, h.ReleasedAt = sqlutil.Time(created), sqlutil.OptTime(expires), sqlutil.OptTime(released)
	return &h, nil
}

// GetHold returns a legal hold, or ENOTFOUND.
func (tx *Tx) GetHold(ctx context.Context, id string) (*custos.LegalHold, error) {
	var h *custos.LegalHold
	err := tx.queryRow(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE id = $1`, []any{id}, func(s scanner) (err error) {
		h, err = scanHold(s)
		return err
	})
	if err != nil {
		return nil, formatError(err, "Legal hold")
	}
	return h, nil
}

// ListHolds returns every legal hold, oldest first.
func (tx *Tx) ListHolds(ctx context.Context) ([]*custos.LegalHold, error) {
	out := []*custos.LegalHold{}
	err := tx.query(ctx, `SELECT `+holdColumns+` FROM legal_holds ORDER BY created_at, id`, nil, func(s scanner) error {
		h, err := scanHold(s)
		if err == nil {
			out = append(out, h)
		}
		return err
	})
	if err != nil {
		return nil, formatError(err, "Legal hold")
	}
	return out, nil
}

// ReleaseHold releases an unreleased hold; ENOTFOUND otherwise.
func (tx *Tx) ReleaseHold(ctx context.Context, id string, at time.Time, by custos.PrincipalID) error {
	n, err := tx.affected(ctx, `UPDATE legal_holds SET released_at = $1, released_by = $2 WHERE id = $3 AND released_at = 0`,
		sqlutil.Micros(at), string(by), id)
	return mustAffect(n, err, "Legal hold")
}

// InsertCertificate stores a destruction certificate.
func (tx *Tx) InsertCertificate(ctx context.Context, c *custos.RetentionCertificate) error {
	_, err := tx.exec(ctx, `INSERT INTO retention_certificates (id, run_id, started_at, finished_at, as_of, body, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, c.ID, c.RunID, sqlutil.Micros(c.StartedAt), sqlutil.Micros(c.FinishedAt),
		sqlutil.Micros(c.AsOf), string(c.Body), c.KeyID, c.Signature)
	return formatError(err, "Certificate")
}

const certColumns = `id, run_id, started_at, finished_at, as_of, body, key_id, signature`

func scanCert(s scanner) (*custos.RetentionCertificate, error) {
	var (
		c                       custos.RetentionCertificate
		started, finished, asOf int64
		body                    string
	)
	if err := s.Scan(&c.ID, &c.RunID, &started, &finished, &asOf, &body, &c.KeyID, &c.Signature); err != nil {
		return nil, err
	}
	c.StartedAt, c.FinishedAt, c.AsOf, c.Body = sqlutil.Time(started), sqlutil.Time(finished), sqlutil.Time(asOf), json.RawMessage(body)
	return &c, nil
}

// GetCertificate returns a certificate, or ENOTFOUND.
func (tx *Tx) GetCertificate(ctx context.Context, id string) (*custos.RetentionCertificate, error) {
	var c *custos.RetentionCertificate
	err := tx.queryRow(ctx, `SELECT `+certColumns+` FROM retention_certificates WHERE id = $1`, []any{id}, func(s scanner) (err error) {
		c, err = scanCert(s)
		return err
	})
	if err != nil {
		return nil, formatError(err, "Certificate")
	}
	return c, nil
}

// ListCertificates returns every certificate, oldest first.
func (tx *Tx) ListCertificates(ctx context.Context) ([]*custos.RetentionCertificate, error) {
	out := []*custos.RetentionCertificate{}
	err := tx.query(ctx, `SELECT `+certColumns+` FROM retention_certificates ORDER BY finished_at, id`, nil, func(s scanner) error {
		c, err := scanCert(s)
		if err == nil {
			out = append(out, c)
		}
		return err
	})
	if err != nil {
		return nil, formatError(err, "Certificate")
	}
	return out, nil
}
