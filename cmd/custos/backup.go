package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"custos"
	"custos/backup"
	"custos/core"
	"custos/keys"
	"custos/ledger"
)

// splitFile takes the one FILE argument of a command from args, before or
// after the flags, and returns the rest for flag parsing.
func splitFile(args []string) (file string, rest []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	return "", args
}

// cmdBackup is custos backup --out FILE, and custos backup verify FILE.
func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) > 0 && args[0] == "verify" {
		return cmdBackupVerify(ctx, args[1:], stdout, stderr, getenv)
	}
	fs, cf := newFlags("backup", stderr)
	out := fs.String("out", "", "backup file to write (required; never overwritten)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	cfg, err := cf.parse(fs, args, getenv)
	if err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: custos backup --out FILE [--data DIR | --store URL]")
		return errUsage
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("backup: %s already exists; choose a new file name", *out)
	}
	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), false)
	if err != nil {
		return err
	}
	defer n.Close()
	d, ok := n.store.(custos.Dumper)
	if !ok {
		return errors.New("backup: this store cannot be backed up")
	}
	storeName := "sqlite"
	if n.pg != nil {
		storeName = "postgres"
	}
	opts := backup.Options{Ring: n.ring, Signer: n.signer, Store: storeName}
	if !*quiet {
		opts.Progress = stderr
	}
	start := time.Now()
	var sum *backup.Summary
	err = writeAtomically(*out, func(w io.Writer) error {
		var err error
		sum, err = backup.Write(ctx, w, d, opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("backup failed, no file written: %w", err)
	}
	fi, err := os.Stat(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written: %s (%s, %d bytes)\n", *out, sum.Header.ID, fi.Size())
	fmt.Fprintf(stdout, "  %d tables, %d rows, %d chunks in %s; master key v%d, signing key %s\n",
		sum.Tables, sum.Rows, sum.Chunks, time.Since(start).Round(time.Millisecond), sum.Header.KEKVersion, sum.Header.SignerKeyID)
	fmt.Fprintf(stdout, "  signing public key %s (for custos backup verify --public-key)\n", keys.EncodePublicKey(n.signer.Public()))
	fmt.Fprintln(stdout, "  keep the master keys and the audit signing key apart from it: without them it cannot be read")
	return nil
}

// writeAtomically writes a new file at path (mode 0600) through fn: to a
// temporary file in the same directory, synced and renamed into place, so
// path is either the whole backup or absent.
func writeAtomically(path string, fn func(w io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = errors.Join(err, rerr)
			}
		}
	}()
	werr := f.Chmod(0o600)
	if werr == nil {
		werr = fn(f)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	// A hard link refuses an existing path, where rename would replace it.
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	if err := os.Remove(tmp); err != nil {
		return err
	}
	// The new name survives a crash once the directory is synced.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	return serr
}

// backupKeys loads what reading a backup needs: the master keys and the
// audit signing public key (from --public-key, or the data directory).
func backupKeys(cfg Config, getenv func(string) string, pubFlag string) (*keys.Keyring, ed25519.PublicKey, error) {
	ring, _, err := loadKeyring(cfg, getenv, false)
	if err != nil {
		return nil, nil, fmt.Errorf("master keys: %w (a backup is readable only with the master keys of the installation that took it)", err)
	}
	if pubFlag != "" {
		pub, err := keys.ParsePublicKey(pubFlag)
		return ring, pub, err
	}
	pub, err := keys.LoadSignerPublicKey(cfg.SignerPath())
	if err != nil {
		return nil, nil, fmt.Errorf("audit signing key: %w (or give --public-key ed25519:…)", err)
	}
	return ring, pub, nil
}

func cmdBackupVerify(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	file, rest := splitFile(args)
	fs, cf := newFlags("backup verify", stderr)
	pubFlag := fs.String("public-key", "", "the audit signing public key (ed25519:…); default: the key in the data directory")
	cfg, err := cf.parse(fs, rest, getenv)
	if err != nil {
		return err
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: custos backup verify FILE [--data DIR] [--public-key ed25519:…]")
		return errUsage
	}
	ring, pub, err := backupKeys(cfg, getenv, *pubFlag)
	if err != nil {
		return err
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := backup.Verify(f, ring, pub)
	if err != nil {
		fmt.Fprintf(stdout, "backup BROKEN: %s: %s\n", file, custos.ErrorMessage(err))
		return &exitError{code: 1, err: fmt.Errorf("backup %s does not verify", file)}
	}
	h := sum.Header
	fmt.Fprintf(stdout, "backup OK: %s\n", file)
	fmt.Fprintf(stdout, "  id %s, taken %s from %s, schema %s\n", h.ID, h.Created.Format(time.RFC3339), h.Store, lastOr(h.Migrations, "none"))
	fmt.Fprintf(stdout, "  %d tables, %d rows, %d chunks authenticated; signature by %s verified; file key wrapped by master key v%d\n",
		sum.Tables, sum.Rows, sum.Chunks, h.SignerKeyID, h.KEKVersion)
	for _, t := range sum.Order {
		fmt.Fprintf(stdout, "  %-24s %d rows\n", t, sum.TableRows[t])
	}
	return nil
}

func lastOr(l []string, def string) string {
	if len(l) == 0 {
		return def
	}
	return l[len(l)-1]
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// cmdRestore is custos restore FILE: load a backup into an empty store,
// re-apply the erasures of the shred ledgers, verify the audit chain.
func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	file, rest := splitFile(args)
	fs, cf := newFlags("restore", stderr)
	var ledgers stringList
	fs.Var(&ledgers, "ledger", "a shred ledger file to re-apply (repeat for each node's; default: this node's ledger)")
	noLedger := fs.Bool("no-ledger", false, "restore without re-applying any shred ledger (erased customers may come back)")
	reapplyOnly := fs.Bool("reapply-only", false, "do not load a backup; only re-apply the ledgers to the store (after an interrupted restore)")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	cfg, err := cf.parse(fs, rest, getenv)
	if err != nil {
		return err
	}
	extra := fs.Args()
	if file == "" && len(extra) == 1 {
		file, extra = extra[0], nil
	}
	if len(extra) > 0 || (file == "") != *reapplyOnly || (*noLedger && (len(ledgers) > 0 || *reapplyOnly)) {
		fmt.Fprintln(stderr, "usage: custos restore FILE [--data DIR | --store URL] [--ledger FILE]... | --no-ledger\n       custos restore --reapply-only [--ledger FILE]...")
		return errUsage
	}
	progress := stderr
	if *quiet {
		progress = io.Discard
	}

	// Everything that can refuse is checked before the store is touched.
	var reads []*ledger.Read
	if !*noLedger {
		if len(ledgers) == 0 {
			if _, err := os.Stat(cfg.LedgerPath()); err != nil {
				return fmt.Errorf("restore: no shred ledger at %s; give --ledger FILE for every node's ledger, or --no-ledger to restore without re-applying erasures (erased customers would come back)", cfg.LedgerPath())
			}
			ledgers = append(ledgers, cfg.LedgerPath())
		}
		for _, p := range ledgers {
			r, err := ledger.ReadFile(p)
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			if r.Torn > 0 {
				fmt.Fprintf(progress, "restore: %s: %d torn line(s) skipped (writes cut by a crash; their erasures never committed)\n", p, r.Torn)
			}
			reads = append(reads, r)
		}
	}
	if !*reapplyOnly {
		if err := loadBackup(ctx, cfg, getenv, file, progress, stdout); err != nil {
			return err
		}
	}

	n, err := openNode(ctx, cfg, getenv, newLogger(cfg, stderr), false)
	if err != nil {
		return fmt.Errorf("restore: the backup is loaded, but the store does not open with these keys: %w", err)
	}
	defer n.Close()
	// Entries already in this node's own ledger are not written twice.
	own, _ := filepath.Abs(cfg.LedgerPath())
	for _, p := range ledgers {
		if a, _ := filepath.Abs(p); a == own {
			n.svc.Ledger = nil
		}
	}
	if !*reapplyOnly {
		n.analyze(ctx, progress)
	}
	applied, reflected, err := reapply(ctx, n, ledger.Erasures(reads...))
	if err != nil {
		return fmt.Errorf("restore: re-applying erasures stopped after %d (run custos restore --reapply-only with the same ledgers to finish): %w", applied, err)
	}
	if !*noLedger {
		fmt.Fprintf(stdout, "shred ledgers: %d files, %d erasures re-applied, %d already reflected in the backup\n", len(reads), applied, reflected)
	} else {
		fmt.Fprintln(stdout, "shred ledgers: none re-applied (--no-ledger)")
	}
	rep := verifyAudit(ctx, n)
	if rep.Err != nil {
		return fmt.Errorf("restore: verifying the audit chain: %w", rep.Err)
	}
	if !rep.OK {
		fmt.Fprintf(stdout, "audit chain BROKEN: %s at event %d: %s\n", rep.Problem.Kind, rep.Problem.Seq, rep.Problem.Detail)
		return &exitError{code: 1, err: fmt.Errorf("restored store's audit chain is broken at event %d (%s)", rep.Problem.Seq, rep.Problem.Kind)}
	}
	fmt.Fprintf(stdout, "audit chain OK: %d events, %d signed checkpoints verified (signing key %s)\n", rep.Events, rep.Checkpoints, n.signer.KeyID())
	return nil
}

// loadBackup loads the backup file into the configured store, which must
// be empty; on any failure nothing is loaded.
func loadBackup(ctx context.Context, cfg Config, getenv func(string) string, file string, progress, stdout io.Writer) error {
	ring, pub, err := backupKeys(cfg, getenv, "")
	if err != nil {
		return fmt.Errorf("restore: %w (copy master.keys and audit-signing.key of the backed-up installation into %s first)", err, cfg.Data)
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	r, err := backup.NewReader(f, ring, pub)
	if err != nil {
		return fmt.Errorf("restore refused, nothing changed: %w", err)
	}
	r.SetProgress(progress)
	if !cfg.Postgres() {
		if err := os.MkdirAll(filepath.Dir(cfg.DBPath()), 0o700); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	cfg.Migrate = true // restore is a setup step, like init
	st, err := openStore(ctx, cfg, true)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer st.Close()
	d, ok := st.store.(custos.Dumper)
	if !ok {
		return errors.New("restore: this store cannot be restored into")
	}
	have, err := d.AppliedMigrations(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if h := r.Header(); !slices.Equal(have, h.Migrations) {
		return fmt.Errorf("restore refused, nothing changed: the backup has schema %s, this custos %s; restore with the custos version that took the backup, then upgrade",
			lastOr(h.Migrations, "none"), lastOr(have, "none"))
	}
	start := time.Now()
	if err := d.Load(ctx, r); err != nil {
		return fmt.Errorf("restore failed, nothing was restored: %w", err)
	}
	sum := r.Summary()
	fmt.Fprintf(stdout, "restored %s (%s, taken %s): %d tables, %d rows in %s\n", file, sum.Header.ID,
		sum.Header.Created.Format(time.RFC3339), sum.Tables, sum.Rows, time.Since(start).Round(time.Millisecond))
	return nil
}

// reapply erases, through the core service (audited, recorded in this
// node's ledger), every subject of the ledger entries that the store still
// holds; a subject it does not hold is already erased (or never was in
// this backup). It returns how many it erased and how many were reflected.
func reapply(ctx context.Context, n *node, entries []ledger.Entry) (applied, reflected int, err error) {
	purposes := erasePurposes(n)
	ctx = system(ctx)
	seen := map[string]bool{}
	for _, e := range entries {
		if seen[e.SubjectID] {
			continue
		}
		seen[e.SubjectID] = true
		id := custos.SubjectID(e.SubjectID)
		var present bool
		err := n.store.View(ctx, func(tx custos.Tx) error {
			_, err := tx.GetSubject(ctx, id)
			if custos.ErrorCode(err) == custos.ENOTFOUND {
				return nil
			}
			present = err == nil
			return err
		})
		if err != nil {
			return applied, reflected, err
		}
		if !present {
			reflected++
			continue
		}
		if strings.HasPrefix(e.Reason, core.ShredRestricted) {
			// A deletion that kept records for a legal minimum: repeat it
			// as such, so the kept records survive as the law requires.
			reason := truncateUTF8("re-applied from the shred ledger after a restore (deleted "+e.Time.Format(time.RFC3339)+")", 200)
			did, err := n.svc.ReapplyDeletion(ctx, id, reason)
			if err != nil {
				return applied, reflected, fmt.Errorf("delete %s: %w", id, err)
			}
			if did {
				applied++
			} else {
				reflected++
			}
			continue
		}
		reason := truncateUTF8("re-applied from the shred ledger after a restore (erased "+e.Time.Format(time.RFC3339)+"): "+e.Reason, 200)
		if _, err := n.svc.EraseSubject(ctx, purposes, id, reason); err != nil {
			return applied, reflected, fmt.Errorf("erase %s: %w", id, err)
		}
		applied++
	}
	return applied, reflected, nil
}

// erasePurposes are the purposes the system principal declares when it
// re-applies an erasure: those of the admin role.
func erasePurposes(n *node) []string {
	if r := n.svc.Catalog().Role(custos.RoleAdmin); r != nil && len(r.Purposes) > 0 {
		return r.Purposes[:1]
	}
	return []string{"account"}
}

// truncateUTF8 cuts s to at most max bytes on a rune boundary.
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	for max > 0 && !utf8.RuneStart(s[max]) {
		max--
	}
	return s[:max]
}
