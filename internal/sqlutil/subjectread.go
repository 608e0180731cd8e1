package sqlutil

import (
	"bytes"
	"database/sql"
	"slices"

	"custos"
)

// SubjectReadSQL is the SELECT list and joins of a read of one subject
// (s) with its data key (k) and consent history (c), which both stores
// run on a read that would otherwise take a statement for each: a row
// for each consent, or one with NULL consent columns when there is none;
// the statement adds its WHERE and ORDER BY c.seq. sealed is the
// expression for the subject's sealed column (a store may send it with
// the first row only).
func SubjectReadSQL(sealed string) string {
	return SubjectReadSelect("", sealed) + `
	FROM subjects s
	LEFT JOIN data_keys k ON k.subject_id = s.id
	LEFT JOIN consents c ON c.subject_id = s.id`
}

// SubjectReadSelect is the SELECT list of SubjectReadSQL with lead,
// columns (each followed by a comma) that come before the subject's in
// each row, for a statement that joins s, k and c in a way of its own: a
// statement reading several subjects says with lead which of its asks
// each row answers (SubjectRow.Scan's lead).
func SubjectReadSelect(lead, sealed string) string {
	return `SELECT ` + lead + `s.id, ` + sealed + `, s.created_at, s.updated_at, s.restricted_until,
	k.version, k.kek_version, k.wrapped, k.created_at,
	c.seq, c.id, c.purpose, c.scope, c.action, c.notice_version, c.at, c.channel, c.initiated_by, c.by_guardian, c.actor_id, c.sealed`
}

// SubjectRead collects the rows of a SubjectReadSQL statement.
type SubjectRead struct {
	Subject  *custos.StoredSubject // nil until a row is scanned
	Key      *custos.DataKey       // nil: the subject has none
	Consents []*custos.StoredConsent
	// ConsentsOf, when set, returns the subject's consents for purposes,
	// in recorded order, each the caller's own copy, in place of Consents:
	// a read cache's entry decodes only those asked for.
	ConsentsOf func(purposes []string) []*custos.StoredConsent
}

// Scan reads one row: the subject and its key from the first, a consent
// from each. An error decoding the sealed column is returned as is.
func (r *SubjectRead) Scan(s Scanner) error {
	var row SubjectRow
	if err := row.Scan(s); err != nil {
		return err
	}
	return r.Add(&row)
}

// SubjectRow is one row of a SubjectReadSQL statement, or of one built on
// SubjectReadSelect.
type SubjectRow struct {
	ID                           string // the subject's
	sealed, wrapped, cSealed     []byte
	created, updated, restricted int64
	version, kekVersion, keyAt   sql.NullInt64
	seq, notice, at, guardian    sql.NullInt64
	cid, purpose, scope, action  sql.NullString
	channel, initiated, actor    sql.NullString
}

// Scan reads the row's lead columns into lead, the rest into w.
func (w *SubjectRow) Scan(s Scanner, lead ...any) error {
	return s.Scan(append(lead, &w.ID, &w.sealed, &w.created, &w.updated, &w.restricted,
		&w.version, &w.kekVersion, &w.wrapped, &w.keyAt,
		&w.seq, &w.cid, &w.purpose, &w.scope, &w.action, &w.notice, &w.at, &w.channel, &w.initiated, &w.guardian, &w.actor, &w.cSealed)...)
}

// Add takes the subject and its key from w if r has none yet (w must then
// carry the sealed column), and w's consent if it has one.
func (r *SubjectRead) Add(w *SubjectRow) error {
	if r.Subject == nil {
		st, err := Subject(custos.SubjectID(w.ID), w.sealed, w.created, w.updated, w.restricted)
		if err != nil {
			return err
		}
		r.Subject, r.Consents = st, []*custos.StoredConsent{}
		if w.version.Valid {
			r.Key = &custos.DataKey{SubjectID: st.ID, Version: int(w.version.Int64), KEKVersion: int(w.kekVersion.Int64),
				Wrapped: orNil(w.wrapped), CreatedAt: Time(w.keyAt.Int64)}
		}
	}
	if w.seq.Valid {
		r.Consents = append(r.Consents, &custos.StoredConsent{Seq: w.seq.Int64, ID: w.cid.String, SubjectID: r.Subject.ID,
			Purpose: w.purpose.String, Scope: w.scope.String, Action: w.action.String, NoticeVersion: int(w.notice.Int64),
			At: Time(w.at.Int64), Channel: w.channel.String, InitiatedBy: w.initiated.String,
			ByGuardian: w.guardian.Int64 != 0, ActorID: custos.PrincipalID(w.actor.String), Sealed: orNil(w.cSealed)})
	}
	return nil
}

// SubjectReads keeps what a read-only transaction's SubjectReadSQL
// statements fetched with their subjects, so that its later GetDataKey
// and ListConsentsFor answer without a statement. Its zero value is
// empty; every answer is the caller's own copy.
type SubjectReads struct {
	keys map[custos.SubjectID]*custos.DataKey
	// consents answers a ConsentsFor of each subject kept: its
	// SubjectRead's ConsentsOf, or a copy from its Consents.
	consents map[custos.SubjectID]func(purposes []string) []*custos.StoredConsent
}

// Keep records r's key and consents (r.Subject must be set).
func (s *SubjectReads) Keep(r *SubjectRead) {
	if s.keys == nil {
		s.keys = map[custos.SubjectID]*custos.DataKey{}
		s.consents = map[custos.SubjectID]func([]string) []*custos.StoredConsent{}
	}
	of := r.ConsentsOf
	if of == nil {
		history := r.Consents
		of = func(purposes []string) []*custos.StoredConsent { return ConsentsFor(history, purposes) }
	}
	s.keys[r.Subject.ID], s.consents[r.Subject.ID] = r.Key, of
}

// Key returns the data key kept for id: ok is false when none was read
// with id, and the key nil when id has none.
func (s *SubjectReads) Key(id custos.SubjectID) (k *custos.DataKey, ok bool) {
	k, ok = s.keys[id]
	if k != nil {
		k = CloneKey(k)
	}
	return k, ok
}

// CloneKey copies k down to its bytes.
func CloneKey(k *custos.DataKey) *custos.DataKey {
	cp := *k
	cp.Wrapped = bytes.Clone(k.Wrapped)
	return &cp
}

// CloneConsent copies c down to its bytes.
func CloneConsent(c *custos.StoredConsent) *custos.StoredConsent {
	cp := *c
	cp.Sealed = bytes.Clone(c.Sealed)
	return &cp
}

// ConsentsFor returns the consents kept for id whose purpose is one of
// purposes, in recorded order; ok is false when none were read with id.
func (s *SubjectReads) ConsentsFor(id custos.SubjectID, purposes []string) (l []*custos.StoredConsent, ok bool) {
	of, ok := s.consents[id]
	if !ok {
		return nil, false
	}
	return of(purposes), true
}

// ConsentsFor copies the consents of history whose purpose is one of
// purposes, in order.
func ConsentsFor(history []*custos.StoredConsent, purposes []string) []*custos.StoredConsent {
	out := []*custos.StoredConsent{}
	for _, c := range history {
		if slices.Contains(purposes, c.Purpose) {
			out = append(out, CloneConsent(c))
		}
	}
	return out
}
