package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"custos"
	"custos/internal/sqlutil"
)

// A read by id or by lookup key on PostgreSQL costs a round trip per
// statement, and the server's work for each. View used to take four: BEGIN,
// the subject with its data key, its consents, COMMIT. Now the subject, its
// data key and its consent history come back from one statement
// (readSubject), and Glance runs that statement without a transaction:
// one round trip. The later reads of the same snapshot (GetDataKey,
// ListConsentsFor, and GetSubject after FindLookup) answer from what it
// read.

// subjectReadSQL is the SELECT list and joins of readSubject: a row for
// each of the subject's consents, in recorded order, or one with NULL
// consent columns when it has none. Only the first row carries the
// sealed fields, so that a long consent history does not repeat them.
const subjectReadSQL = `SELECT s.id, CASE WHEN row_number() OVER (ORDER BY c.seq) = 1 THEN s.sealed END,
	s.created_at, s.updated_at, s.restricted_until,
	k.version, k.kek_version, k.wrapped, k.created_at,
	c.seq, c.id, c.purpose, c.scope, c.action, c.notice_version, c.at, c.channel, c.initiated_by, c.by_guardian, c.actor_id, c.sealed
	FROM subjects s
	LEFT JOIN data_keys k ON k.subject_id = s.id
	LEFT JOIN consents c ON c.subject_id = s.id`

// readSubject reads, in a read-only transaction or a Glance, one subject
// (WHERE where, with args) with its data key and consent history, keeps
// the key and the consents for GetDataKey and ListConsentsFor, and returns
// the subject. ENOTFOUND names entity.
func (tx *Tx) readSubject(ctx context.Context, entity, where string, args []any) (*custos.StoredSubject, error) {
	var (
		st       *custos.StoredSubject
		key      *custos.DataKey
		consents = []*custos.StoredConsent{}
	)
	err := tx.query(ctx, subjectReadSQL+` WHERE `+where+` ORDER BY c.seq`, args, func(s scanner) error {
		var (
			id                           string
			sealed, wrapped, cSealed     []byte
			created, updated, restricted int64
			version, kekVersion, keyAt   sql.NullInt64
			seq, notice, at, guardian    sql.NullInt64
			cid, purpose, scope, action  sql.NullString
			channel, initiated, actor    sql.NullString
		)
		if err := s.Scan(&id, &sealed, &created, &updated, &restricted,
			&version, &kekVersion, &wrapped, &keyAt,
			&seq, &cid, &purpose, &scope, &action, &notice, &at, &channel, &initiated, &guardian, &actor, &cSealed); err != nil {
			return err
		}
		if st == nil {
			var err error
			if st, err = sqlutil.Subject(custos.SubjectID(id), sealed, created, updated, restricted); err != nil {
				return internal("subject", err)
			}
			if version.Valid {
				key = &custos.DataKey{SubjectID: st.ID, Version: int(version.Int64), KEKVersion: int(kekVersion.Int64),
					Wrapped: orNil(wrapped), CreatedAt: sqlutil.Time(keyAt.Int64)}
			}
		}
		if seq.Valid {
			consents = append(consents, &custos.StoredConsent{Seq: seq.Int64, ID: cid.String, SubjectID: st.ID,
				Purpose: purpose.String, Scope: scope.String, Action: action.String, NoticeVersion: int(notice.Int64),
				At: sqlutil.Time(at.Int64), Channel: channel.String, InitiatedBy: initiated.String,
				ByGuardian: guardian.Int64 != 0, ActorID: custos.PrincipalID(actor.String), Sealed: orNil(cSealed)})
		}
		return nil
	})
	if err != nil {
		return nil, formatError(err, entity)
	}
	if st == nil {
		return nil, formatError(sql.ErrNoRows, entity)
	}
	if tx.keys == nil {
		tx.keys = map[custos.SubjectID]*custos.DataKey{}
		tx.consents = map[custos.SubjectID][]*custos.StoredConsent{}
	}
	tx.keys[st.ID], tx.consents[st.ID] = key, consents
	return st, nil
}

// ListConsentsFor returns a subject's consent history for purposes, in
// recorded order. After GetSubject or FindLookup read the subject in this
// read-only transaction, it filters the history read with it.
func (tx *Tx) ListConsentsFor(ctx context.Context, id custos.SubjectID, purposes []string) ([]*custos.StoredConsent, error) {
	all, ok := tx.consents[id]
	if !ok {
		return tx.Stmts.ListConsentsFor(ctx, id, purposes)
	}
	out := []*custos.StoredConsent{}
	for _, c := range all {
		if slices.Contains(purposes, c.Purpose) {
			cp := *c
			cp.Sealed = bytes.Clone(c.Sealed)
			out = append(out, &cp)
		}
	}
	return out, nil
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
	cctx, cancel := context.WithTimeout(ctx, db.timeout)
	conn, err := db.pool.Conn(cctx)
	cancel()
	if err != nil {
		return internal("connect", err)
	}
	tx := &Tx{tx: conn, now: db.now().UTC().Truncate(time.Microsecond), timeout: db.timeout, glance: true}
	tx.Stmts = sqlutil.NewStmts(stmtQuerier{tx})
	err = fn(tx)
	if cerr := conn.Close(); cerr != nil && err == nil && !tx.refused {
		err = internal("release", cerr)
	}
	if tx.refused {
		return db.View(ctx, fn)
	}
	return err
}

var _ custos.Glancer = (*DB)(nil)
