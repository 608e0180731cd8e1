package custos

import "context"

// DumpTable describes one table of a logical dump (custos backup, S7).
// Types are portable names, so a dump taken from one store can be loaded
// into the other when their columns line up: "int", "real", "text",
// "blob", "bool" and "json".
type DumpTable struct {
	Name    string
	Columns []string
	Types   []string
	// Rows is the table's row count in the dump's snapshot.
	Rows int64
}

// Dumper is implemented by a store adapter that can write its tables out
// and load them back: plain SQL, no crypto and no business rules. Row
// values are nil, int64, float64, string, []byte or bool.
type Dumper interface {
	// Dump reads every table of the store (apart from bookkeeping such as
	// the migrations table) in ONE consistent read snapshot, while other
	// transactions go on, and hands them to w: for each table, Table
	// once, then Row once per row. Tables referenced by foreign keys come
	// before the tables that reference them.
	Dump(ctx context.Context, w DumpWriter) error
	// Load writes a dump into the store in ONE transaction. It refuses a
	// store holding any row (ECONFLICT naming the table) and a dump whose
	// tables or columns the store lacks (EINVALID); any error from r
	// rolls everything back, leaving the store as empty as it was.
	Load(ctx context.Context, r DumpReader) error
	// AppliedMigrations returns the names of the applied migrations, in
	// order: a dump loads only into a store of the same schema.
	AppliedMigrations(ctx context.Context) ([]string, error)
}

// DumpWriter receives a dump.
type DumpWriter interface {
	Table(t *DumpTable) error
	Row(values []any) error
}

// DumpReader hands out a dump.
type DumpReader interface {
	// NextTable returns the next table, or io.EOF after the last one,
	// once the whole dump is known to be intact.
	NextTable() (*DumpTable, error)
	// NextRow returns the next row of the current table, or io.EOF after
	// its last row. The slice is valid until the next call.
	NextRow() ([]any, error)
}
