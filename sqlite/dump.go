package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"strings"

	"custos"
	"custos/internal/sqlutil"
)

var _ custos.Dumper = (*DB)(nil)

// AppliedMigrations returns the names of the applied migrations, in order.
func (db *DB) AppliedMigrations(ctx context.Context) ([]string, error) {
	var applied []string
	err := db.run(ctx, db.read, nil, &sql.TxOptions{ReadOnly: true}, func(tx *Tx) error {
		return tx.query(ctx, `SELECT name FROM migrations ORDER BY name`, nil, func(s scanner) error {
			var name string
			if err := s.Scan(&name); err != nil {
				return err
			}
			applied = append(applied, name)
			return nil
		})
	})
	if err != nil {
		return nil, formatError(err, "Migration")
	}
	return applied, nil
}

// dumpTables lists the tables to dump, parents before children, with
// their columns and portable types.
func dumpTables(ctx context.Context, q sqlutil.RowsQuerier) ([]*custos.DumpTable, error) {
	var names []string
	if err := sqlutil.Each(ctx, q, `SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`, nil, func(r *sql.Rows) error {
		var n string
		if err := r.Scan(&n); err != nil {
			return err
		}
		if !sqlutil.SkipDumpTable(n) {
			names = append(names, n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	parents := map[string][]string{}
	byName := map[string]*custos.DumpTable{}
	for _, n := range names {
		t := &custos.DumpTable{Name: n}
		if err := sqlutil.Each(ctx, q, `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`, []any{n}, func(r *sql.Rows) error {
			var c, typ string
			if err := r.Scan(&c, &typ); err != nil {
				return err
			}
			t.Columns = append(t.Columns, c)
			t.Types = append(t.Types, portableType(typ))
			return nil
		}); err != nil {
			return nil, err
		}
		if err := sqlutil.Each(ctx, q, `SELECT "table" FROM pragma_foreign_key_list(?)`, []any{n}, func(r *sql.Rows) error {
			var p string
			if err := r.Scan(&p); err != nil {
				return err
			}
			parents[n] = append(parents[n], p)
			return nil
		}); err != nil {
			return nil, err
		}
		byName[n] = t
	}
	var out []*custos.DumpTable
	for _, n := range sqlutil.ParentsFirst(names, parents) {
		out = append(out, byName[n])
	}
	return out, nil
}

// portableType maps a declared SQLite column type to a dump type.
func portableType(decl string) string {
	switch strings.ToUpper(decl) {
	case "INTEGER", "INT":
		return "int"
	case "REAL":
		return "real"
	case "TEXT":
		return "text"
	case "BLOB":
		return "blob"
	}
	return "any"
}

// Dump implements custos.Dumper: one read transaction on the read pool,
// whose WAL snapshot stays fixed from its first read to its end while the
// writer goes on committing. Statements run under ctx alone: a large
// table takes longer than the per-statement timeout to stream.
func (db *DB) Dump(ctx context.Context, w custos.DumpWriter) error {
	conn, err := db.read.Conn(ctx)
	if err != nil {
		return internal("dump: connect", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return internal("dump: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to undo, and the first error is the one returned
	tables, err := dumpTables(ctx, tx)
	if err != nil {
		return internal("dump: tables", err)
	}
	// The snapshot is fixed by now; what it holds goes out only once it
	// is on disk (durable.go).
	if err := db.dur.wait(ctx); err != nil {
		return err
	}
	for _, t := range tables {
		cols := make([]string, len(t.Columns))
		for i, c := range t.Columns {
			cols[i] = sqlutil.QuoteIdent(c)
		}
		if err := sqlutil.DumpTable(ctx, tx, w, t, strings.Join(cols, ", "), nil); err != nil {
			if custos.AsError(err) != nil {
				return err
			}
			return internal("dump", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return internal("dump: end", err)
	}
	return nil
}

// loadBatch bounds the rows of one INSERT (and its variables well below
// SQLite's limit of 32766).
const loadBatch = 1000

// Load implements custos.Dumper in one write transaction.
func (db *DB) Load(ctx context.Context, r custos.DumpReader) error {
	return db.Update(ctx, loadFn(ctx, r))
}

// loadFn is Load's Update function.
func loadFn(ctx context.Context, r custos.DumpReader) func(t custos.Tx) error {
	return func(t custos.Tx) error {
		// The rows below bypass InsertAuditEvent, so the group's audit
		// head is read from the table again afterwards.
		defer func() {
			if h := t.(*Tx).head; h != nil {
				h.known = false
			}
		}()
		if inv := t.(*Tx).inv; inv != nil {
			inv.all = true // rows written below bypass Tx.note
		}
		tx, err := t.(*Tx).raw(ctx)
		if err != nil {
			return err
		}
		// Foreign keys are checked at commit, so a dump whose tables
		// came in another order (another store's) still loads.
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return internal("load", err)
		}
		target, err := dumpTables(ctx, tx)
		if err != nil {
			return internal("load: tables", err)
		}
		targetCols := map[string]map[string]string{}
		for _, tt := range target {
			var any1 int
			err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+sqlutil.QuoteIdent(tt.Name)+`)`).Scan(&any1)
			if err != nil {
				return internal("load: count "+tt.Name, err)
			}
			if any1 != 0 {
				return sqlutil.NotEmpty(tt.Name)
			}
			targetCols[tt.Name] = map[string]string{}
			for i, c := range tt.Columns {
				targetCols[tt.Name][c] = tt.Types[i]
			}
		}
		for {
			dt, err := r.NextTable()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			cols, ok := targetCols[dt.Name]
			if !ok {
				return custos.Errorf(custos.EINVALID, "The store has no table %s that the backup holds; restore with the custos version that took the backup.", dt.Name)
			}
			if err := sqlutil.DumpColumnsMissing(dt, cols); err != nil {
				return err
			}
			if err := loadTable(ctx, tx, dt, cols, r); err != nil {
				return err
			}
		}
	}
}

func loadTable(ctx context.Context, tx *sql.Tx, dt *custos.DumpTable, cols map[string]string, r custos.DumpReader) error {
	return sqlutil.LoadTable(ctx, tx, dt, cols, r, loadBatch,
		sqlutil.LoadSpec{MaxVars: 30000, Placeholder: sqlutil.QuestionPlaceholder, Error: formatError})
}
