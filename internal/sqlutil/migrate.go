package sqlutil

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"custos"
)

// MigrationTimeout bounds a migration's statements in place of the query
// timeout, which is sized for requests: a migration that rewrites a table
// takes time in proportion to the store (0014 rebuilds the blind index,
// about 20 s a million customers on SQLite), and one cut short rolls back
// and keeps the node from starting. A migration is a setup step that an
// operator starts and can interrupt.
const MigrationTimeout = time.Hour

// MigrationNames lists the *.sql files in dir of fsys by base name, in the
// order they are applied. Both stores embed the same names.
func MigrationNames(fsys fs.FS, dir string) []string {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		panic("sqlutil: bad migration pattern: " + err.Error())
	}
	for i, n := range names {
		names[i] = path.Base(n)
	}
	slices.Sort(names)
	return names
}

// PendingMigrations returns the known migrations missing from applied, or
// EINVALID when applied holds one this binary does not know (the database
// was migrated by a newer custos). store names the adapter in the cause.
func PendingMigrations(store string, known, applied []string) ([]string, error) {
	var unknown []string
	for _, name := range applied {
		if !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return nil, &custos.Error{Code: custos.EINVALID,
			Message: "The database was migrated by a newer custos; upgrade custos to use it.",
			Err:     fmt.Errorf("%s: unknown migrations %s", store, strings.Join(unknown, ", "))}
	}
	var pending []string
	for _, name := range known {
		if !slices.Contains(applied, name) {
			pending = append(pending, name)
		}
	}
	return pending, nil
}

// SchemaOutOfDate is the error of a store opened without migrating while
// migrations are pending.
func SchemaOutOfDate(store string, pending []string) error {
	return &custos.Error{Code: custos.EINVALID,
		Message: "Database schema is out of date; run custos migrate or start with --migrate.",
		Err:     fmt.Errorf("%s: %d pending migrations, first %s", store, len(pending), pending[0])}
}
