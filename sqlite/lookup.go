package sqlite

import (
	"context"

	"custos"
)

// InsertLookup adds a blind index entry. If (field, hash) is taken it
// returns ECONFLICT with ConflictID set to the owning subject.
//
// ON CONFLICT DO NOTHING rather than catching the constraint error keeps
// the transaction usable on every database (a failed statement aborts a
// PostgreSQL transaction), so the owner can be read right after.
func (tx *Tx) InsertLookup(ctx context.Context, field string, hash []byte, id custos.SubjectID) error {
	n, err := tx.affected(ctx, `INSERT INTO lookups (field, hash, subject_id) VALUES (?, ?, ?)
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
// A View's lookup that misses the read cache runs this one-row probe,
// and the GetSubject that follows reads the subject with its key and
// consents (readSubject) unless the cache has it. Reading the subject in
// the probe's statement instead saved a statement where the subject is
// not cached (a store far larger than the cache) but cost lookups on
// 10,000 customers 1–33 % of their throughput, where it mostly is
// (BENCHMARKS.md, fifteenth session).
func (tx *Tx) FindLookup(ctx context.Context, field string, hash []byte) (custos.SubjectID, error) {
	if tx.rc != nil {
		if id, ok := tx.rc.getLookup(field, hash); ok {
			return id, nil
		}
	}
	var id string
	if err := tx.scanRow(ctx, `SELECT subject_id FROM lookups WHERE field = ? AND hash = ?`,
		[]any{field, hash}, &id); err != nil {
		return "", formatError(err, "Lookup")
	}
	if tx.rc != nil {
		// Kept once the subject's entry exists (GetSubject fills it).
		tx.lookedUp = append(tx.lookedUp, lookupHit{field, hash, custos.SubjectID(id)})
	}
	return custos.SubjectID(id), nil
}

// DeleteLookups removes a subject's entries for field, or all when field
// is "". Deleting nothing is not an error.
func (tx *Tx) DeleteLookups(ctx context.Context, id custos.SubjectID, field string) error {
	defer tx.about(id)()
	var err error
	if field == "" {
		_, err = tx.exec(ctx, `DELETE FROM lookups WHERE subject_id = ?`, string(id))
	} else {
		_, err = tx.exec(ctx, `DELETE FROM lookups WHERE subject_id = ? AND field = ?`, string(id), field)
	}
	return formatError(err, "Lookup")
}
