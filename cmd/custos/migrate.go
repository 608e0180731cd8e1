package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"custos/postgres"
	"custos/sqlite"
)

// migrator is what both stores offer for schema migrations.
type migrator interface {
	MigrateReporting(ctx context.Context, report func(name string, done bool, took time.Duration)) error
	PendingMigrations(ctx context.Context) ([]string, error)
}

// migrationNotes says what an operator should know before a migration
// that takes time in proportion to the store (docs/deploy.md).
var migrationNotes = map[string]string{
	"0014_lookups_hash16.sql":    "rewrites every blind-index key; about 20 s a million customers on SQLite and 80 s on PostgreSQL (2 vCPU); older nodes cannot look up or create customers until upgraded",
	"0015_audit_blocks_1024.sql": "files the audit log's index again in smaller blocks (SQLite); about 7 s a million audit events (2 vCPU)",
	"0016_audit_index_file.sql":  "moves the audit log's index into custos.db-auditindex (SQLite): drops it from the database, about 0.5 s a million audit events (2 vCPU), and files it again in the background, about 6 s a million; older nodes cannot query the audit log until upgraded",
}

// cmdMigrate shows or applies schema migrations, for operators who run
// them as a step of their own before starting nodes.
func cmdMigrate(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || (args[0] != "status" && args[0] != "up") {
		fmt.Fprintln(stderr, "usage: custos migrate status|up [--data DIR | --store URL]")
		return errUsage
	}
	sub := args[0]
	fs, cf := newFlags("migrate "+sub, stderr)
	cfg, err := cf.parse(fs, args[1:], getenv)
	if err != nil {
		return err
	}
	var m migrator
	if cfg.Postgres() {
		db, err := postgres.Open(ctx, cfg.Store, postgres.Options{NoSchemaCheck: true})
		if err != nil {
			return fmt.Errorf("store %s: %w", redactURL(cfg.Store), err)
		}
		defer db.Close()
		m = db
	} else {
		db, err := sqlite.Open(ctx, cfg.DBPath(), sqlite.Options{NoSchemaCheck: true})
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		defer db.Close()
		m = db
	}
	pending, err := m.PendingMigrations(ctx)
	if err != nil {
		return err
	}
	if sub == "status" {
		if len(pending) == 0 {
			fmt.Fprintln(stdout, "schema up to date")
		} else {
			fmt.Fprintf(stdout, "%d pending: %s\n", len(pending), strings.Join(pending, ", "))
		}
		return nil
	}
	start := time.Now()
	err = m.MigrateReporting(ctx, func(name string, done bool, took time.Duration) {
		switch {
		case done:
			fmt.Fprintf(stdout, "applied %s in %s\n", name, took.Round(time.Millisecond))
		case migrationNotes[name] != "":
			fmt.Fprintf(stdout, "applying %s: %s\n", name, migrationNotes[name])
		default:
			fmt.Fprintf(stdout, "applying %s\n", name)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migrations in %s; schema up to date\n", len(pending), time.Since(start).Round(time.Millisecond))
	return nil
}
