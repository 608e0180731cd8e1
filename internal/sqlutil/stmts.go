package sqlutil

import (
	"context"
	"time"

	"custos"
)

// Querier is one store transaction as the statement code shared by the
// SQLite and PostgreSQL adapters sees it. Queries are written with ?
// placeholders; the PostgreSQL querier rewrites them (Dollar).
type Querier interface {
	// Exec runs a statement and returns the number of rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	// Query calls fn for each row.
	Query(ctx context.Context, query string, args []any, fn func(Scanner) error) error
	// QueryRow calls fn with the one row; no row makes Scan return
	// sql.ErrNoRows.
	QueryRow(ctx context.Context, query string, args []any, fn func(Scanner) error) error
	// Insert runs an INSERT and returns ECONFLICT when the key exists,
	// leaving the transaction usable on both stores.
	Insert(ctx context.Context, entity, query string, args ...any) error
	// Bool is b as the store keeps booleans (SQLite: 0/1).
	Bool(b bool) any
	// BoolColumn selects boolean column col as 0/1.
	BoolColumn(col string) string
	// Now is the transaction's fixed time.
	Now() time.Time
	// Greatest is the SQL function giving the largest of its arguments
	// (GREATEST on PostgreSQL, the scalar MAX on SQLite).
	Greatest() string
	// ArrayParams says that a list goes as one array parameter,
	// "col = ANY(?)" (PostgreSQL), not as "col IN (?, ?, …)" (SQLite). A
	// prepared statement's generic plan on PostgreSQL took an IN list of
	// parameters as a filter over every row of the key's first column,
	// building the array again for each (BENCHMARKS.md, fifth session).
	// Such a query's arguments begin with PlanEachTime.
	ArrayParams() bool
	// InsertMany is the verb of a multi-row INSERT: "INSERT OR FAIL" on
	// SQLite, "INSERT" on PostgreSQL. SQLite copies every page a
	// multi-row INSERT changes into a statement journal when a constraint
	// could abort it half way (ABORT undoes the statement alone); OR FAIL
	// stops it where it is instead, which needs no journal. A batch of
	// blind-index keys lands on random leaves, so the journal cost a bulk
	// load about a tenth of its writer (BENCHMARKS.md, twenty-first
	// session). Either way a failed statement fails its caller, which
	// undoes the whole transaction or savepoint. An immediate foreign key
	// still makes SQLite keep the journal; the lookups' key is deferred
	// (sqlite/migration/0010_lookups_deferred.sql).
	InsertMany() string
	// Error maps a driver error to the custos code for entity
	// (ENOTFOUND, ECONFLICT, EINTERNAL); nil stays nil.
	Error(err error, entity string) error
}

// Stmts implements the custos.Tx methods whose SQL is the same on both
// stores. An adapter's Tx embeds it, so the methods are written once.
type Stmts struct {
	Q Querier
}

// NewStmts returns the shared statements over q.
func NewStmts(q Querier) Stmts { return Stmts{Q: q} }

// queryAll runs query and appends each row that scan reads to out.
func queryAll[T any](ctx context.Context, q Querier, entity, query string, args []any, scan func(Scanner) (T, error)) ([]T, error) {
	out := []T{}
	err := q.Query(ctx, query, args, func(s Scanner) error {
		v, err := scan(s)
		if err == nil {
			out = append(out, v)
		}
		return err
	})
	if err != nil {
		return nil, q.Error(err, entity)
	}
	return out, nil
}

// queryOne runs query for one row.
func queryOne[T any](ctx context.Context, q Querier, entity, query string, args []any, scan func(Scanner) (T, error)) (T, error) {
	var v T
	err := q.QueryRow(ctx, query, args, func(s Scanner) (err error) {
		v, err = scan(s)
		return err
	})
	if err != nil {
		var zero T
		return zero, q.Error(err, entity)
	}
	return v, nil
}

// InsertNotice stores a published notice; ECONFLICT if the version exists.
func (st Stmts) InsertNotice(ctx context.Context, n *custos.Notice) error {
	args, err := NoticeArgs(n)
	if err != nil {
		return st.Q.Error(err, "Notice")
	}
	_, err = st.Q.Exec(ctx, InsertNoticeSQL, args...)
	return st.Q.Error(err, "Notice")
}

// GetNotice returns the notice with version, or ENOTFOUND.
func (st Stmts) GetNotice(ctx context.Context, version int) (*custos.Notice, error) {
	return queryOne(ctx, st.Q, "Notice", GetNoticeSQL, []any{version}, ScanNotice)
}

// ListNotices returns every notice, oldest first.
func (st Stmts) ListNotices(ctx context.Context) ([]*custos.Notice, error) {
	return queryAll(ctx, st.Q, "Notice", ListNoticesSQL, nil, ScanNotice)
}

// InsertConsent appends a consent decision and sets c.Seq.
func (st Stmts) InsertConsent(ctx context.Context, c *custos.StoredConsent) error {
	err := st.Q.QueryRow(ctx, InsertConsentSQL, ConsentArgs(c), func(s Scanner) error { return s.Scan(&c.Seq) })
	return st.Q.Error(err, "Consent")
}

// ListConsents returns a subject's consent history in recorded order.
func (st Stmts) ListConsents(ctx context.Context, id custos.SubjectID) ([]*custos.StoredConsent, error) {
	return queryAll(ctx, st.Q, "Consent", ListConsentsSQL, []any{string(id)}, ScanConsent)
}

// ListConsentsFor returns a subject's consent history for purposes, in
// recorded order.
func (st Stmts) ListConsentsFor(ctx context.Context, id custos.SubjectID, purposes []string) ([]*custos.StoredConsent, error) {
	if len(purposes) == 0 {
		return []*custos.StoredConsent{}, nil
	}
	args := make([]any, 0, 1+len(purposes))
	args = append(args, string(id))
	for _, p := range purposes {
		args = append(args, p)
	}
	q := `SELECT seq, ` + consentColumns + ` FROM consents WHERE subject_id = ? AND purpose IN (` +
		Placeholders(len(purposes)) + `) ORDER BY seq`
	return queryAll(ctx, st.Q, "Consent", q, args, ScanConsent)
}

// DeleteConsents removes a subject's consent history.
func (st Stmts) DeleteConsents(ctx context.Context, id custos.SubjectID) (int, error) {
	n, err := st.Q.Exec(ctx, DeleteConsentSQL, string(id))
	return int(n), st.Q.Error(err, "Consent")
}

// InsertRightsRequest stores a new rights request.
func (st Stmts) InsertRightsRequest(ctx context.Context, r *custos.StoredRightsRequest) error {
	args, err := RightsArgs(r)
	if err != nil {
		return st.Q.Error(err, "Rights request")
	}
	_, err = st.Q.Exec(ctx, InsertRightsSQL, args...)
	return st.Q.Error(err, "Rights request")
}

// GetRightsRequest returns the request with id, or ENOTFOUND.
func (st Stmts) GetRightsRequest(ctx context.Context, id string) (*custos.StoredRightsRequest, error) {
	return queryOne(ctx, st.Q, "Rights request", GetRightsSQL, []any{id}, ScanRights)
}

// UpdateRightsRequest saves r; ENOTFOUND if it does not exist.
func (st Stmts) UpdateRightsRequest(ctx context.Context, r *custos.StoredRightsRequest) error {
	args, err := RightsUpdateArgs(r)
	if err != nil {
		return st.Q.Error(err, "Rights request")
	}
	n, err := st.Q.Exec(ctx, UpdateRightsSQL, args...)
	if err == nil && n == 0 {
		return custos.Errorf(custos.ENOTFOUND, "Rights request not found.")
	}
	return st.Q.Error(err, "Rights request")
}

// ListRightsRequests returns requests matching f, earliest deadline first.
func (st Stmts) ListRightsRequests(ctx context.Context, f custos.RightsFilter) ([]*custos.StoredRightsRequest, error) {
	q, args := ListRightsSQL(f)
	return queryAll(ctx, st.Q, "Rights request", q, args, ScanRights)
}
