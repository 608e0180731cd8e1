package sqlutil

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"custos"
)

// Retention: lifecycle events, restriction, the sweeper's scans,
// anonymised records, legal holds and destruction certificates — the
// statements both stores share.

// orNil maps an empty byte slice to nil, as the drivers differ there.
func orNil(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// SetLifecycle records a subject's lifecycle event, replacing an earlier time.
func (st Stmts) SetLifecycle(ctx context.Context, id custos.SubjectID, event string, at time.Time) error {
	_, err := st.Q.Exec(ctx, `INSERT INTO subject_lifecycle (subject_id, event, at) VALUES (?, ?, ?)
		ON CONFLICT (subject_id, event) DO UPDATE SET at = excluded.at`, string(id), event, Micros(at))
	return st.Q.Error(err, "Lifecycle event")
}

// GetLifecycle returns a subject's lifecycle events.
func (st Stmts) GetLifecycle(ctx context.Context, id custos.SubjectID) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := st.Q.Query(ctx, `SELECT event, at FROM subject_lifecycle WHERE subject_id = ?`, []any{string(id)}, func(s Scanner) error {
		var ev string
		var at int64
		if err := s.Scan(&ev, &at); err != nil {
			return err
		}
		out[ev] = Time(at)
		return nil
	})
	if err != nil {
		return nil, st.Q.Error(err, "Lifecycle event")
	}
	return out, nil
}

// DeleteLifecycle removes a subject's lifecycle events.
func (st Stmts) DeleteLifecycle(ctx context.Context, id custos.SubjectID) error {
	_, err := st.Q.Exec(ctx, `DELETE FROM subject_lifecycle WHERE subject_id = ?`, string(id))
	return st.Q.Error(err, "Lifecycle event")
}

// RestrictSubject sets restricted_until; the zero time lifts it. ENOTFOUND.
func (st Stmts) RestrictSubject(ctx context.Context, id custos.SubjectID, until time.Time) error {
	n, err := st.Q.Exec(ctx, `UPDATE subjects SET restricted_until = ? WHERE id = ?`, OptMicros(until), string(id))
	return st.updated(n, err, "Subject")
}

// Placeholders returns "?, ?, …" for n arguments, for an IN list.
func Placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func recordArgs(ids []custos.RecordID) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = string(id)
	}
	return args
}

// RestrictRecords sets restricted_until on the records.
func (st Stmts) RestrictRecords(ctx context.Context, ids []custos.RecordID, until time.Time) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := append([]any{OptMicros(until)}, recordArgs(ids)...)
	n, err := st.Q.Exec(ctx, `UPDATE records SET restricted_until = ? WHERE id IN (`+Placeholders(len(ids))+`)`, args...)
	if err != nil {
		return 0, st.Q.Error(err, "Record")
	}
	return int(n), nil
}

// DeleteRecordsByID deletes the records.
func (st Stmts) DeleteRecordsByID(ctx context.Context, ids []custos.RecordID) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	n, err := st.Q.Exec(ctx, `DELETE FROM records WHERE id IN (`+Placeholders(len(ids))+`)`, recordArgs(ids)...)
	if err != nil {
		return 0, st.Q.Error(err, "Record")
	}
	return int(n), nil
}

// ScanRecords returns records for the sweeper, in id order.
func (st Stmts) ScanRecords(ctx context.Context, q custos.RecordScan) ([]*custos.ScannedRecord, error) {
	if len(q.Types) == 0 || q.Limit <= 0 {
		return nil, nil
	}
	var clock, from string
	args := []any{}
	switch q.Clock {
	case custos.ClockCreated, custos.ClockOccurred:
		clock, from = "r."+q.Clock, "records r"
	default:
		clock, from = "l.at", "records r JOIN subject_lifecycle l ON l.subject_id = r.subject_id AND l.event = ?"
		args = append(args, q.Clock)
	}
	args = append(args, string(q.After))
	if q.Through != "" {
		args = append(args, string(q.Through))
	}
	args = append(args, Micros(q.Before))
	for _, t := range q.Types {
		args = append(args, t)
	}
	args = append(args, q.Limit)
	out := []*custos.ScannedRecord{}
	err := st.Q.Query(ctx, `SELECT r.id, r.subject_id, r.type, r.category, r.occurred_at, r.created_at, r.sealed, r.restricted_until, `+clock+`
		FROM `+from+` WHERE r.id > ?`+through("r.id", q.Through)+` AND `+clock+` < ? AND r.type IN (`+Placeholders(len(q.Types))+`)
		ORDER BY r.id LIMIT ?`, args, func(s Scanner) error {
		var (
			r                                  custos.ScannedRecord
			id, sub                            string
			occurred, created, restricted, clk int64
		)
		if err := s.Scan(&id, &sub, &r.Type, &r.Category, &occurred, &created, &r.Sealed, &restricted, &clk); err != nil {
			return err
		}
		r.ID, r.SubjectID, r.Sealed = custos.RecordID(id), custos.SubjectID(sub), orNil(r.Sealed)
		r.OccurredAt, r.CreatedAt, r.RestrictedUntil, r.Clock = Time(occurred), Time(created), OptTime(restricted), Time(clk)
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, st.Q.Error(err, "Record")
	}
	return out, nil
}

// ScanSubjects returns subjects for the sweeper, in id order.
func (st Stmts) ScanSubjects(ctx context.Context, q custos.SubjectScan) ([]*custos.ScannedSubject, error) {
	if q.Limit <= 0 {
		return nil, nil
	}
	var (
		query string
		args  []any
	)
	switch q.Clock {
	case custos.ClockCreated, custos.ClockLastActivity:
		clock := "s.created_at"
		if q.Clock == custos.ClockLastActivity {
			clock = st.Q.Greatest() + `(s.updated_at,
			COALESCE((SELECT MAX(r.created_at) FROM records r WHERE r.subject_id = s.id), 0),
			COALESCE((SELECT l.at FROM subject_lifecycle l WHERE l.subject_id = s.id AND l.event = ?), 0))`
			args = append(args, custos.ClockLastActivity)
		}
		query = `SELECT id, created_at, restricted_until, clock FROM (
		SELECT s.id, s.created_at, s.restricted_until, ` + clock + ` AS clock FROM subjects s) AS c
		WHERE id > ?` + through("id", q.Through) + ` AND clock < ? ORDER BY id LIMIT ?`
	default:
		// A lifecycle event's clock: only customers with that event have
		// one, so the scan goes through the event's rows, in customer
		// order (index subject_lifecycle_event_subject, migration 0011),
		// not through every customer. The job leader looks for retained
		// erasures that are due this way every minute; through every
		// customer, with a subquery each, that was a whole scan of the
		// store a minute (BENCHMARKS.md, forty-fourth session).
		query = `SELECT s.id, s.created_at, s.restricted_until, l.at FROM subject_lifecycle l
		JOIN subjects s ON s.id = l.subject_id
		WHERE l.event = ? AND l.subject_id > ?` + through("l.subject_id", q.Through) + ` AND l.at < ? ORDER BY l.subject_id LIMIT ?`
		args = append(args, q.Clock)
	}
	args = append(args, string(q.After))
	if q.Through != "" {
		args = append(args, string(q.Through))
	}
	args = append(args, Micros(q.Before), q.Limit)
	out := []*custos.ScannedSubject{}
	err := st.Q.Query(ctx, query, args, func(s Scanner) error {
		var (
			sub                        custos.ScannedSubject
			id                         string
			created, restricted, clock int64
		)
		if err := s.Scan(&id, &created, &restricted, &clock); err != nil {
			return err
		}
		sub.ID, sub.CreatedAt, sub.RestrictedUntil, sub.Clock = custos.SubjectID(id), Time(created), OptTime(restricted), Time(clock)
		out = append(out, &sub)
		return nil
	})
	if err != nil {
		return nil, st.Q.Error(err, "Subject")
	}
	return out, nil
}

// through is the condition ending a scan at a window's last id, or
// nothing when the scan has no window.
func through[T ~string](col string, id T) string {
	if id == "" {
		return ""
	}
	return ` AND ` + col + ` <= ?`
}

// SubjectWindowEnd returns the id of the n-th subject after after, or ""
// when fewer than n follow.
func (st Stmts) SubjectWindowEnd(ctx context.Context, after custos.SubjectID, n int) (custos.SubjectID, error) {
	id, err := st.windowEnd(ctx, "subjects", string(after), n)
	return custos.SubjectID(id), st.Q.Error(err, "Subject")
}

// RecordWindowEnd returns the id of the n-th record after after, or ""
// when fewer than n follow.
func (st Stmts) RecordWindowEnd(ctx context.Context, after custos.RecordID, n int) (custos.RecordID, error) {
	id, err := st.windowEnd(ctx, "records", string(after), n)
	return custos.RecordID(id), st.Q.Error(err, "Record")
}

// windowEnd reads the n-th id after after in table's key order: a walk
// of n entries of its key's index.
func (st Stmts) windowEnd(ctx context.Context, table, after string, n int) (string, error) {
	if n <= 0 {
		return "", nil
	}
	var id string
	err := st.Q.QueryRow(ctx, `SELECT id FROM `+table+` WHERE id > ? ORDER BY id LIMIT 1 OFFSET ?`, []any{after, n - 1},
		func(s Scanner) error { return s.Scan(&id) })
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// InsertAnonymised stores anonymised records.
func (st Stmts) InsertAnonymised(ctx context.Context, rows []*custos.AnonymisedRecord) error {
	for _, a := range rows {
		data, err := json.Marshal(a.Data)
		if err != nil {
			return st.Q.Error(err, "anonymised record")
		}
		if _, err := st.Q.Exec(ctx, `INSERT INTO anonymised_records (id, type, category, month, data, rule) VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID, a.Type, a.Category, a.Month, string(data), a.Rule); err != nil {
			return st.Q.Error(err, "Anonymised record")
		}
	}
	return nil
}

// ListAnonymised pages through anonymised records in id order.
func (st Stmts) ListAnonymised(ctx context.Context, after string, limit int) ([]*custos.AnonymisedRecord, error) {
	out := []*custos.AnonymisedRecord{}
	err := st.Q.Query(ctx, `SELECT id, type, category, month, data, rule FROM anonymised_records WHERE id > ? ORDER BY id LIMIT ?`,
		[]any{after, limit}, func(s Scanner) error {
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
		return nil, st.Q.Error(err, "Anonymised record")
	}
	return out, nil
}

// InsertHold stores a legal hold.
func (st Stmts) InsertHold(ctx context.Context, h *custos.LegalHold) error {
	_, err := st.Q.Exec(ctx, `INSERT INTO legal_holds (id, scope, subject_id, category, reason, owner, created_at, created_by, expires_at, released_at, released_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.ID, h.Scope, string(h.SubjectID), h.Category, h.Reason, h.Owner, Micros(h.CreatedAt), string(h.CreatedBy),
		OptMicros(h.ExpiresAt), OptMicros(h.ReleasedAt), string(h.ReleasedBy))
	return st.Q.Error(err, "Legal hold")
}

const holdColumns = `id, scope, subject_id, category, reason, owner, created_at, created_by, expires_at, released_at, released_by`

func scanHold(s Scanner) (*custos.LegalHold, error) {
	var (
		h                          custos.LegalHold
		sub, by, relBy             string
		created, expires, released int64
	)
	if err := s.Scan(&h.ID, &h.Scope, &sub, &h.Category, &h.Reason, &h.Owner, &created, &by, &expires, &released, &relBy); err != nil {
		return nil, err
	}
	h.SubjectID, h.CreatedBy, h.ReleasedBy = custos.SubjectID(sub), custos.PrincipalID(by), custos.PrincipalID(relBy)
	h.CreatedAt, h.ExpiresAt, h.ReleasedAt = Time(created), OptTime(expires), OptTime(released)
	return &h, nil
}

// GetHold returns a legal hold, or ENOTFOUND.
func (st Stmts) GetHold(ctx context.Context, id string) (*custos.LegalHold, error) {
	var h *custos.LegalHold
	err := st.Q.QueryRow(ctx, `SELECT `+holdColumns+` FROM legal_holds WHERE id = ?`, []any{id}, func(s Scanner) (err error) {
		h, err = scanHold(s)
		return err
	})
	if err != nil {
		return nil, st.Q.Error(err, "Legal hold")
	}
	return h, nil
}

// ListHolds returns every legal hold, oldest first.
func (st Stmts) ListHolds(ctx context.Context) ([]*custos.LegalHold, error) {
	out := []*custos.LegalHold{}
	err := st.Q.Query(ctx, `SELECT `+holdColumns+` FROM legal_holds ORDER BY created_at, id`, nil, func(s Scanner) error {
		h, err := scanHold(s)
		if err == nil {
			out = append(out, h)
		}
		return err
	})
	if err != nil {
		return nil, st.Q.Error(err, "Legal hold")
	}
	return out, nil
}

// ReleaseHold releases an unreleased hold; ENOTFOUND otherwise.
func (st Stmts) ReleaseHold(ctx context.Context, id string, at time.Time, by custos.PrincipalID) error {
	n, err := st.Q.Exec(ctx, `UPDATE legal_holds SET released_at = ?, released_by = ? WHERE id = ? AND released_at = 0`,
		Micros(at), string(by), id)
	return st.updated(n, err, "Legal hold")
}

// InsertCertificate stores a destruction certificate.
func (st Stmts) InsertCertificate(ctx context.Context, c *custos.RetentionCertificate) error {
	_, err := st.Q.Exec(ctx, `INSERT INTO retention_certificates (id, run_id, started_at, finished_at, as_of, body, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.RunID, Micros(c.StartedAt), Micros(c.FinishedAt),
		Micros(c.AsOf), string(c.Body), c.KeyID, c.Signature)
	return st.Q.Error(err, "Certificate")
}

const certColumns = `id, run_id, started_at, finished_at, as_of, body, key_id, signature`

func scanCert(s Scanner) (*custos.RetentionCertificate, error) {
	var (
		c                       custos.RetentionCertificate
		started, finished, asOf int64
		body                    string
	)
	if err := s.Scan(&c.ID, &c.RunID, &started, &finished, &asOf, &body, &c.KeyID, &c.Signature); err != nil {
		return nil, err
	}
	c.StartedAt, c.FinishedAt, c.AsOf, c.Body = Time(started), Time(finished), Time(asOf), json.RawMessage(body)
	return &c, nil
}

// GetCertificate returns a certificate, or ENOTFOUND.
func (st Stmts) GetCertificate(ctx context.Context, id string) (*custos.RetentionCertificate, error) {
	var c *custos.RetentionCertificate
	err := st.Q.QueryRow(ctx, `SELECT `+certColumns+` FROM retention_certificates WHERE id = ?`, []any{id}, func(s Scanner) (err error) {
		c, err = scanCert(s)
		return err
	})
	if err != nil {
		return nil, st.Q.Error(err, "Certificate")
	}
	return c, nil
}

// ListCertificates returns every certificate, oldest first.
func (st Stmts) ListCertificates(ctx context.Context) ([]*custos.RetentionCertificate, error) {
	out := []*custos.RetentionCertificate{}
	err := st.Q.Query(ctx, `SELECT `+certColumns+` FROM retention_certificates ORDER BY finished_at, id`, nil, func(s Scanner) error {
		c, err := scanCert(s)
		if err == nil {
			out = append(out, c)
		}
		return err
	})
	if err != nil {
		return nil, st.Q.Error(err, "Certificate")
	}
	return out, nil
}
