package postgres

import (
	"context"
	"time"

	"custos"
)

// The shared statements that change a customer's cached rows, scoped to
// that customer (Tx.about), so that the transaction moves only their
// slot's read cache generation (readcache.go).

// InsertConsent appends a consent decision and sets c.Seq.
func (tx *Tx) InsertConsent(ctx context.Context, c *custos.StoredConsent) error {
	defer tx.about(c.SubjectID)()
	return tx.Stmts.InsertConsent(ctx, c)
}

// InsertConsents appends consent decisions in multi-row statements and
// sets their Seqs.
func (tx *Tx) InsertConsents(ctx context.Context, cs []*custos.StoredConsent) error {
	if len(cs) == 0 {
		return nil
	}
	// An import's consents come a customer's at a time: the scope names
	// each customer once.
	ids := make([]custos.SubjectID, 0, len(cs))
	for i, c := range cs {
		if i == 0 || c.SubjectID != cs[i-1].SubjectID {
			ids = append(ids, c.SubjectID)
		}
	}
	defer tx.about(ids...)()
	return tx.Stmts.InsertConsents(ctx, cs)
}

// DeleteConsents removes a subject's consent history.
func (tx *Tx) DeleteConsents(ctx context.Context, id custos.SubjectID) (int, error) {
	defer tx.about(id)()
	return tx.Stmts.DeleteConsents(ctx, id)
}

// RestrictSubject sets restricted_until; the zero time lifts it. ENOTFOUND.
func (tx *Tx) RestrictSubject(ctx context.Context, id custos.SubjectID, until time.Time) error {
	defer tx.about(id)()
	return tx.Stmts.RestrictSubject(ctx, id, until)
}
