package postgres

import (
	"context"
	"database/sql"
	"errors"

	"custos"
	"custos/internal/sqlutil"

	"github.com/jackc/pgx/v5"
)

// InsertSubject stores s. Returns ECONFLICT if the id exists.
func (tx *Tx) InsertSubject(ctx context.Context, s *custos.StoredSubject) error {
	return tx.insert(ctx, "Subject", `INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4)`,
		string(s.ID), sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.CreatedAt), sqlutil.Micros(s.UpdatedAt))
}

var _ custos.NewSubjectInserter = (*Tx)(nil)

// insertNewSubject writes a data key, a subject and its lookup keys: three
// inserts in one statement, each counting the rows it stored. The lookups'
// foreign key on the subject is checked at the end of the statement, when
// the subject row is there. A key taken already is skipped (ON CONFLICT
// DO NOTHING), and InsertNewSubject's check of the counts names it.
//
// insertNewSubjectStrict is the same without ON CONFLICT: a key taken
// already fails it on the server (unique_violation). A group's end sent
// in one round trip (oneTripEnd) sends its deferred inserts in the batch
// that commits, before the node has read any of their rows; a conflict
// must then abort the transaction on the server, so that the COMMIT rolls
// back, and the group runs again without deferring, where the member
// hears which key is taken. Without ON CONFLICT PostgreSQL also inserts
// each row without a speculative insertion and its confirmation (pgbench
// of the statement alone: 5–8 % more a second, BENCHMARKS.md, fiftieth
// session).
var (
	insertNewSubject       = newSubjectSQL(" ON CONFLICT DO NOTHING")
	insertNewSubjectStrict = newSubjectSQL("")
)

// newSubjectSQL is insertNewSubject with onConflict after each insert.
func newSubjectSQL(onConflict string) string {
	return `WITH k AS (
	INSERT INTO data_keys (` + dataKeyColumns + `) VALUES ($1, $2, $3, $4, $5)` + onConflict + ` RETURNING 1
), s AS (
	INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($6, $7, $8, $9)` + onConflict + ` RETURNING 1
), l AS (
	INSERT INTO lookups (field, hash, subject_id) SELECT f, h, $6 FROM unnest($10::text[], $11::bytea[]) AS u(f, h)` + onConflict + ` RETURNING 1
) SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM s), (SELECT count(*) FROM l)`
}

// InsertNewSubject stores a new customer's data key, row and lookup keys
// in one round trip (custos.NewSubjectInserter): inside a commit group each
// round trip waits for the server, and a create made three.
func (tx *Tx) InsertNewSubject(ctx context.Context, k *custos.DataKey, s *custos.StoredSubject, ls []custos.Lookup) error {
	fields, hashes := make([]string, len(ls)), make([][]byte, len(ls))
	for i, l := range ls {
		fields[i], hashes[i] = l.Field, l.Hash
	}
	args := []any{
		string(k.SubjectID), k.Version, k.KEKVersion, k.Wrapped, sqlutil.Micros(k.CreatedAt),
		string(s.ID), sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.CreatedAt), sqlutil.Micros(s.UpdatedAt),
		fields, hashes,
	}
	check := func(sc scanner) error {
		var nk, ns, nl int
		err := sc.Scan(&nk, &ns, &nl)
		switch {
		case err != nil:
			return formatError(err, "Subject")
		case nk == 0:
			return conflict("Data key", nil)
		case ns == 0:
			return conflict("Subject", nil)
		case nl < len(ls):
			return conflict("Lookup", nil)
		}
		return nil
	}
	// In a commit group, sent with the other members' and the group's
	// end (Tx.deferring): a group of creates takes no round trip of its
	// own for them, where it took one each.
	if tx.deferQuery(insertNewSubject, insertNewSubjectStrict, args, func(row pgx.Row) error { return check(row) }) {
		return nil
	}
	return tx.queryRow(ctx, insertNewSubject, args, check)
}

// GetSubject returns the subject with id, or ENOTFOUND.
//
// In a read-only transaction (View: one REPEATABLE READ snapshot) or a
// Glance, the subject's data key and consent history come back in the
// same statement and are kept for GetDataKey and ListConsentsFor, which a
// read asks for next (readSubject); after FindLookup read the subject,
// it is not read again. A Glance's read goes in one statement with other
// Glances' reads (readbatch.go).
func (tx *Tx) GetSubject(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, error) {
	if tx.write {
		var l lockedSubject // and locked until commit
		if err := tx.scanRow(ctx, lockSubjectSQL, []any{string(id)}, l.dest()...); err != nil {
			return nil, formatError(err, "Subject")
		}
		return l.subject(id)
	}
	if st := tx.found; st != nil && st.ID == id {
		tx.found = nil
		return st, nil
	}
	if st, ok := tx.prefetched[id]; ok {
		delete(tx.prefetched, id)
		if st == nil {
			return nil, formatError(sql.ErrNoRows, "Subject")
		}
		return st, nil
	}
	if tx.glance && tx.byID != nil && !tx.sent {
		if p := tx.glanceProof(); p != nil {
			if r, gen, ok := tx.rc.byID(id); ok {
				return tx.cacheAnswer(p, r, gen), nil
			}
		}
		return tx.glanceRead(ctx, tx.byID, "Subject", string(id))
	}
	return tx.readSubject(ctx, "Subject", `s.id = $1`, []any{string(id)})
}

// UpdateSubject replaces the sealed fields and updated time of s.ID; the
// creation time is kept. Returns ENOTFOUND.
func (tx *Tx) UpdateSubject(ctx context.Context, s *custos.StoredSubject) error {
	n, err := tx.affected(ctx, `UPDATE subjects SET sealed = $1, updated_at = $2 WHERE id = $3`,
		sqlutil.EncodeSealed(s.Sealed), sqlutil.Micros(s.UpdatedAt), string(s.ID))
	return mustAffect(n, err, "Subject")
}

// DeleteSubject deletes the subject row. Its lookups and records must be
// deleted first. Returns ENOTFOUND.
func (tx *Tx) DeleteSubject(ctx context.Context, id custos.SubjectID) error {
	n, err := tx.affected(ctx, `DELETE FROM subjects WHERE id = $1`, string(id))
	return mustAffect(n, err, "Subject")
}

// eraseRowsSQL deletes a subject's rows in one statement, where deleting
// them one by one took six round trips, each a pause of the commit group
// the erasure runs in (BENCHMARKS.md, thirty-eighth session). Every
// data-modifying part of a WITH runs once, to completion, on the same
// snapshot, and the foreign keys of lookups and records (NO ACTION) are
// checked at the statement's end, when the rows that reference the
// subject are gone with it. The counts say which rows were there.
const eraseRowsSQL = `WITH k AS (DELETE FROM data_keys WHERE subject_id = $1 RETURNING 1),
	r AS (DELETE FROM records WHERE subject_id = $1 RETURNING 1),
	l AS (DELETE FROM lookups WHERE subject_id = $1),
	c AS (DELETE FROM consents WHERE subject_id = $1),
	e AS (DELETE FROM subject_lifecycle WHERE subject_id = $1),
	s AS (DELETE FROM subjects WHERE id = $1 RETURNING 1)
SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM r), (SELECT count(*) FROM s)`

// lockSubjectSQL reads a subject in a write transaction and locks its row
// until commit: a correction, an erasure and a record append on the same
// subject (from any node) take turns instead of overwriting each other or
// racing a delete.
const lockSubjectSQL = `SELECT sealed, created_at, updated_at, restricted_until FROM subjects WHERE id = $1 FOR UPDATE`

// lockedSubject is a row of lockSubjectSQL.
type lockedSubject struct {
	sealed                       []byte
	created, updated, restricted int64
}

func (l *lockedSubject) dest() []any {
	return []any{&l.sealed, &l.created, &l.updated, &l.restricted}
}

func (l *lockedSubject) subject(id custos.SubjectID) (*custos.StoredSubject, error) {
	st, err := sqlutil.Subject(id, l.sealed, l.created, l.updated, l.restricted)
	if err != nil {
		return nil, internal("subject", err)
	}
	return st, nil
}

// EraseSubjectRows locks and reads subject id (lockSubjectSQL), then
// deletes its rows in one statement (eraseRowsSQL), both in one round
// trip in a commit group (custos.Tx). The lock comes first, in a
// statement of its own: the delete's snapshot is taken after it, so it
// sees every row another transaction added before letting the subject
// go, and no transaction adds one after.
func (tx *Tx) EraseSubjectRows(ctx context.Context, id custos.SubjectID) (*custos.StoredSubject, int, error) {
	args := []any{string(id)}
	var (
		l                        lockedSubject
		found                    bool
		keys, records, erasedSub int
	)
	if tx.batches() {
		err := tx.batch(ctx, []batchQuery{{lockSubjectSQL, args}, {eraseRowsSQL, args}}, func(br pgx.BatchResults) error {
			err := br.QueryRow().Scan(l.dest()...)
			if found = err == nil; err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			return br.QueryRow().Scan(&keys, &records, &erasedSub)
		})
		if err != nil {
			return nil, 0, formatError(err, "Subject")
		}
	} else {
		if err := tx.scanRow(ctx, lockSubjectSQL, args, l.dest()...); err != nil {
			return nil, 0, formatError(err, "Subject")
		}
		found = true
		if err := tx.scanRow(ctx, eraseRowsSQL, args, &keys, &records, &erasedSub); err != nil {
			return nil, 0, formatError(err, "Subject")
		}
	}
	if !found || erasedSub == 0 {
		return nil, 0, mustAffect(0, nil, "Subject")
	}
	if keys == 0 {
		return nil, 0, mustAffect(0, nil, "Data key")
	}
	st, err := l.subject(id)
	if err != nil {
		return nil, 0, err
	}
	return st, records, nil
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
