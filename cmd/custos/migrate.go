package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"custos/postgres"
	"custos/sqlite"
)

// migrator is what both stores offer for schema migrations.
type migrator interface {
	Migrate(ctx context.Context) error
	PendingMigrations(ctx context.Context) ([]string, error)
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
	if err := m.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "applied %d migrations; schema up to date\n", len(pending))
	return nil
}
