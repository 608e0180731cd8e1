package postgres

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// A read by id or by lookup key on PostgreSQL costs a round trip per
// statement, and the server's work for each. View used to take four: BEGIN,
// the subject with its data key, its consents, COMMIT. Now the subject, its
// data key and its consent history come back from one statement
// (readSubject), and Glance runs that statement without a transaction:
// one round trip, shared with the reads that arrive with it
// (readbatch.go). The later reads of the same snapshot (GetDataKey,
// ListConsentsFor, and GetSubject after FindLookup) answer from what it
// read.

// subjectReadSQL is the SELECT list and joins of readSubject
// (sqlutil.SubjectReadSQL). Only the first row carries the sealed fields,
// so that a long consent history does not repeat them.
var subjectReadSQL = sqlutil.SubjectReadSQL(`CASE WHEN row_number() OVER (ORDER BY c.seq) = 1 THEN s.sealed END`)

// readSubject reads, in a read-only transaction or a Glance, one subject
// (WHERE where, with args) with its data key and consent history, keeps
// the key and the consents for GetDataKey and ListConsentsFor, and returns
// the subject. ENOTFOUND names entity.
func (tx *Tx) readSubject(ctx context.Context, entity, where string, args []any) (*custos.StoredSubject, error) {
	var r sqlutil.SubjectRead
	err := tx.query(ctx, subjectReadSQL+` WHERE `+where+` ORDER BY c.seq`, args, func(s scanner) error { return r.Scan(s) })
	if err != nil {
		return nil, formatError(err, entity)
	}
	if r.Subject == nil {
		return nil, formatError(sql.ErrNoRows, entity)
	}
	tx.reads.Keep(&r)
	return r.Subject, nil
}

// ListConsentsFor returns a subject's consent history for purposes, in
// recorded order. After GetSubject or FindLookup read the subject in this
// read-only transaction, it filters the history read with it.
func (tx *Tx) ListConsentsFor(ctx context.Context, id custos.SubjectID, purposes []string) ([]*custos.StoredConsent, error) {
	if l, ok := tx.reads.ConsentsFor(id, purposes); ok {
		return l, nil
	}
	return tx.Stmts.ListConsentsFor(ctx, id, purposes)
}

// errNeedsTransaction fails the second statement of a Glance.
var errNeedsTransaction = errors.New("postgres: a glance runs one statement; its function runs again in a transaction")

// Glance implements custos.Glancer. fn runs first on a pooled connection
// outside any transaction, where its first statement sees the latest
// committed data, as a statement of a READ COMMITTED transaction does. If
// fn asks for a second statement, or for a write, that statement fails
// without being sent, and fn runs again from its start in View's
// read-only REPEATABLE READ transaction, whatever the first run returned.
//
// A read by id or by lookup key is one statement (readSubject), so it
// costs one round trip instead of View's four (BEGIN, COMMIT and a
// statement more).
func (db *DB) Glance(ctx context.Context, fn func(tx custos.Tx) error) error {
	// The one statement takes a pooled connection for itself, or goes
	// with other Glances' reads or lookups (readBatcher).
	tx := &Tx{tx: db.pool, now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, glance: true, byID: db.byID, byKey: db.byKey,
		rc: db.rc, kf: db.kf, proof: custos.ReadProofFrom(ctx)}
	if tx.proof != nil {
		tx.proof.Gen = 0
	}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	err := fn(tx)
	if tx.refused {
		if tx.proof != nil {
			tx.proof.Gen = 0 // View reads the tables
		}
		return db.View(ctx, fn)
	}
	return err
}

var _ custos.Glancer = (*DB)(nil)

// GlancesOutsideTransaction marks Glance as running fn outside a
// transaction first (storetest.OutsideGlancer).
func (db *DB) GlancesOutsideTransaction() {}
