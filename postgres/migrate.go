package postgres

import (
	"context"
	"database/sql"
	"embed"
	"time"

	"custos/internal/sqlutil"
)

// migrationFS holds the schema migrations. They are forward-only and
// append-only: a migration that has shipped is never edited, and the same
// names exist in sqlite/migration. Each runs in one transaction, so none
// may use a statement that refuses one (CREATE INDEX CONCURRENTLY).
//
//go:embed migration/*.sql
var migrationFS embed.FS

// MigrationNames returns the names of the migrations this binary carries
// ("0001_init.sql", …) in the order they are applied.
func MigrationNames() []string { return sqlutil.MigrationNames(migrationFS, "migration") }

const createMigrations = `CREATE TABLE IF NOT EXISTS migrations (
	name       TEXT COLLATE "C" PRIMARY KEY,
	applied_at BIGINT NOT NULL
)`

// Migrate applies the pending migrations in order, each in its own
// transaction together with its row in the migrations table. It refuses a
// database migrated by a newer custos (EINVALID).
//
// Several nodes may start at once: each transaction first takes a
// transaction-level advisory lock, then reads what is applied, so starters
// queue and a migration is applied once; the lock goes with the
// transaction, even if the node dies halfway.
func (db *DB) Migrate(ctx context.Context) error { return db.MigrateReporting(ctx, nil) }

// MigrateReporting is Migrate, calling report, when not nil, as each
// migration starts (done false) and once it is applied (done true, with
// the time it took), so that an operator sees which one a long upgrade
// is in (custos migrate up). A migration another node applied meanwhile
// is not reported.
func (db *DB) MigrateReporting(ctx context.Context, report func(name string, done bool, took time.Duration)) error {
	for {
		done, err := db.migrateNext(ctx, report)
		if err != nil || done {
			return err
		}
	}
}

// migrateNext applies the first pending migration, or reports done when
// there is none.
func (db *DB) migrateNext(ctx context.Context, report func(name string, done bool, took time.Duration)) (done bool, err error) {
	var (
		name  string
		start time.Time
	)
	defer func() {
		if report != nil && name != "" && err == nil {
			report(name, true, time.Since(start))
		}
	}()
	err = db.run(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted}, true, func(tx *Tx) error {
		if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_setting('search_path')), $1)`, migrateLockKey); err != nil {
			return internal("migrate: lock", err)
		}
		if _, err := tx.exec(ctx, createMigrations); err != nil {
			return internal("migrate", err)
		}
		applied, err := tx.appliedMigrations(ctx)
		if err != nil {
			return err
		}
		pending, err := pendingMigrations(applied)
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			done = true
			return nil
		}
		name, start = pending[0], time.Now()
		if report != nil {
			report(name, false, 0)
		}
		body, err := migrationFS.ReadFile("migration/" + name)
		if err != nil {
			return internal("migrate "+name, err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO migrations (name, applied_at) VALUES ($1, $2)`,
			name, sqlutil.Micros(tx.now)); err != nil {
			return internal("migrate "+name, err)
		}
		// No arguments: pgx sends it with the simple protocol, which
		// allows several statements.
		// A migration's changes to cached rows are accounted as another
		// tool's: unmarked, so that the triggers of migration 0013 move
		// the read caches' generation (postgres/readcache.go), and not by
		// this transaction's end, which before migration 0012 has no
		// generation to move.
		if _, err := tx.exec(ctx, unmarkBumpsSQL); err != nil {
			return internal("migrate "+name, err)
		}
		tx.timeout = max(tx.timeout, sqlutil.MigrationTimeout)
		if _, err := tx.exec(ctx, string(body)); err != nil {
			return internal("migrate "+name, err)
		}
		tx.changed = false
		return nil
	})
	return done, err
}

// AppliedMigrations returns the names recorded in the migrations table, in
// order (none on an empty database). It changes nothing.
func (db *DB) AppliedMigrations(ctx context.Context) ([]string, error) {
	var applied []string
	err := db.run(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true}, false, func(tx *Tx) error {
		var err error
		applied, err = tx.appliedMigrations(ctx)
		return err
	})
	return applied, err
}

// PendingMigrations returns the migrations not applied yet, in order. It
// changes nothing, and returns EINVALID if the database holds a migration
// this binary does not know.
func (db *DB) PendingMigrations(ctx context.Context) ([]string, error) {
	applied, err := db.AppliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	return pendingMigrations(applied)
}

// appliedMigrations reads the migrations table of the schema first on the
// search_path, if it exists.
func (tx *Tx) appliedMigrations(ctx context.Context) ([]string, error) {
	var exists bool
	if err := tx.scanRow(ctx, `SELECT to_regclass('migrations') IS NOT NULL`, nil, &exists); err != nil {
		return nil, internal("migrations", err)
	}
	if !exists {
		return nil, nil
	}
	var applied []string
	err := tx.query(ctx, `SELECT name FROM migrations ORDER BY name`, nil, func(s scanner) error {
		var name string
		if err := s.Scan(&name); err != nil {
			return err
		}
		applied = append(applied, name)
		return nil
	})
	if err != nil {
		return nil, internal("migrations", err)
	}
	return applied, nil
}

// pendingMigrations returns the known migrations missing from applied, or
// EINVALID if applied holds one this binary does not know.
func pendingMigrations(applied []string) ([]string, error) {
	return sqlutil.PendingMigrations("postgres", MigrationNames(), applied)
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
		return sqlutil.SchemaOutOfDate("postgres", pending)
	}
	return nil
}
