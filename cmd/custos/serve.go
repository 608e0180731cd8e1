package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"custos"
	custoshttp "custos/http"
)

// ShutdownTimeout bounds how long in-flight requests may take at shutdown.
const ShutdownTimeout = 15 * time.Second

// CheckpointInterval is how often the head of the audit chain is signed
// when events arrived since the last checkpoint.
const CheckpointInterval = time.Minute

func cmdInit(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, cf := newFlags("init", stderr)
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), true)
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Fprintf(stdout, "custos data directory ready: %s\n", cfg.Data)
	if n.adminToken == "" {
		fmt.Fprintln(stdout, "(already initialised; the admin key was shown at the first start)")
	}
	printAdminKey(stdout, n)
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs, cf := newFlags("serve", stderr)
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	n, err := openNode(ctx, cfg, getenv, logger, true)
	if err != nil {
		return err
	}
	defer n.Close()
	srv := custoshttp.NewServer(n.svc, logger)
	srv.Ready = func(ctx context.Context) error {
		return n.db.View(ctx, func(tx custos.Tx) error {
			_, err := tx.GetMeta(ctx, "bootstrap_admin")
			return err
		})
	}
	if err := srv.Listen(cfg.Addr); err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	printAdminKey(stdout, n)
	fmt.Fprintf(stdout, "custos listening on http://%s (data %s)\n", srv.Addr(), cfg.Data)
	logger.Info("listening", "addr", srv.Addr(), "catalog", n.svc.Catalog().Version)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	tick := time.NewTicker(CheckpointInterval)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			if err := n.svc.Checkpoint(ctx); err != nil {
				logger.Warn("audit checkpoint failed", "err", err)
			}
			// Fold the WAL back into the database file and truncate it, so
			// that old copies of shredded data keys do not linger there.
			if err := n.db.Checkpoint(ctx); err != nil {
				logger.Debug("wal checkpoint skipped", "err", err)
			}
		case <-ctx.Done():
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("shutdown", "err", err)
			}
			if err := n.svc.Checkpoint(sctx); err != nil {
				logger.Warn("final audit checkpoint failed", "err", err)
			}
			if err := n.db.Checkpoint(sctx); err != nil {
				logger.Debug("wal checkpoint skipped", "err", err)
			}
			<-errc
			fmt.Fprintln(stdout, "custos stopped")
			return nil
		}
	}
}
