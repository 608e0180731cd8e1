package postgres

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestServerRefused: only a failure PostgreSQL reported sends a group of
// creates ended in one round trip round again without deferring; any
// other, or a row that failed its check with no error at all, leaves the
// batch's outcome unknown (oneTripEnd), since its COMMIT may have run.
func TestServerRefused(t *testing.T) {
	taken := &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint"}
	for _, c := range []struct {
		name    string
		err     error
		refused bool
	}{
		{"unique violation", taken, true},
		{"wrapped", fmt.Errorf("lookup: %w", taken), true},
		{"connection lost", io.ErrUnexpectedEOF, false},
		{"a local failure", errors.New("scan: cannot decode"), false},
		{"no error: the check failed the row itself", nil, false},
	} {
		refused, unknown := serverRefused(c.err)
		if (refused != nil) != c.refused || unknown == c.refused {
			t.Errorf("%s: refused %v, unknown %v; want refused %v", c.name, refused, unknown, c.refused)
		}
		if c.refused && refused != c.err {
			t.Errorf("%s: refused %v, want the error itself", c.name, refused)
		}
	}
}
