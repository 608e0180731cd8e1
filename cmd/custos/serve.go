package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"time"

	"custos"
	"custos/core"
	custoshttp "custos/http"
	"custos/internal/gcheadroom"
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
	cfg.Migrate = true // init is the explicit setup step, on any store
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
	gc, gcHow := startGC(cfg)
	defer gc.Stop()
	// Writes cite an approved collection plan (C2) unless turned off for
	// development; in-process tools (seed, bench) leave it off.
	n.svc.RequirePlan = !cfg.NoPlans
	if cfg.NoPlans {
		logger.Warn("collection plans are not required (--no-plans): for development only")
	}
	if n.rights, err = newRights(cfg, n, logger); err != nil {
		return err
	}
	n.svc.Rights = core.RightsOptions{Calendar: n.rights.calendar, Notifier: n.rights.notifier, OTP: n.rights.otp}
	srv := custoshttp.NewServer(n.svc, logger)
	writers := []func(io.Writer){n.rights.deliverer.WriteMetrics, n.svc.WriteMetrics, gcheadroom.WriteMetrics}
	if n.sqlite != nil {
		writers = append(writers, n.sqlite.WriteMetrics)
	} else if n.pg != nil {
		writers = append(writers, n.pg.WriteMetrics)
	}
	srv.ExtraMetrics = func(w io.Writer) {
		for _, write := range writers {
			write(w)
		}
	}
	srv.Ready = func(ctx context.Context) error {
		return n.store.View(ctx, func(tx custos.Tx) error {
			_, err := tx.GetMeta(ctx, "bootstrap_admin")
			return err
		})
	}
	if err := srv.Listen(cfg.Addr); err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	printAdminKey(stdout, n)
	scheme := "http"
	if cfg.TLSCert != "" {
		srv.TLSCert, srv.TLSKey = cfg.TLSCert, cfg.TLSKey
		scheme = "https"
	}
	fmt.Fprintf(stdout, "custos listening on %s://%s (data %s)\n", scheme, srv.Addr(), cfg.Data)
	logger.Info("listening", "addr", srv.Addr(), "catalog", n.svc.Catalog().Version, "gc_headroom", gcHow,
		"gomaxprocs", runtime.GOMAXPROCS(0))
	if cfg.ReadAuditCommitted() {
		loss := "a power loss may lose the last few milliseconds of read audit events"
		if cfg.Postgres() {
			loss = "a crash of the PostgreSQL server or a power loss may lose the read audit events of its last wal_writer_delay (200 ms by default; at most three times it)"
		}
		logger.Info("reads are answered once their audit event is committed; "+loss+" (docs/deploy.md)",
			"read_audit_durability", cfg.ReadAuditDurability)
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	warm := startCacheWarmer(ctx, nodeWarmStore(n), logger)
	defer warm.stop() // before n.Close
	interval := CheckpointInterval
	if v := getenv("CUSTOS_JOB_INTERVAL"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			interval = d
		}
	}
	jobs := &jobRunner{n: n, logger: logger}
	defer jobs.stop()
	jobs.run(ctx) // take the lead now if no other node has it
	retention := startRetentionJob(ctx, n, logger, getenv)
	defer retention.stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	keyTick := time.NewTicker(KeyringCheckInterval)
	defer keyTick.Stop()
	deliverTick := time.NewTicker(n.rights.interval)
	defer deliverTick.Stop()
	saveTick := time.NewTicker(ReadCacheSaveInterval)
	defer saveTick.Stop()
	keyStamp := keyringStamp(cfg, getenv)
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			jobs.run(ctx)
		case <-deliverTick.C:
			jobs.deliver(ctx)
		case <-saveTick.C:
			warm.save()
		case <-keyTick.C:
			// Another process (custos keys rotate) may have changed the
			// master keys: pick them up so new data keys are wrapped under
			// the current version and none under one about to be retired.
			if st := keyringStamp(cfg, getenv); st != keyStamp {
				if k, _, err := loadKeyring(cfg, getenv, false); err != nil {
					logger.Warn("reloading master keys failed", "err", err)
				} else {
					n.svc.SetKeyring(k)
					keyStamp = st
					logger.Info("master keys reloaded", "current_version", k.CurrentVersion())
				}
			}
		case <-ctx.Done():
			logger.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				logger.Warn("shutdown", "err", err)
			}
			if jobs.release != nil { // a last checkpoint, by the leader only
				jobs.run(sctx)
			}
			warm.stop()
			warm.save()
			<-errc
			fmt.Fprintln(stdout, "custos stopped")
			return nil
		}
	}
}

// KeyringCheckInterval is how often serve looks for changed master keys.
const KeyringCheckInterval = 10 * time.Second

// keyringStamp identifies the key file's current version on disk.
func keyringStamp(cfg Config, getenv func(string) string) string {
	path := cfg.KeyringPath()
	if p := getenv("CUSTOS_MASTER_KEYS_FILE"); p != "" {
		path = p
	}
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fi.ModTime().String() + "/" + strconv.FormatInt(fi.Size(), 10)
}

// jobAuditCheckpoint names the background job that signs the audit head.
const jobAuditCheckpoint = "custos:audit-checkpoint"

// jobRunner runs the background jobs on the node that leads them: with
// PostgreSQL, the holder of the job's advisory lock, which passes to
// another node when this one stops or dies; on SQLite, the process on the
// file that holds the job's lock file.
type jobRunner struct {
	n       *node
	logger  *slog.Logger
	release func()
}

func (j *jobRunner) run(ctx context.Context) {
	if j.release != nil && j.n.pg != nil && !j.n.pg.Leading(ctx, jobAuditCheckpoint) {
		// The lock's session ended (database restart, failover, killed
		// backend): another node may lead now, so stop and try again.
		j.release = nil
		j.logger.Warn("job leadership lost", "job", jobAuditCheckpoint)
	}
	if j.release == nil {
		rel, ok, err := j.n.leader(ctx, jobAuditCheckpoint)
		if err != nil {
			j.logger.Warn("job leadership check failed", "job", jobAuditCheckpoint, "err", err)
			return
		}
		if !ok {
			return
		}
		j.release = rel
		j.logger.Info("job leader", "job", jobAuditCheckpoint)
	}
	if err := j.n.svc.Checkpoint(ctx); err != nil {
		j.logger.Warn("audit checkpoint failed", "err", err)
	} else {
		j.logger.Debug("audit checkpoint", "job", jobAuditCheckpoint)
	}
	// Record the end of every grant whose period has passed (U1).
	if n, err := j.n.svc.ExpireGrants(ctx); err != nil {
		j.logger.Warn("grant expiry failed", "err", err)
	} else if n > 0 {
		j.logger.Info("grants expired", "count", n)
	}
	j.purgeOTP(ctx)
	// Rights requests near or past their deadline raise an alert (R7);
	// data kept for a legal minimum after a deletion goes when it ends.
	if near, overdue, err := j.n.svc.CheckRightsDeadlines(ctx); err != nil {
		j.logger.Warn("rights deadline check failed", "err", err)
	} else if len(near)+len(overdue) > 0 {
		j.logger.Warn("rights requests need attention", "near", len(near), "overdue", len(overdue))
	}
	if n, err := j.n.svc.FinishRetainedErasures(ctx); err != nil {
		j.logger.Warn("finishing retained erasures failed", "err", err)
	} else if n > 0 {
		j.logger.Info("retained data deleted after its legal minimum", "customers", n)
	}
	// Fold the WAL back into the database file and truncate it, so that
	// old copies of shredded data keys do not linger there.
	if j.n.sqlite != nil {
		if err := j.n.sqlite.Checkpoint(ctx); err != nil {
			j.logger.Debug("wal checkpoint skipped", "err", err)
		}
	}
}

// WebhookDeliveryInterval is how often the job leader sends due outbox
// events to webhook recipients.
const WebhookDeliveryInterval = 5 * time.Second

// deliver runs one pass of the webhook deliverer on the job leader. The
// leadership is rechecked by run at every job tick; deliveries are leased
// in the store as well, so a node that has just lost the lead cannot
// deliver an event another node is delivering.
func (j *jobRunner) deliver(ctx context.Context) {
	if j.release == nil || j.n.rights == nil {
		return
	}
	if n, err := j.n.rights.deliverer.RunOnce(ctx); err != nil {
		j.logger.Warn("webhook delivery pass failed", "err", err)
	} else if n > 0 {
		j.logger.Debug("webhook delivery pass", "attempted", n)
	}
}

// stop gives up leadership, so another node takes the jobs at once.
func (j *jobRunner) stop() {
	if j.release != nil {
		j.release()
		j.release = nil
	}
}
