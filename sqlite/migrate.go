package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"time"

	"custos/internal/sqlutil"
)

// migrationFS holds the schema migrations. They are forward-only and
// append-only: a migration that has shipped is never edited, and the same
// names exist in postgres/migration.
//
//go:embed migration/*.sql
var migrationFS embed.FS

// MigrationNames returns the names of the migrations this binary carries
// ("0001_init.sql", …) in the order they are applied.
func MigrationNames() []string { return sqlutil.MigrationNames(migrationFS, "migration") }

const createMigrations = `CREATE TABLE IF NOT EXISTS migrations (
	name       TEXT PRIMARY KEY,
	applied_at INTEGER NOT NULL
) STRICT`

// Migrate applies the pending migrations in order, each in its own
// transaction together with its row in the migrations table. It refuses a
// database migrated by a newer custos (EINVALID).
func (db *DB) Migrate(ctx context.Context) error { return db.MigrateReporting(ctx, nil) }

// MigrateReporting is Migrate, calling report, when not nil, as each
// migration starts (done false) and once it is applied (done true, with
// the time it took), so that an operator sees which one a long upgrade
// is in (custos migrate up).
func (db *DB) MigrateReporting(ctx context.Context, report func(name string, done bool, took time.Duration)) error {
	if err := db.checkOpen(); err != nil {
		return err
	}
	if err := db.exec(ctx, createMigrations); err != nil {
		return err
	}
	pending, err := db.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	for _, name := range pending {
		start := time.Now()
		if report != nil {
			report(name, false, 0)
		}
		if err := db.migrateFile(ctx, name); err != nil {
			return err
		}
		if report != nil {
			report(name, true, time.Since(start))
		}
	}
	return nil
}

func (db *DB) migrateFile(ctx context.Context, name string) (err error) {
	body, err := migrationFS.ReadFile("migration/" + name)
	if err != nil {
		return internal("migrate "+name, err)
	}
	// The write connection keeps temporary data in memory (temp_store,
	// for statement journals); a migration that builds an index sorts
	// every row of a table, and held that sort in memory too: 1.6 GB to
	// rebuild the blind index of a million customers (0014). Its
	// temporary data goes to files instead, which SQLite deletes when it
	// closes them; they hold what the table holds, sealed values, keys
	// and ids, never personal data in plaintext. The pragma cannot change
	// inside a transaction, so it is set around it, on the pool's only
	// connection.
	if err := db.exec(ctx, `PRAGMA temp_store = FILE`); err != nil {
		return err
	}
	defer func() {
		if rerr := db.exec(context.WithoutCancel(ctx), `PRAGMA temp_store = MEMORY`); rerr != nil && err == nil {
			err = rerr
		}
	}()
	// Other processes' read caches may hold rows the migration changes.
	token := db.gen.pendCache()
	defer func() {
		db.gen.add()
		db.gen.unpendCache(token)
	}()
	return db.run(ctx, db.write, nil, nil, func(tx *Tx) error {
		// The row goes first: if another process applied this migration
		// meanwhile, the primary key stops us before the schema changes.
		if _, err := tx.exec(ctx, `INSERT INTO migrations (name, applied_at) VALUES (?, ?)`,
			name, sqlutil.Micros(tx.now)); err != nil {
			return internal("migrate "+name, err)
		}
		tx.timeout = max(tx.timeout, sqlutil.MigrationTimeout)
		if _, err := tx.exec(ctx, string(body)); err != nil {
			return internal("migrate "+name, err)
		}
		return nil
	})
}

// PendingMigrations returns the migrations not applied yet, in order. It
// changes nothing, and returns EINVALID if the database holds a migration
// this binary does not know.
func (db *DB) PendingMigrations(ctx context.Context) ([]string, error) {
	var applied []string
	err := db.run(ctx, db.read, nil, &sql.TxOptions{ReadOnly: true}, func(tx *Tx) error {
		var n int
		if err := tx.scanRow(ctx, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'migrations'`,
			nil, &n); err != nil {
			return internal("migrations", err)
		}
		if n == 0 {
			return nil
		}
		return tx.query(ctx, `SELECT name FROM migrations ORDER BY name`, nil, func(s scanner) error {
			var name string
			if err := s.Scan(&name); err != nil {
				return internal("migrations", err)
			}
			applied = append(applied, name)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return sqlutil.PendingMigrations("sqlite", MigrationNames(), applied)
}

// checkSchema migrates, or refuses an out-of-date schema, as Open was told.
func (db *DB) checkSchema(ctx context.Context, migrate bool) error {
	if migrate {
		return db.Migrate(ctx)
	}
	pending, err := db.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		return sqlutil.SchemaOutOfDate("sqlite", pending)
	}
	return nil
}

// exec runs one statement outside any transaction on the write connection.
func (db *DB) exec(ctx context.Context, query string) error {
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	// Counted as a change, whatever it did: for kept snapshots
	// (kept.go) and, bracketed as a commit, for early answers
	// (durable.go); outside a transaction the statement is its commit.
	err := db.gen.commitData(true, func() error {
		_, err := db.write.ExecContext(ctx, query)
		return err
	})
	if err != nil {
		return internal("exec", err)
	}
	return nil
}
