package sqlite

import (
	"context"
	"database/sql"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// InsertSubject stores s. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertSubject(ctx context.Context, s *custos.StoredSubject) error {
	_, err := tx.exec(ctx, `INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES (?, ?, ?, ?)`,
		string(s.ID), sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.CreatedAt), sqlutil.Micros(s.UpdatedAt))
	return formatError(err, "Subject")
}

// GetSubject returns the subject with id, or ENOTFOUND. In a View it
// reads the subject's data key and consent history with it (readSubject).
func (tx *Tx) GetSubject(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, error) {
	if tx.rc != nil {
		if st := tx.rc.getSubject(id); st != nil {
			tx.cacheLookups(id)
			return st, nil
		}
	}
	if tx.view {
		return tx.readSubject(ctx, id)
	}
	var (
		sealed                       []byte
		created, updated, restricted int64
	)
	err := tx.scanRow(ctx, `SELECT sealed, created_at, updated_at, restricted_until FROM subjects WHERE id = ?`,
		[]any{string(id)}, &sealed, &created, &updated, &restricted)
	if err != nil {
		return nil, formatError(err, "Subject")
	}
	st, err := sqlutil.Subject(id, sealed, created, updated, restricted)
	if err != nil {
		return nil, internal("subject", err)
	}
	return st, nil
}

// subjectReadSQL reads a subject by id with its data key and consent
// history (sqlutil.SubjectReadSQL). The sealed fields come with every row;
// a history is a few rows long.
var subjectReadSQL = sqlutil.SubjectReadSQL(`s.sealed`) + ` WHERE s.id = ? ORDER BY c.seq`

// readSubject reads, in a View, subject id with its data key and consent
// history in one statement, where reading them apart took three: each
// statement costs SQLite a step and a reset and the driver a row, beside
// the page fetches, and a read that misses the read cache spent about a
// fifth less CPU in the store this way (BenchmarkViewRead; BENCHMARKS.md,
// fifteenth session). The key and the consents are kept for GetDataKey
// and ListConsentsFor of the same View, and in the read cache with the
// subject.
func (tx *Tx) readSubject(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, error) {
	var r sqlutil.SubjectRead
	err := tx.query(ctx, subjectReadSQL, []any{string(id)}, func(s scanner) error { return r.Scan(s) })
	if err != nil {
		return nil, formatError(err, "Subject")
	}
	if r.Subject == nil {
		return nil, formatError(sql.ErrNoRows, "Subject")
	}
	tx.reads.Keep(&r)
	if tx.rc != nil {
		tx.rc.putSubject(tx.stamp, r.Subject, r.Key, r.Consents)
		tx.cacheLookups(id)
	}
	return r.Subject, nil
}

// EraseSubjectRows reads subject id, then deletes its rows in the order
// that keeps every reference valid, the data key first (custos.Tx).
func (tx *Tx) EraseSubjectRows(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, int, error) {
	st, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if err := tx.DeleteDataKey(ctx, id); err != nil {
		return nil, 0, err
	}
	n, err := tx.DeleteRecords(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	if err := tx.DeleteLookups(ctx, id, ""); err != nil {
		return nil, 0, err
	}
	if _, err := tx.DeleteConsents(ctx, id); err != nil {
		return nil, 0, err
	}
	if err := tx.DeleteLifecycle(ctx, id); err != nil {
		return nil, 0, err
	}
	if err := tx.DeleteSubject(ctx, id); err != nil {
		return nil, 0, err
	}
	return st, n, nil
}

// UpdateSubject replaces the sealed fields and updated time of s.ID; the
// creation time is kept. Returns ENOTFOUND.
func (tx *Tx) UpdateSubject(ctx context.Context, s *custos.StoredSubject) error {
	defer tx.about(s.ID)()
	n, err := tx.affected(ctx, `UPDATE subjects SET sealed = ?, updated_at = ? WHERE id = ?`,
		sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.UpdatedAt), string(s.ID))
	return mustAffect(n, err, "Subject")
}

// DeleteSubject deletes the subject row. Its lookups and records must be
// deleted first. Returns ENOTFOUND.
func (tx *Tx) DeleteSubject(ctx context.Context, id custos.SubjectID) error {
	defer tx.about(id)()
	n, err := tx.affected(ctx, `DELETE FROM subjects WHERE id = ?`, string(id))
	return mustAffect(n, err, "Subject")
}

// RestrictSubject sets restricted_until; the zero time lifts it. ENOTFOUND.
func (tx *Tx) RestrictSubject(ctx context.Context, id custos.SubjectID, until time.Time) error {
	defer tx.about(id)()
	return tx.Stmts.RestrictSubject(ctx, id, until)
}

// InsertConsent appends a consent decision and sets c.Seq.
func (tx *Tx) InsertConsent(ctx context.Context, c *custos.StoredConsent) error {
	defer tx.about(c.SubjectID)()
	return tx.Stmts.InsertConsent(ctx, c)
}

// InsertConsents appends consent decisions in multi-row statements and
// sets their Seqs; the read cache drops their customers' entries. The
// write connection is the only writer, so the seqs are handed out here,
// after the highest the table has had (AUTOINCREMENT keeps it in
// sqlite_sequence even when those rows are gone), and not read back.
func (tx *Tx) InsertConsents(ctx context.Context, cs []*custos.StoredConsent) error {
	if len(cs) == 0 {
		return nil
	}
	// An import's consents come a customer's at a time (four each in a
	// seed): the scope names each customer once.
	ids := make([]custos.SubjectID, 0, len(cs))
	for i, c := range cs {
		if i == 0 || c.SubjectID != cs[i-1].SubjectID {
			ids = append(ids, c.SubjectID)
		}
	}
	defer tx.about(ids...)()
	var last int64
	if err := tx.scanRow(ctx, lastConsentSeqSQL, nil, &last); err != nil {
		return formatError(err, "Consent")
	}
	for i, c := range cs {
		c.Seq = last + 1 + int64(i)
	}
	return tx.Stmts.InsertConsentsNumbered(ctx, cs)
}

// lastConsentSeqSQL is the highest consent seq handed out so far: the
// AUTOINCREMENT counter, or the table's largest seq should the counter
// ever lag it.
const lastConsentSeqSQL = `SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'consents'), 0), COALESCE((SELECT MAX(seq) FROM consents), 0))`

// DeleteConsents removes a subject's consent history.
func (tx *Tx) DeleteConsents(ctx context.Context, id custos.SubjectID) (int, error) {
	defer tx.about(id)()
	return tx.Stmts.DeleteConsents(ctx, id)
}

// ListConsentsFor returns a subject's consent history for purposes, in
// recorded order. In a View it filters the history GetSubject read, or
// the read cache's.
func (tx *Tx) ListConsentsFor(ctx context.Context, id custos.SubjectID, purposes []string) ([]*custos.StoredConsent, error) {
	if l, ok := tx.reads.ConsentsFor(id, purposes); ok {
		return l, nil
	}
	if tx.rc != nil {
		if l, ok := tx.rc.getConsents(id, purposes); ok {
			return l, nil
		}
	}
	return tx.Stmts.ListConsentsFor(ctx, id, purposes)
}

// CountSubjects returns the number of subjects.
func (tx *Tx) CountSubjects(ctx context.Context) (int, error) {
	var n int
	if err := tx.scanRow(ctx, `SELECT COUNT(*) FROM subjects`, nil, &n); err != nil {
		return 0, formatError(err, "Subject")
	}
	return n, nil
}

// mustAffect turns a statement that changed no row into ENOTFOUND.
func mustAffect(n int64, err error, entity string) error {
	if err != nil {
		return formatError(err, entity)
	}
	if n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "%s not found.", entity)
	}
	return nil
}
