package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestKeyFilesMatchStore: a store is never opened with keys that are not
// its own — missing key files are not regenerated, another installation's
// are refused — because either would make every stored value unreadable.
// The database files are private to the service user.
func TestKeyFilesMatchStore(t *testing.T) {
	ctx := context.Background()
	initDir := func() string {
		dir := filepath.Join(t.TempDir(), "d")
		var out, errb strings.Builder
		if code := run(ctx, []string{"init", "--data", dir}, &out, &errb, noEnv); code != 0 {
			t.Fatalf("init: %d %s", code, errb.String())
		}
		return dir
	}
	a, b := initDir(), initDir()
	for _, f := range []string{"custos.db", "custos.db-wal"} {
		if fi, err := os.Stat(filepath.Join(a, f)); err == nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	serveErr := func(dir string) string {
		var out, errb strings.Builder
		// Should it start after all, stop it rather than hang the test.
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		code := run(ctx, []string{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, &out, &errb, noEnv)
		if code == 0 {
			t.Fatalf("serve started on %s", dir)
		}
		return errb.String()
	}
	copyFile := func(name string) {
		data, err := os.ReadFile(filepath.Join(b, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	orig, err := os.ReadFile(filepath.Join(a, "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	copyFile("master.keys")
	if msg := serveErr(a); !strings.Contains(msg, "another installation") {
		t.Errorf("foreign master keys: %q", msg)
	}
	if err := os.Remove(filepath.Join(a, "master.keys")); err != nil {
		t.Fatal(err)
	}
	if msg := serveErr(a); !strings.Contains(msg, "master key file is missing") {
		t.Errorf("missing master keys: %q", msg)
	}
	if _, err := os.Stat(filepath.Join(a, "master.keys")); err == nil {
		t.Error("serve generated a new master key file for an initialised store")
	}
	if err := os.WriteFile(filepath.Join(a, "master.keys"), orig, 0o600); err != nil {
		t.Fatal(err)
	}
	copyFile("audit-signing.key")
	if msg := serveErr(a); !strings.Contains(msg, "audit signing key belongs to another installation") {
		t.Errorf("foreign signing key: %q", msg)
	}
}
