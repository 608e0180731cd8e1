package postgres

import (
	"context"

	"custos"
)

// InsertLookup adds a blind index entry. If (field, hash) is taken it
// returns ECONFLICT with ConflictID set to the owning subject.
//
// ON CONFLICT DO NOTHING rather than catching the constraint error keeps
// the transaction usable (a failed statement aborts a PostgreSQL
// transaction), so the owner can be read right after. Under READ COMMITTED
// an uncommitted competing insert is waited for; once it commits, the
// owner read (a new statement, so a new snapshot) sees it.
func (tx *Tx) InsertLookup(ctx context.Context, field string, hash []byte, id custos.SubjectID) error {
	n, err := tx.affected(ctx, `INSERT INTO lookups (field, hash, subject_id) VALUES ($1, $2, $3)
		ON CONFLICT (field, hash) DO NOTHING`, field, hash, string(id))
	if err != nil {
		return formatError(err, "Lookup")
	}
	if n == 1 {
		return nil
	}
	owner, err := tx.FindLookup(ctx, field, hash)
	if err != nil {
		return err
	}
	return &custos.Error{Code: custos.ECONFLICT, Message: "Lookup already exists.", ConflictID: string(owner)}
}

// FindLookup returns the subject owning (field, hash), or ENOTFOUND.
//
// In a read-only transaction or a Glance it reads the owner with its data
// key and consents in the same statement (readSubject), for the
// GetSubject that a lookup asks for next; a Glance's goes in one
// statement with other Glances' lookups (readbatch.go).
func (tx *Tx) FindLookup(ctx context.Context, field string, hash []byte) (custos.SubjectID, error) {
	if tx.glance && tx.byKey != nil && !tx.sent {
		if p := tx.glanceProof(); p != nil {
			if r, gen, ok := tx.rc.byKey(field, hash); ok {
				tx.found = tx.cacheAnswer(p, r, gen)
				return tx.found.ID, nil
			}
		}
		st, err := tx.glanceRead(ctx, tx.byKey, "Lookup", field, hash)
		if err != nil {
			return "", err
		}
		tx.found = st
		return st.ID, nil
	}
	if !tx.write {
		st, err := tx.readSubject(ctx, "Lookup", `s.id = (SELECT subject_id FROM lookups WHERE field = $1 AND hash = $2)`,
			[]any{field, hash})
		if err != nil {
			return "", err
		}
		tx.found = st
		return st.ID, nil
	}
	var id string
	if err := tx.scanRow(ctx, `SELECT subject_id FROM lookups WHERE field = $1 AND hash = $2`,
		[]any{field, hash}, &id); err != nil {
		return "", formatError(err, "Lookup")
	}
	return custos.SubjectID(id), nil
}

// DeleteLookups removes a subject's entries for field, or all when field
// is "". Deleting nothing is not an error.
func (tx *Tx) DeleteLookups(ctx context.Context, id custos.SubjectID, field string) error {
	var err error
	if field == "" {
		_, err = tx.exec(ctx, `DELETE FROM lookups WHERE subject_id = $1`, string(id))
	} else {
		_, err = tx.exec(ctx, `DELETE FROM lookups WHERE subject_id = $1 AND field = $2`, string(id), field)
	}
	return formatError(err, "Lookup")
}
