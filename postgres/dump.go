package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strings"

	"custos"
	"custos/internal/sqlutil"
)

var _ custos.Dumper = (*DB)(nil)

// pgTable is a table of the current schema as a dump sees it.
type pgTable struct {
	custos.DumpTable
	identity bool // has an identity column: inserts need OVERRIDING SYSTEM VALUE
}

// dumpTables lists the base tables of the current schema (the first on
// the search path), parents before children.
func dumpTables(ctx context.Context, q sqlutil.RowsQuerier) ([]*pgTable, error) {
	byName := map[string]*pgTable{}
	var names []string
	err := sqlutil.Each(ctx, q, `SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name IN (
			SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE')
		ORDER BY table_name, ordinal_position`, nil, func(r *sql.Rows) error {
		var tn, cn, typ, ident string
		if err := r.Scan(&tn, &cn, &typ, &ident); err != nil {
			return err
		}
		if sqlutil.SkipDumpTable(tn) {
			return nil
		}
		t := byName[tn]
		if t == nil {
			t = &pgTable{DumpTable: custos.DumpTable{Name: tn}}
			byName[tn] = t
			names = append(names, tn)
		}
		t.Columns = append(t.Columns, cn)
		t.Types = append(t.Types, portableType(typ))
		t.identity = t.identity || ident == "YES"
		return nil
	})
	if err != nil {
		return nil, err
	}
	parents := map[string][]string{}
	err = sqlutil.Each(ctx, q, `SELECT ch.relname, pa.relname FROM pg_constraint c
		JOIN pg_class ch ON ch.oid = c.conrelid JOIN pg_class pa ON pa.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = ch.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema()`, nil, func(r *sql.Rows) error {
		var ch, pa string
		if err := r.Scan(&ch, &pa); err != nil {
			return err
		}
		parents[ch] = append(parents[ch], pa)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []*pgTable
	for _, n := range sqlutil.ParentsFirst(names, parents) {
		out = append(out, byName[n])
	}
	return out, nil
}

// portableType maps an information_schema data_type to a dump type.
func portableType(typ string) string {
	switch typ {
	case "bigint", "integer", "smallint":
		return "int"
	case "double precision", "real":
		return "real"
	case "text", "character varying", "character":
		return "text"
	case "bytea":
		return "blob"
	case "boolean":
		return "bool"
	case "json", "jsonb":
		return "json"
	}
	return "text" // read as text (see selectList), written back from text
}

// selectList reads every column in its dump type: JSON and any type
// without a dump type of its own as text.
func selectList(t *pgTable) string {
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = sqlutil.QuoteIdent(c)
		if t.Types[i] == "json" || t.Types[i] == "text" {
			cols[i] += "::text"
		}
	}
	return strings.Join(cols, ", ")
}

// Dump implements custos.Dumper in one REPEATABLE READ READ ONLY
// transaction: every table is read from the same snapshot while other
// nodes go on writing. Statements run under ctx alone: a large table takes
// longer than the per-statement timeout to stream.
func (db *DB) Dump(ctx context.Context, w custos.DumpWriter) error {
	conn, err := db.pool.Conn(ctx)
	if err != nil {
		return internal("dump: connect", err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return internal("dump: begin", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to undo, and the first error is the one returned
	tables, err := dumpTables(ctx, tx)
	if err != nil {
		return internal("dump: tables", err)
	}
	for _, t := range tables {
		// pgx gives int4 columns as int32; the dump format has int64.
		fix := func(vals []any) {
			for i, v := range vals {
				if i32, ok := v.(int32); ok {
					vals[i] = int64(i32)
				}
			}
		}
		if err := sqlutil.DumpTable(ctx, tx, w, &t.DumpTable, selectList(t), fix); err != nil {
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

// loadBatch bounds the rows of one INSERT (PostgreSQL allows 65535
// parameters per statement).
const loadBatch = 500

// Load implements custos.Dumper in one transaction. It takes the append
// lock first, so no node appends to the audit chain meanwhile; run it with
// every node stopped all the same.
func (db *DB) Load(ctx context.Context, r custos.DumpReader) error {
	return db.run(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, true, func(t *Tx) error {
		if err := t.lockAppend(ctx); err != nil {
			return formatError(err, "Lock")
		}
		// Its rows go in by statements of its own: the read caches'
		// generation moves on at its commit all the same.
		t.changed = true
		tx, ok := t.tx.(*sql.Tx) // db.run's transaction, never a commit group's
		if !ok {
			return internal("load", fmt.Errorf("unexpected transaction %T", t.tx))
		}
		target, err := dumpTables(ctx, tx)
		if err != nil {
			return internal("load: tables", err)
		}
		targets := map[string]*pgTable{}
		for _, tt := range target {
			var rows bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+sqlutil.QuoteIdent(tt.Name)+`)`).Scan(&rows); err != nil {
				return internal("load: count "+tt.Name, err)
			}
			if rows {
				return sqlutil.NotEmpty(tt.Name)
			}
			targets[tt.Name] = tt
		}
		for {
			dt, err := r.NextTable()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			tt, ok := targets[dt.Name]
			if !ok {
				return custos.Errorf(custos.EINVALID, "The store has no table %s that the backup holds; restore with the custos version that took the backup.", dt.Name)
			}
			cols := map[string]string{}
			for i, c := range tt.Columns {
				cols[c] = tt.Types[i]
			}
			if err := sqlutil.DumpColumnsMissing(dt, cols); err != nil {
				return err
			}
			if err := loadTable(ctx, tx, dt, cols, tt.identity, r); err != nil {
				return err
			}
		}
		// Identity and serial columns go on after the largest value loaded.
		for _, tt := range target {
			for _, c := range tt.Columns {
				var seq sql.NullString
				if err := tx.QueryRowContext(ctx, `SELECT pg_get_serial_sequence($1, $2)`, sqlutil.QuoteIdent(tt.Name), c).Scan(&seq); err != nil {
					return internal("load: sequence "+tt.Name, err)
				}
				if !seq.Valid {
					continue
				}
				q := fmt.Sprintf(`SELECT setval($1, MAX(%s)) FROM %s HAVING MAX(%s) IS NOT NULL`,
					sqlutil.QuoteIdent(c), sqlutil.QuoteIdent(tt.Name), sqlutil.QuoteIdent(c))
				if _, err := tx.ExecContext(ctx, q, seq.String); err != nil {
					return internal("load: sequence "+tt.Name, err)
				}
			}
		}
		return nil
	})
}

func loadTable(ctx context.Context, tx *sql.Tx, dt *custos.DumpTable, cols map[string]string, identity bool, r custos.DumpReader) error {
	spec := sqlutil.LoadSpec{MaxVars: 60000, Placeholder: sqlutil.DollarPlaceholder, Error: formatError}
	if identity {
		spec.Override = "OVERRIDING SYSTEM VALUE"
	}
	return sqlutil.LoadTable(ctx, tx, dt, cols, r, loadBatch, spec)
}
