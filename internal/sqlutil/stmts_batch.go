package sqlutil

import (
	"context"
	"strings"

	"custos"
)

// BatchRows is how many rows one batch statement carries at most, so that
// a statement stays far below both stores' placeholder limits (SQLite
// 32,766, PostgreSQL 65,535) and the texts of the statements are few.
const BatchRows = 128

// Values returns n tuples of cols placeholders: "(?, ?), (?, ?)".
func Values(n, cols int) string {
	tuple := "(" + strings.Repeat("?, ", cols-1) + "?)"
	var b strings.Builder
	b.Grow(n * (len(tuple) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(tuple)
	}
	return b.String()
}

// Chunks calls fn with [lo, hi) ranges covering n items, in order, and
// stops at the first error. The ranges are BatchRows long, and the rest
// is split into powers of two (64, 32, …, 1), so that a batch statement
// has one of only eight sizes: the SQLite store keeps prepared statements
// by their text, and a few texts per statement stay prepared.
func Chunks(n int, fn func(lo, hi int) error) error {
	lo := 0
	for size := BatchRows; size > 0; size /= 2 {
		for n-lo >= size {
			if err := fn(lo, lo+size); err != nil {
				return err
			}
			lo += size
			if size < BatchRows {
				break
			}
		}
	}
	return nil
}

// InsertRows runs a multi-row INSERT (q.InsertMany) INTO into of n rows
// that must all be new: a row whose key exists is skipped by ON CONFLICT
// DO NOTHING (which keeps a PostgreSQL transaction usable) and turns into
// ECONFLICT. into is the table, its columns and VALUES.
func InsertRows(ctx context.Context, q Querier, entity, into string, n int, args []any) error {
	got, err := q.Exec(ctx, q.InsertMany()+` INTO `+into+` ON CONFLICT DO NOTHING`, args...)
	if err != nil {
		return q.Error(err, entity)
	}
	if got != int64(n) {
		return custos.Errorf(custos.ECONFLICT, "%s already exists.", entity)
	}
	return nil
}

// InsertSubjects stores ss; ECONFLICT if an id exists.
func (st Stmts) InsertSubjects(ctx context.Context, ss []*custos.StoredSubject) error {
	return Chunks(len(ss), func(lo, hi int) error {
		args := make([]any, 0, 4*(hi-lo))
		for _, s := range ss[lo:hi] {
			args = append(args, string(s.ID), EncodeSealed(s.Sealed), Micros(s.CreatedAt), Micros(s.UpdatedAt))
		}
		return InsertRows(ctx, st.Q, "Subject", `subjects (id, sealed, created_at, updated_at) VALUES `+Values(hi-lo, 4), hi-lo, args)
	})
}

// InsertDataKeys stores ks; ECONFLICT if a subject has a key.
func (st Stmts) InsertDataKeys(ctx context.Context, ks []*custos.DataKey) error {
	return Chunks(len(ks), func(lo, hi int) error {
		args := make([]any, 0, 5*(hi-lo))
		for _, k := range ks[lo:hi] {
			args = append(args, string(k.SubjectID), k.Version, k.KEKVersion, k.Wrapped, Micros(k.CreatedAt))
		}
		return InsertRows(ctx, st.Q, "Data key", `data_keys (subject_id, version, kek_version, wrapped, created_at) VALUES `+Values(hi-lo, 5), hi-lo, args)
	})
}

// InsertLookups stores ls; ECONFLICT if a (field, hash) exists, without
// naming its owner (FindLookups does).
func (st Stmts) InsertLookups(ctx context.Context, ls []custos.Lookup) error {
	return Chunks(len(ls), func(lo, hi int) error {
		args := make([]any, 0, 3*(hi-lo))
		for _, l := range ls[lo:hi] {
			args = append(args, l.Field, l.Hash, string(l.SubjectID))
		}
		return InsertRows(ctx, st.Q, "Lookup", `lookups (field, hash, subject_id) VALUES `+Values(hi-lo, 3), hi-lo, args)
	})
}

// FindLookups returns the owners of those of hashes that field has, keyed
// by string(hash).
func (st Stmts) FindLookups(ctx context.Context, field string, hashes [][]byte) (map[string]custos.SubjectID, error) {
	out := map[string]custos.SubjectID{}
	scan := func(s Scanner) error {
		var (
			h  []byte
			id string
		)
		if err := s.Scan(&h, &id); err != nil {
			return err
		}
		out[string(h)] = custos.SubjectID(id)
		return nil
	}
	err := queryIn(ctx, st.Q, `SELECT hash, subject_id FROM lookups WHERE field = ? AND hash `, field, hashes, scan)
	if err != nil {
		return nil, st.Q.Error(err, "Lookup")
	}
	return out, nil
}

// PlanEachTime, as a query's first argument, asks a store that caches
// query plans (PostgreSQL) to plan this run for its actual parameters. A
// list query's cached generic plan is made without knowing how long the
// list is or, early on, how large the table will grow: on PostgreSQL the
// import's duplicate check was planned once as a sequential scan of
// lookups while the table was small, and later took 60 s a batch
// (BENCHMARKS.md, sixth session).
type PlanEachTime struct{}

// queryIn runs query, which ends in "AND col ", completed with the list
// condition for values after the lead argument: "= ANY(?)" with one array,
// planned for it (PlanEachTime), where the store takes lists as arrays
// (Querier.ArrayParams), else "IN (?, …)" in chunks of parameters. No
// values, no query.
func queryIn[T any](ctx context.Context, q Querier, query string, lead any, values []T, scan func(Scanner) error) error {
	if len(values) == 0 {
		return nil
	}
	if q.ArrayParams() {
		return q.Query(ctx, query+`= ANY(?)`, []any{PlanEachTime{}, lead, values}, scan)
	}
	return Chunks(len(values), func(lo, hi int) error {
		args := make([]any, 0, 1+hi-lo)
		args = append(args, lead)
		for _, v := range values[lo:hi] {
			args = append(args, v)
		}
		return q.Query(ctx, query+`IN (`+Placeholders(hi-lo)+`)`, args, scan)
	})
}

// InsertRecords stores rs; their subjects must exist. ECONFLICT if an id
// exists.
func (st Stmts) InsertRecords(ctx context.Context, rs []*custos.StoredRecord) error {
	return Chunks(len(rs), func(lo, hi int) error {
		args := make([]any, 0, 8*(hi-lo))
		for _, r := range rs[lo:hi] {
			args = append(args, string(r.ID), string(r.SubjectID), r.Type, r.Category, Micros(r.OccurredAt), Micros(r.CreatedAt),
				r.Sealed, OptMicros(r.RestrictedUntil))
		}
		return InsertRows(ctx, st.Q, "Record", `records (id, subject_id, type, category, occurred_at, created_at, sealed, restricted_until) VALUES `+
			Values(hi-lo, 8), hi-lo, args)
	})
}

// InsertConsents appends cs in order, as InsertConsent would one by one,
// and sets each one's Seq. ECONFLICT if an id exists. The seqs are
// matched to the rows by id: neither store promises to return the rows
// of a multi-row INSERT … RETURNING in the order of its VALUES.
func (st Stmts) InsertConsents(ctx context.Context, cs []*custos.StoredConsent) error {
	return Chunks(len(cs), func(lo, hi int) error {
		args := make([]any, 0, 12*(hi-lo))
		byID := make(map[string]*custos.StoredConsent, hi-lo)
		for _, c := range cs[lo:hi] {
			args = appendConsentArgs(args, c)
			byID[c.ID] = c
		}
		got := 0
		q := st.Q.InsertMany() + ` INTO consents (` + consentColumns + `) VALUES ` + Values(hi-lo, 12) + ` ON CONFLICT DO NOTHING RETURNING id, seq`
		err := st.Q.Query(ctx, q, args, func(s Scanner) error {
			var (
				id  string
				seq int64
			)
			if err := s.Scan(&id, &seq); err != nil {
				return err
			}
			if c := byID[id]; c != nil {
				c.Seq = seq
				got++
			}
			return nil
		})
		if err != nil {
			return st.Q.Error(err, "Consent")
		}
		if got != hi-lo {
			return custos.Errorf(custos.ECONFLICT, "Consent already exists.")
		}
		return nil
	})
}

// InsertConsentsNumbered stores cs with the Seqs they carry, which must
// be new and above every seq the table has had: for a store whose single
// writer hands out the seqs itself (SQLite). It does what InsertConsents
// does without reading back a row per consent: on SQLite a multi-row
// INSERT … RETURNING collects its rows in a temporary table first, and
// the consents cost a third less without it (BENCHMARKS.md,
// twenty-third session). ECONFLICT if an id or a seq exists.
func (st Stmts) InsertConsentsNumbered(ctx context.Context, cs []*custos.StoredConsent) error {
	return Chunks(len(cs), func(lo, hi int) error {
		args := make([]any, 0, 13*(hi-lo))
		for _, c := range cs[lo:hi] {
			args = appendConsentArgs(append(args, c.Seq), c)
		}
		return InsertRows(ctx, st.Q, "Consent", `consents (seq, `+consentColumns+`) VALUES `+Values(hi-lo, 13), hi-lo, args)
	})
}
