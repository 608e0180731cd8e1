package postgres

import (
	"testing"

	"custos/internal/sqlutil"
)

// TestChangesCached: the statements that may change a row a read cache
// holds move the cache generation on (readcache.go); inserts of a new
// customer's rows, reads and audit appends do not.
func TestChangesCached(t *testing.T) {
	for _, c := range []struct {
		query string
		want  bool
	}{
		{`UPDATE subjects SET sealed = $1, updated_at = $2 WHERE id = $3`, true},
		{`DELETE FROM data_keys WHERE subject_id = $1`, true},
		{`DELETE FROM lookups WHERE subject_id = $1 AND field = $2`, true},
		{eraseRowsSQL, true}, // deletes inside WITH
		{sqlutil.InsertConsentSQL, true},
		{sqlutil.DeleteConsentSQL, true},
		{`update  "subjects" set restricted_until = $1 where id = $2`, true},
		{`TRUNCATE lookups`, true},
		{`INSERT INTO lookups (field, hash, subject_id) VALUES ($1, $2, $3) ON CONFLICT (field, hash) DO UPDATE SET subject_id = excluded.subject_id`, true},
		{newSubjectSQL(" ON CONFLICT DO NOTHING"), false},
		{insertNewSubjectStrict, false},
		{`INSERT INTO subjects (id, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, false},
		{lockSubjectSQL, false}, // SELECT … FOR UPDATE
		{serverChainSQL, false},
		{`UPDATE subject_lifecycle SET at = $1 WHERE subject_id = $2`, false},
		{`DELETE FROM records WHERE subject_id = $1`, false},
		{bumpGenSQL, false},
	} {
		if got := changesCached(c.query); got != c.want {
			t.Errorf("changesCached(%.80q) = %v, want %v", c.query, got, c.want)
		}
	}
}
