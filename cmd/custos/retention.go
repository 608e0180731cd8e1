package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"custos"
	"custos/core"
)

// jobRetention names the background retention sweep; its lock (an
// advisory lock on PostgreSQL, a lock file beside a SQLite database)
// makes one node or CLI run sweep at a time.
const jobRetention = "custos:retention"

// DefaultRetentionInterval is how often serve sweeps; the first sweep
// comes one interval after start. CUSTOS_RETENTION_INTERVAL overrides it
// ("off" disables the schedule).
const DefaultRetentionInterval = time.Hour

// loadRetention puts the configured rules file in force, refusing rules
// below a legal minimum (the node does not start), or warns when the
// embedded defaults do not fit a custom catalog.
func loadRetention(cfg Config, n *node) error {
	lockRetention(n)
	if cfg.Retention == "" {
		// A custom catalog the default rules do not fit (no behaviour
		// record types, say) still starts; sweeps fail until a rules file
		// is given, and say so.
		if _, err := n.svc.Retention(); err != nil && n.logger != nil {
			n.logger.Warn("retention: the default rules do not fit the catalog; give --retention FILE", "err", err)
		}
		return nil
	}
	f, err := os.Open(cfg.Retention)
	if err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	defer f.Close()
	p, err := custos.ParseRetention(f, n.svc.Catalog())
	if err != nil {
		return fmt.Errorf("retention rules %s: %w", cfg.Retention, err)
	}
	n.svc.SetRetention(p)
	return nil
}

// lockRetention makes API-requested sweeps take the job's lock.
func lockRetention(n *node) {
	n.svc.RetentionLock = func(ctx context.Context) (func(), bool, error) { return n.leader(ctx, jobRetention) }
}

// retentionJob sweeps on a schedule while serve runs, on the node that
// takes the job's lock.
type retentionJob struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startRetentionJob starts the schedule; stop ends it, interrupting a
// sweep in progress at its next batch (the next sweep resumes it).
func startRetentionJob(ctx context.Context, n *node, logger *slog.Logger, getenv func(string) string) *retentionJob {
	interval := DefaultRetentionInterval
	if v := getenv("CUSTOS_RETENTION_INTERVAL"); v == "off" {
		return &retentionJob{}
	} else if d, err := time.ParseDuration(v); err == nil && d > 0 {
		interval = d
	}
	ctx, cancel := context.WithCancel(ctx)
	j := &retentionJob{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(j.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sweepAsLeader(ctx, n, logger)
			}
		}
	}()
	return j
}

func (j *retentionJob) stop() {
	if j.cancel != nil {
		j.cancel()
		<-j.done
	}
}

// sweepAsLeader runs one sweep if this node can take the job's lock.
func sweepAsLeader(ctx context.Context, n *node, logger *slog.Logger) {
	release, ok, err := n.leader(ctx, jobRetention)
	if err != nil {
		logger.Warn("job leadership check failed", "job", jobRetention, "err", err)
		return
	}
	if !ok {
		return
	}
	defer release()
	rep, err := n.svc.SweepRetention(system(ctx), core.RetentionOptions{})
	if err != nil {
		logger.Warn("retention sweep stopped", "err", err)
		return
	}
	acted := 0
	for _, r := range rep.Rules {
		acted += r.Deleted + r.Anonymised + r.Restricted + r.LegalGuard + r.FieldsGone
	}
	logger.Info("retention sweep", "run_id", rep.RunID, "certificate_id", rep.CertificateID, "items", acted)
}

func cmdRetention(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	const use = "usage: custos retention run [--dry-run] [--batch N] | certificates | verify ID  [--data DIR | --store URL] [--retention FILE]"
	if len(args) == 0 {
		fmt.Fprintln(stderr, use)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs, cf := newFlags("retention "+sub, stderr)
	var dry bool
	var batch int
	switch sub {
	case "run":
		fs.BoolVar(&dry, "dry-run", false, "report per rule what would happen, with counts; change nothing")
		fs.IntVar(&batch, "batch", core.DefaultRetentionBatch, "items per transaction")
	case "certificates", "verify":
	default:
		fmt.Fprintln(stderr, use)
		return errUsage
	}
	// verify takes its id before or after the flags.
	var id string
	if sub == "verify" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		id, rest = rest[0], rest[1:]
	}
	cfg, err := cf.parse(fs, rest, getenv)
	if err != nil {
		return err
	}
	if sub == "verify" && id == "" && fs.NArg() == 1 {
		id = fs.Arg(0)
	} else if sub == "verify" && (id == "" || fs.NArg() != 0) || sub != "verify" && fs.NArg() != 0 {
		fmt.Fprintln(stderr, use)
		return errUsage
	}
	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer n.Close()
	switch sub {
	case "certificates":
		return listCertificates(ctx, n, stdout)
	case "verify":
		return verifyCertificate(ctx, n, id, stdout)
	}
	release, ok, err := n.leader(ctx, jobRetention)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("another node or process is running the retention sweep on this store; try again when it has finished")
	}
	defer release()
	p := newSweepProgress(stderr)
	rep, err := n.svc.SweepRetention(system(ctx), core.RetentionOptions{DryRun: dry, BatchSize: batch, Progress: p.update})
	p.finish()
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	return nil
}

func printReport(w io.Writer, rep *custos.RetentionReport) {
	if rep.DryRun {
		fmt.Fprintf(w, "DRY RUN as of %s: nothing was changed; counts are what a run would do now\n", rep.AsOf.Format(time.RFC3339))
	} else {
		resumed := ""
		if rep.Resumed {
			resumed = " (resumed an interrupted run)"
		}
		fmt.Fprintf(w, "retention run %s as of %s%s\n", rep.RunID, rep.AsOf.Format(time.RFC3339), resumed)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tTARGET\tTRIGGER\tPERIOD\tACTION\tDELETED\tANONYMISED\tRESTRICTED\tFIELDS\tHELD\tLEGAL-MIN\tLOCKED")
	for _, r := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", r.Rule, r.Target, r.Trigger, r.Period, r.Action,
			r.Deleted, r.Anonymised, r.Restricted, r.FieldsGone, r.Held, r.LegalGuard, r.StillLocked)
	}
	tw.Flush()
	for _, h := range rep.Holds {
		fmt.Fprintf(w, "legal hold %s (%s) held back %d items\n", h.HoldID, h.Scope, h.Held)
	}
	if rep.CertificateID != "" {
		fmt.Fprintf(w, "destruction certificate: %s\n", rep.CertificateID)
	}
}

func listCertificates(ctx context.Context, n *node, w io.Writer) error {
	var cs []*custos.RetentionCertificate
	if err := n.store.View(ctx, func(tx custos.Tx) (err error) {
		cs, err = tx.ListCertificates(ctx)
		return err
	}); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CERTIFICATE\tRUN\tFINISHED\tKEY")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.RunID, c.FinishedAt.Format(time.RFC3339), c.KeyID)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d certificates\n", len(cs))
	return nil
}

func verifyCertificate(ctx context.Context, n *node, id string, w io.Writer) error {
	var c *custos.RetentionCertificate
	if err := n.store.View(ctx, func(tx custos.Tx) (err error) {
		c, err = tx.GetCertificate(ctx, id)
		return err
	}); err != nil {
		return err
	}
	chk := n.svc.CheckCertificate(c)
	if !chk.Valid {
		fmt.Fprintf(w, "certificate %s INVALID: %s\n", id, chk.Problem)
		return &exitError{code: 1, err: fmt.Errorf("certificate %s does not verify", id)}
	}
	fmt.Fprintf(w, "certificate %s OK: signed by audit key %s\n%s\n", id, chk.KeyID, c.Body)
	return nil
}

// sweepProgress shows a sweep's progress on stderr: a bar redrawn in place on a
// terminal, otherwise a plain line at most every progressEvery.
type sweepProgress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	last  time.Time
	shown bool
}

const progressEvery = 5 * time.Second

func newSweepProgress(w io.Writer) *sweepProgress {
	p := &sweepProgress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *sweepProgress) update(r core.RetentionProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.tty {
		const width = 30
		filled := int(r.Fraction * width)
		fmt.Fprintf(p.w, "\rrule %d/%d %-24s [%s%s] %3.0f%%  %d items", r.RuleIndex+1, r.Rules, r.Rule,
			strings.Repeat("#", filled), strings.Repeat(".", width-filled), r.Fraction*100, r.Acted)
		p.shown = true
		return
	}
	if now.Sub(p.last) < progressEvery {
		return
	}
	p.last = now
	fmt.Fprintf(p.w, "retention: rule %d/%d %s, about %.0f%% scanned, %d items so far\n", r.RuleIndex+1, r.Rules, r.Rule, r.Fraction*100, r.Acted)
}

func (p *sweepProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprintln(p.w)
	}
}
