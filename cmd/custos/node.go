package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/sqlite"
)

// node is an opened custos: store, keys, catalog and the core service.
type node struct {
	cfg    Config
	logger *slog.Logger
	db     *sqlite.DB
	ring   *keys.Keyring
	signer *keys.Signer
	svc    *core.Service
	// adminToken is set when this open created the bootstrap admin.
	adminToken string
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

// openNode opens (and with create, first sets up) the data directory.
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
	}
	ring, _, err := loadKeyring(cfg, getenv, create)
	if err != nil {
		return nil, fmt.Errorf("master keys: %w", err)
	}
	signer, err := keys.LoadSignerFile(cfg.SignerPath())
	if err != nil && create && notExist(err) {
		signer, err = keys.CreateSignerFile(cfg.SignerPath(), nil)
	}
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	db, err := sqlite.Open(ctx, cfg.DBPath(), sqlite.Options{Migrate: create})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	n := &node{cfg: cfg, logger: logger, db: db, ring: ring, signer: signer}
	n.svc = core.New(db, cat, ring, signer, logger)
	n.svc.Reload = func() (*keys.Keyring, error) {
		k, _, err := loadKeyring(cfg, getenv, false)
		return k, err
	}
	if create {
		if n.adminToken, err = n.svc.Bootstrap(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	return n, nil
}

// notExist reports a missing key file.
func notExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || custos.ErrorCode(err) == custos.ENOTFOUND
}

func (n *node) Close() error { return n.db.Close() }

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

func joinLines(s ...string) string { return strings.Join(s, "\n") }
