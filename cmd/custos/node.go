package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/ledger"
	"custos/postgres"
	"custos/sqlite"
	"custos/validate"
)

// node is an opened custos: store, keys, catalog and the core service.
type node struct {
	cfg    Config
	logger *slog.Logger
	store  custos.Store
	sqlite *sqlite.DB   // set for the embedded store
	pg     *postgres.DB // set for PostgreSQL
	ring   *keys.Keyring
	signer *keys.Signer
	svc    *core.Service
	ledger *ledger.File // this node's shred ledger, outside the store
	// adminToken is set when this open created the bootstrap admin.
	adminToken string
	// rights is the notifier, calendar, one-time codes and webhook
	// deliverer; built by serve (newRights).
	rights *rights
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var lv slog.LevelVar
	if err := lv.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		lv.Set(slog.LevelInfo)
	}
	opts := &slog.HandlerOptions{Level: &lv}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadKeyring finds the master keys: CUSTOS_MASTER_KEYS (base64 keyring),
// CUSTOS_MASTER_KEYS_FILE, or DIR/master.keys, created when create is set
// and none exists.
func loadKeyring(cfg Config, getenv func(string) string, create bool) (*keys.Keyring, string, error) {
	if getenv("CUSTOS_MASTER_KEYS") != "" {
		k, err := keys.LoadKeyringEnv("CUSTOS_MASTER_KEYS")
		return k, "", err
	}
	path := cfg.KeyringPath()
	if p := getenv("CUSTOS_MASTER_KEYS_FILE"); p != "" {
		path = p
	}
	k, err := keys.LoadKeyringFile(path)
	if err != nil && create && notExist(err) {
		k, err = keys.CreateKeyringFile(path, nil)
	}
	return k, path, err
}

// openStore opens the configured store: SQLite in the data directory by
// default (migrated when create is set: the embedded store and its binary
// move together), or PostgreSQL (migrated only with --migrate or by
// custos migrate, so that operators choose when the schema changes).
func openStore(ctx context.Context, cfg Config, create bool) (*node, error) {
	n := &node{cfg: cfg}
	if cfg.Postgres() {
		db, err := postgres.Open(ctx, cfg.Store, postgres.Options{Migrate: cfg.Migrate, MaxConns: cfg.MaxConns, Writers: cfg.PGWriters,
			ReadAuditCommitted: cfg.ReadAuditCommitted(), ReadCache: cfg.ReadCache})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", redactURL(cfg.Store), err)
		}
		n.store, n.pg = db, db
		return n, nil
	}
	db, err := sqlite.Open(ctx, cfg.DBPath(), sqlite.Options{Migrate: create || cfg.Migrate, ReadCache: cfg.ReadCache,
		ReadAuditCommitted: cfg.ReadAuditCommitted()})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// The database holds only ciphertext, but its metadata (ids, times,
	// audit trail) is still nobody else's business.
	ix := sqlite.AuditIndexSuffix
	for _, suffix := range []string{"", "-wal", "-shm", ix, ix + "-wal", ix + "-shm"} {
		if err := os.Chmod(cfg.DBPath()+suffix, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			db.Close()
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	n.store, n.sqlite = db, db
	return n, nil
}

// analyze refreshes a PostgreSQL store's planner statistics after a bulk
// load (postgres.DB.Analyze), saying so on w; the embedded store plans
// without statistics, so there it does nothing. A failure is reported
// and not returned: the load itself succeeded, and autovacuum analyses
// the tables on its next round.
func (n *node) analyze(ctx context.Context, w io.Writer) {
	if n.pg == nil {
		return
	}
	t0 := time.Now()
	tables, err := n.pg.Analyze(ctx)
	if err != nil {
		fmt.Fprintf(w, "planner statistics not refreshed (autovacuum will analyse the tables on its next round): %v\n", err)
		return
	}
	fmt.Fprintf(w, "planner statistics refreshed: %d tables analysed in %.1f s\n", tables, time.Since(t0).Seconds())
}

// openNode opens (and with create, first sets up) the data directory.
// Keys are created only for a store that has never been initialised: a
// missing key file next to a store in use means the keys were lost or the
// wrong directory was given, and generating new ones would make every
// stored value unreadable, so custos refuses.
func openNode(ctx context.Context, cfg Config, getenv func(string) string, logger *slog.Logger, create bool) (*node, error) {
	if create {
		if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
	} else if _, err := os.Stat(cfg.Data); err != nil {
		return nil, fmt.Errorf("data directory %s: %w (run custos init first)", cfg.Data, err)
	}
	cat := custos.DefaultCatalog()
	if cfg.Catalog != "" {
		f, err := os.Open(cfg.Catalog)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		cat, err = custos.ParseCatalog(f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if err := validate.CheckCatalog(cat); err != nil {
			return nil, err
		}
	}
	n, err := openStore(ctx, cfg, create)
	if err != nil {
		return nil, err
	}
	n.logger = logger
	if n.sqlite != nil {
		if what := n.sqlite.AuditIndexOpened(); what != "" {
			logger.Info("audit index "+cfg.DBPath()+sqlite.AuditIndexSuffix+" mended on open", "found", what)
		}
	}
	fail := func(err error) (*node, error) {
		n.store.Close()
		return nil, err
	}
	initialised, err := bootstrapped(ctx, n.store)
	if err != nil {
		return fail(err)
	}
	fresh := create && !initialised
	ring, _, err := loadKeyring(cfg, getenv, fresh)
	if err != nil {
		if initialised && notExist(err) {
			err = errors.New("the store is initialised but its master key file is missing; restore it (or set CUSTOS_MASTER_KEYS/_FILE) — new keys would make every stored value unreadable")
		}
		return fail(fmt.Errorf("master keys: %w", err))
	}
	signer, err := keys.LoadSignerFile(cfg.SignerPath())
	if err != nil && fresh && notExist(err) {
		signer, err = keys.CreateSignerFile(cfg.SignerPath(), nil)
	}
	if err != nil {
		if initialised && notExist(err) {
			err = errors.New("the store is initialised but its audit signing key is missing; restore it — a new key would not verify the existing checkpoints")
		}
		return fail(fmt.Errorf("audit signing key: %w", err))
	}
	n.ring, n.signer = ring, signer
	n.svc = core.New(n.store, cat, ring, signer, logger)
	if err := loadRetention(cfg, n); err != nil {
		return fail(err)
	}
	if n.ledger, err = ledger.Open(cfg.LedgerPath()); err != nil { // S7: erasures outlive the store
		return fail(fmt.Errorf("shred ledger: %w", err))
	}
	n.svc.Ledger = n.ledger
	n.svc.Reload = func() (*keys.Keyring, error) {
		k, _, err := loadKeyring(cfg, getenv, false)
		return k, err
	}
	if create {
		if n.adminToken, err = n.svc.Bootstrap(ctx); err != nil {
			return fail(fmt.Errorf("bootstrap: %w", err))
		}
	}
	// After Bootstrap, so that of two nodes initialising one fresh store
	// with different keys, the one that lost the race refuses.
	if err := n.svc.CheckKeys(ctx); err != nil {
		return fail(fmt.Errorf("keys: %w", err))
	}
	return n, nil
}

// bootstrapped reports whether the store has been initialised before.
func bootstrapped(ctx context.Context, st custos.Store) (bool, error) {
	var ok bool
	err := st.View(ctx, func(tx custos.Tx) error {
		_, err := tx.GetMeta(ctx, core.MetaBootstrap)
		switch custos.ErrorCode(err) {
		case "":
			ok = true
		case custos.ENOTFOUND:
		default:
			return err
		}
		return nil
	})
	return ok, err
}

// notExist reports a missing key file.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || custos.ErrorCode(err) == custos.ENOTFOUND
}

func (n *node) Close() error { return n.store.Close() }

// leader reports whether this node should run the background job now:
// on PostgreSQL the holder of the job's advisory lock, on SQLite the
// process on the file that holds the job's lock file, each held until
// release.
func (n *node) leader(ctx context.Context, job string) (release func(), ok bool, err error) {
	if n.pg != nil {
		return n.pg.TryLeader(ctx, job)
	}
	if n.sqlite != nil {
		return n.sqlite.TryLeader(ctx, job)
	}
	return func() {}, true, nil
}

// system returns ctx acting as the built-in system principal (CLI jobs
// such as seed run with the admin role and are audited as "system").
func system(ctx context.Context) context.Context {
	return custos.NewContextWithActor(ctx, &custos.Principal{ID: "system", Name: "system", Kind: custos.KindService, Roles: []string{custos.RoleAdmin}})
}

func printAdminKey(w io.Writer, n *node) {
	if n.adminToken != "" {
		fmt.Fprintln(w, "admin key: "+n.adminToken)
		fmt.Fprintln(w, "(shown once; it is stored only as a hash — keep it safe)")
	}
}
