package sqlutil

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"custos"
)

// SkipDumpTable reports whether a table stays out of every dump (custos
// backup): the migrations bookkeeping, which the restoring store has of
// its own and which a restore compares instead, SQLite's internal
// tables, and PostgreSQL's read cache generation (cache_gen), which the restoring
// store has of its own and which no backup's data depends on. Every
// other table — including those later features add — is
// dumped, found at run time from the schema catalog.
func SkipDumpTable(name string) bool {
	return name == "migrations" || strings.HasPrefix(name, "sqlite_") || name == "cache_gen"
}

// QuoteIdent quotes a table or column name for SQL (both dialects).
func QuoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// ParentsFirst orders tables so that every table comes after the tables
// its foreign keys reference (parents maps a table to those), ties and
// cycles broken by name, so a load that inserts in this order satisfies
// its foreign keys as it goes.
func ParentsFirst(tables []string, parents map[string][]string) []string {
	tables = slices.Sorted(slices.Values(tables))
	done := map[string]bool{}
	visiting := map[string]bool{}
	var out []string
	var visit func(t string)
	visit = func(t string) {
		if done[t] || visiting[t] {
			return
		}
		visiting[t] = true
		for _, p := range slices.Sorted(slices.Values(parents[t])) {
			if p != t && slices.Contains(tables, p) {
				visit(p)
			}
		}
		visiting[t] = false
		done[t] = true
		out = append(out, t)
	}
	for _, t := range tables {
		visit(t)
	}
	return out
}

// InsertSQL returns a multi-row INSERT of n rows into table; ph returns
// the placeholder of the i-th argument (0-based); override is put between
// the column list and VALUES (PostgreSQL's OVERRIDING SYSTEM VALUE).
func InsertSQL(table string, cols []string, n int, ph func(i int) string, override string) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(QuoteIdent(table))
	b.WriteString(" (")
	for i, c := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(QuoteIdent(c))
	}
	b.WriteString(") ")
	if override != "" {
		b.WriteString(override + " ")
	}
	b.WriteString("VALUES ")
	arg := 0
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ph(arg))
			arg++
		}
		b.WriteByte(')')
	}
	return b.String()
}

// DollarPlaceholder is PostgreSQL's $1, $2, ….
func DollarPlaceholder(i int) string { return "$" + strconv.Itoa(i+1) }

// QuestionPlaceholder is SQLite's ?.
func QuestionPlaceholder(int) string { return "?" }

// ConvertDumpValue adapts a dumped value to a target column of portable
// type typ, for a dump taken from the other store: booleans are 0/1
// integers on SQLite, JSON is text there.
func ConvertDumpValue(v any, typ string) (any, error) {
	switch typ {
	case "bool":
		switch x := v.(type) {
		case int64:
			if x != 0 && x != 1 {
				return nil, fmt.Errorf("value %d for a boolean column", x)
			}
			return x == 1, nil
		}
	case "int":
		if x, ok := v.(bool); ok {
			if x {
				return int64(1), nil
			}
			return int64(0), nil
		}
	case "json", "text":
		if x, ok := v.([]byte); ok && typ == "json" {
			return string(x), nil
		}
	}
	return v, nil
}

// DumpColumnsMissing returns an EINVALID error when the target table lacks
// a column of the dump, or nil.
func DumpColumnsMissing(t *custos.DumpTable, target map[string]string) error {
	var missing []string
	for _, c := range t.Columns {
		if _, ok := target[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return custos.Errorf(custos.EINVALID, "The store's table %s has no column %s that the backup holds; restore with the custos version that took the backup.",
			t.Name, strings.Join(missing, ", "))
	}
	return nil
}

// NotEmpty is the error of a load into a store that holds rows.
func NotEmpty(table string) error {
	return custos.Errorf(custos.ECONFLICT, "The target store is not empty (table %s has rows); restore only into an empty store.", table)
}

// RowsQuerier is a *sql.Tx or *sql.Conn as the dump and load code uses it.
type RowsQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Each runs query and calls fn for each row.
func Each(ctx context.Context, q RowsQuerier, query string, args []any, fn func(r *sql.Rows) error) (err error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := rows.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DumpTable streams table t to w inside the caller's snapshot
// transaction: it counts the rows, announces the table, reads selectList
// (the columns, in t.Columns order) and writes every row, after fix when
// it is set, and checks that it read as many rows as it counted. Errors
// name the table, never a value.
func DumpTable(ctx context.Context, q RowsQuerier, w custos.DumpWriter, t *custos.DumpTable, selectList string, fix func(vals []any)) error {
	if err := q.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+QuoteIdent(t.Name)).Scan(&t.Rows); err != nil {
		return fmt.Errorf("dump: count %s: %w", t.Name, err)
	}
	if err := w.Table(t); err != nil {
		return err
	}
	vals := make([]any, len(t.Columns))
	ptrs := make([]any, len(t.Columns))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	err := Each(ctx, q, `SELECT `+selectList+` FROM `+QuoteIdent(t.Name), nil, func(r *sql.Rows) error {
		if err := r.Scan(ptrs...); err != nil {
			return fmt.Errorf("dump: scan %s: %w", t.Name, err)
		}
		if fix != nil {
			fix(vals)
		}
		n++
		return w.Row(vals)
	})
	if err != nil {
		return err
	}
	if n != t.Rows {
		return fmt.Errorf("dump: table %s: counted %d rows, read %d", t.Name, t.Rows, n)
	}
	return nil
}

// LoadSpec is how a store inserts dumped rows: the most variables one
// statement may carry, its placeholder form, an INSERT override clause
// ("" or OVERRIDING SYSTEM VALUE), and how it maps a driver error.
type LoadSpec struct {
	MaxVars     int
	Placeholder func(i int) string
	Override    string
	Error       func(err error, entity string) error
}

// LoadTable inserts the rows r gives for dt in batches of up to batch rows
// (fewer when the statement would exceed spec.MaxVars), converting each
// value to the column's type in cols.
func LoadTable(ctx context.Context, tx *sql.Tx, dt *custos.DumpTable, cols map[string]string, r custos.DumpReader, batch int, spec LoadSpec) error {
	per := max(1, min(batch, spec.MaxVars/max(1, len(dt.Columns))))
	stmt, err := tx.PrepareContext(ctx, InsertSQL(dt.Name, dt.Columns, per, spec.Placeholder, spec.Override))
	if err != nil {
		return spec.Error(fmt.Errorf("load: prepare %s: %w", dt.Name, err), "Row of "+dt.Name)
	}
	defer stmt.Close()
	args := make([]any, 0, per*len(dt.Columns))
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var err error
		if n == per {
			_, err = stmt.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, InsertSQL(dt.Name, dt.Columns, n, spec.Placeholder, spec.Override), args...)
		}
		if err != nil {
			return spec.Error(fmt.Errorf("load %s: %w", dt.Name, err), "Row of "+dt.Name)
		}
		args, n = args[:0], 0
		return nil
	}
	for {
		row, err := r.NextRow()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return err
		}
		for i, v := range row {
			cv, err := ConvertDumpValue(v, cols[dt.Columns[i]])
			if err != nil {
				return custos.Errorf(custos.EINVALID, "Table %s, column %s: %v.", dt.Name, dt.Columns[i], err)
			}
			args = append(args, cv)
		}
		if n++; n == per {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}
