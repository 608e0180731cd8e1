package keys_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"custos"
	"custos/keys"
)

func TestWrapUnwrap(t *testing.T) {
	k := mustKeyring(t)
	dek := mustDEK(t)
	v, wrapped, err := k.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}
	if v != 1 {
		t.Fatalf("got version %d, want 1", v)
	}
	if bytes.Contains(wrapped, dek) {
		t.Fatal("wrapped key contains the data key")
	}
	got, err := k.Unwrap(v, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, dek) {
		t.Fatal("unwrapped key differs from the data key")
	}
	_, wrapped2, err := k.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(wrapped, wrapped2) {
		t.Fatal("two wraps of one key are equal; want a fresh nonce each")
	}
}

func TestUnwrapFailures(t *testing.T) {
	k := mustKeyring(t)
	dek := mustDEK(t)
	v, wrapped, err := k.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := k.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(wrapped)
	flipped[len(flipped)/2] ^= 0x01
	tests := []struct {
		name    string
		k       *keys.Keyring
		version int
		wrapped []byte
		code    string
	}{
		{name: "unknown version", k: k, version: 2, wrapped: wrapped, code: custos.ESEALED},
		{name: "version zero", k: k, version: 0, wrapped: wrapped, code: custos.ESEALED},
		{name: "relabelled version", k: k2, version: 2, wrapped: wrapped, code: custos.EINTERNAL},
		{name: "flipped bit", k: k, version: v, wrapped: flipped, code: custos.EINTERNAL},
		{name: "truncated", k: k, version: v, wrapped: wrapped[:len(wrapped)-1], code: custos.EINTERNAL},
		{name: "empty", k: k, version: v, wrapped: nil, code: custos.EINTERNAL},
		{name: "other keyring", k: mustKeyring(t), version: v, wrapped: wrapped, code: custos.EINTERNAL},
		{name: "sealed", k: nil, version: v, wrapped: wrapped, code: custos.ESEALED},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.k.Unwrap(tt.version, tt.wrapped)
			if err == nil {
				t.Fatalf("got a key of %d bytes, want an error", len(got))
			}
			assertCode(t, err, tt.code)
			assertNoBytes(t, err, dek, wrapped)
		})
	}
}

func TestWrapInvalid(t *testing.T) {
	k := mustKeyring(t)
	for _, n := range []int{0, 16, 31, 33} {
		_, _, err := k.Wrap(make([]byte, n))
		assertCode(t, err, custos.EINVALID)
	}
	var sealed *keys.Keyring
	_, _, err := sealed.Wrap(mustDEK(t))
	assertCode(t, err, custos.ESEALED)
}

func TestRotate(t *testing.T) {
	k1 := mustKeyring(t)
	dek1 := mustDEK(t)
	v1, wrapped1, err := k1.Wrap(dek1)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := k1.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := k1.CurrentVersion(); got != 1 {
		t.Fatalf("rotate changed the receiver: got current %d, want 1", got)
	}
	if got := k2.CurrentVersion(); got != 2 {
		t.Fatalf("got current %d, want 2", got)
	}

	got, err := k2.Unwrap(v1, wrapped1)
	if err != nil {
		t.Fatalf("old wrapped key after rotate: %v", err)
	}
	if !bytes.Equal(got, dek1) {
		t.Fatal("old wrapped key unwrapped to another key")
	}

	dek2 := mustDEK(t)
	v2, wrapped2, err := k2.Wrap(dek2)
	if err != nil {
		t.Fatal(err)
	}
	if v2 != 2 {
		t.Fatalf("got wrap version %d after rotate, want 2", v2)
	}
	if got, err := k2.Unwrap(v2, wrapped2); err != nil || !bytes.Equal(got, dek2) {
		t.Fatalf("Unwrap of new wrap: %v", err)
	}
	// The old keyring knows nothing of version 2.
	_, err = k1.Unwrap(v2, wrapped2)
	assertCode(t, err, custos.ESEALED)

	// Re-wrapping (what the rotation job does) moves an old key to version 2.
	v, rewrapped, err := k2.Wrap(got)
	if err != nil || v != 2 {
		t.Fatalf("re-wrap: got version %d, %v; want 2", v, err)
	}
	if got, err := k2.Unwrap(v, rewrapped); err != nil || !bytes.Equal(got, dek1) {
		t.Fatalf("Unwrap of re-wrap: got equal=%v, %v; want the old data key", bytes.Equal(got, dek1), err)
	}
}

func TestRetire(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	k1, err := keys.CreateKeyringFile(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dek := mustDEK(t)
	v1, wrapped, err := k1.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := k1.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	_, err = k2.Retire(2)
	assertCode(t, err, custos.EINVALID)
	_, err = k2.Retire(7)
	assertCode(t, err, custos.ENOTFOUND)

	k3, err := k2.Retire(v1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = k3.Unwrap(v1, wrapped)
	assertCode(t, err, custos.ESEALED)
	// Immutability: the keyring before Retire still unwraps.
	if _, err := k2.Unwrap(v1, wrapped); err != nil {
		t.Fatalf("Retire changed the receiver: %v", err)
	}

	want := []keys.KeyVersionInfo{{Version: 1, Retired: true}, {Version: 2, Current: true}}
	got := k3.Versions()
	if len(got) != len(want) {
		t.Fatalf("got %d versions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Version != want[i].Version || got[i].Retired != want[i].Retired || got[i].Current != want[i].Current || got[i].Created.IsZero() {
			t.Fatalf("got versions %+v, want %+v (with created times)", got, want)
		}
	}

	// Saved and loaded again, the retired key is gone from the file.
	if err := k3.Save(path); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Keys []map[string]any `json:"keys"`
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, item := range raw.Keys {
		if item["version"] == float64(1) {
			if _, ok := item["key"]; ok {
				t.Fatalf("retired version still has key bytes in the file: %v", item)
			}
		}
	}
	k4, err := keys.LoadKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = k4.Unwrap(v1, wrapped)
	assertCode(t, err, custos.ESEALED)

	// Version numbers are never reused after retirement.
	k5, err := k4.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := k5.CurrentVersion(); got != 3 {
		t.Fatalf("got version %d after rotate, want 3", got)
	}
	// Retiring a retired version again is harmless.
	if _, err := k5.Retire(1); err != nil {
		t.Fatal(err)
	}
}

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	k, err := keys.CreateKeyringFile(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Fatalf("got mode %04o, want 0600", got)
	}

	_, err = keys.CreateKeyringFile(path, rand.Reader)
	assertCode(t, err, custos.ECONFLICT)

	dek := mustDEK(t)
	v, wrapped, err := k.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := keys.LoadKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Unwrap(v, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("loaded keyring cannot unwrap: %v", err)
	}

	// Save replaces the file atomically and leaves no temporary file.
	k2, err := loaded.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := k2.Save(path); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "keyring.json" {
		t.Fatalf("got directory entries %v, want only keyring.json", entries)
	}
	reloaded, err := keys.LoadKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := reloaded.CurrentVersion(); got != 2 {
		t.Fatalf("got current version %d after Save, want 2", got)
	}
	if got, err := reloaded.Unwrap(v, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("reloaded keyring cannot unwrap version 1: %v", err)
	}

	_, err = keys.LoadKeyringFile(filepath.Join(dir, "missing.json"))
	assertCode(t, err, custos.ENOTFOUND)
}

func TestLoadKeyringFileMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660, 0o700 | 0o044} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "keyring.json")
			if _, err := keys.CreateKeyringFile(path, rand.Reader); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := keys.LoadKeyringFile(path)
			assertCode(t, err, custos.EINVALID)
			if msg := custos.ErrorMessage(err); !strings.Contains(msg, "chmod 600") {
				t.Fatalf("got message %q, want it to say chmod 600", msg)
			}
		})
	}
	t.Run("0400", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "keyring.json")
		if _, err := keys.CreateKeyringFile(path, rand.Reader); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o400); err != nil {
			t.Fatal(err)
		}
		if _, err := keys.LoadKeyringFile(path); err != nil {
			t.Fatalf("owner-only read-only file refused: %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "d")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := keys.LoadKeyringFile(dir)
		assertCode(t, err, custos.EINVALID)
	})
}

// validKeyringJSON returns a keyring file's content as a generic map, for
// tests that corrupt one part of it.
func validKeyringJSON(t *testing.T) map[string]any {
	t.Helper()
	data, err := mustKeyring(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseKeyringInvalid(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 32))
	mutate := func(f func(m map[string]any)) []byte {
		m := validKeyringJSON(t)
		f(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	firstKey := func(m map[string]any) map[string]any { return m["keys"].([]any)[0].(map[string]any) }
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "not JSON", data: []byte("not a keyring")},
		{name: "array", data: []byte("[]")},
		{name: "empty object", data: []byte("{}")},
		{name: "truncated", data: mutate(func(map[string]any) {})[:40]},
		{name: "syntax error after a key", data: []byte(`{"format":"custos-keyring","keys":[{"version":1,"key":"` + key + `"}] x`)},
		{name: "bad base64 key", data: []byte(`{"format":"custos-keyring","format_version":1,"current":1,"keys":[{"version":1,"key":"` + key + `!!"}]}`)},
		{name: "trailing data", data: append(mutate(func(map[string]any) {}), []byte(`{"x":1}`)...)},
		{name: "unknown field", data: mutate(func(m map[string]any) { m["extra"] = key })},
		{name: "wrong format", data: mutate(func(m map[string]any) { m["format"] = "vault-keyring" })},
		{name: "future format version", data: mutate(func(m map[string]any) { m["format_version"] = 2 })},
		{name: "no current key", data: mutate(func(m map[string]any) { m["current"] = 9 })},
		{name: "no keys", data: mutate(func(m map[string]any) { m["keys"] = []any{} })},
		{name: "short key", data: mutate(func(m map[string]any) { firstKey(m)["key"] = "AAAA" })},
		{name: "missing key", data: mutate(func(m map[string]any) { delete(firstKey(m), "key") })},
		{name: "current retired", data: mutate(func(m map[string]any) { firstKey(m)["retired"] = true; delete(firstKey(m), "key") })},
		{name: "retired with key", data: mutate(func(m map[string]any) { firstKey(m)["retired"] = true })},
		{name: "version zero", data: mutate(func(m map[string]any) { firstKey(m)["version"] = 0; m["current"] = 0 })},
		{name: "duplicate version", data: mutate(func(m map[string]any) { m["keys"] = append(m["keys"].([]any), firstKey(m)) })},
		{name: "short index root", data: mutate(func(m map[string]any) { m["index_root"] = "AAAA" })},
		{name: "missing mac root", data: mutate(func(m map[string]any) { delete(m, "mac_root") })},
		{name: "key as number", data: mutate(func(m map[string]any) { firstKey(m)["key"] = 12345 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keys.ParseKeyring(tt.data)
			if err == nil {
				t.Fatalf("got %v, want an error", k)
			}
			assertCode(t, err, custos.EINVALID)
			assertNoBytes(t, err, bytes.Repeat([]byte{0x5a}, 32))
			if strings.Contains(err.Error(), key[:12]) {
				t.Fatalf("error %q echoes key text", err)
			}
		})
	}

	// The same checks apply to a file.
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := keys.LoadKeyringFile(path)
	assertCode(t, err, custos.EINVALID)
}

func TestLoadKeyringEnv(t *testing.T) {
	k := mustKeyring(t)
	v, err := k.EncodeEnv()
	if err != nil {
		t.Fatal(err)
	}
	dek := mustDEK(t)
	ver, wrapped, err := k.Wrap(dek)
	if err != nil {
		t.Fatal(err)
	}

	t.Setenv("CUSTOS_TEST_KEYRING", v)
	loaded, err := keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := loaded.Unwrap(ver, wrapped); err != nil || !bytes.Equal(got, dek) {
		t.Fatalf("keyring from env cannot unwrap: %v", err)
	}
	if !bytes.Equal(loaded.Indexer().Index("mobile", "13800138000"), k.Indexer().Index("mobile", "13800138000")) {
		t.Fatal("keyring from env has another index key")
	}

	t.Setenv("CUSTOS_TEST_KEYRING", "  "+v+"\n") // trailing newline from a secret file
	if _, err := keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING"); err != nil {
		t.Fatalf("whitespace around the value: %v", err)
	}

	t.Setenv("CUSTOS_TEST_KEYRING", "not base64!")
	_, err = keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING")
	assertCode(t, err, custos.EINVALID)

	t.Setenv("CUSTOS_TEST_KEYRING", base64.StdEncoding.EncodeToString([]byte(`{"format":"x"}`)))
	_, err = keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING")
	assertCode(t, err, custos.EINVALID)

	t.Setenv("CUSTOS_TEST_KEYRING", "")
	_, err = keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING")
	assertCode(t, err, custos.ENOTFOUND)
	_, err = keys.LoadKeyringEnv("CUSTOS_TEST_KEYRING_UNSET_NAME")
	assertCode(t, err, custos.ENOTFOUND)
}

func TestKeyringRandFailure(t *testing.T) {
	_, err := keys.NewKeyring(failReader{})
	assertCode(t, err, custos.EINTERNAL)
	_, err = keys.NewKeyring(&shortReader{n: 40}) // enough for one key, not all
	assertCode(t, err, custos.EINTERNAL)
	_, err = mustKeyring(t).Rotate(failReader{})
	assertCode(t, err, custos.EINTERNAL)
	_, err = keys.NewDEK(failReader{})
	assertCode(t, err, custos.EINTERNAL)
	path := filepath.Join(t.TempDir(), "keyring.json")
	_, err = keys.CreateKeyringFile(path, failReader{})
	assertCode(t, err, custos.EINTERNAL)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("failed create left a file: %v", err)
	}
}

func TestKeyringNoLeak(t *testing.T) {
	rec := &recorder{}
	k, err := keys.NewKeyring(rec)
	if err != nil {
		t.Fatal(err)
	}
	k, err = k.Rotate(rec)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("keyring", "keyring", k, "indexer", k.Indexer())
	type holder struct {
		K *keys.Keyring
	}
	outputs := map[string]string{
		"%v":       fmt.Sprintf("%v", k),
		"%+v":      fmt.Sprintf("%+v", k),
		"%#v":      fmt.Sprintf("%#v", k),
		"%s":       fmt.Sprintf("%s", k),
		"%x":       fmt.Sprintf("%x", k),
		"%d":       fmt.Sprintf("%d", k),
		"indexer":  fmt.Sprintf("%#v", k.Indexer()),
		"struct":   fmt.Sprintf("%+v", holder{k}),
		"slog":     logs.String(),
		"versions": fmt.Sprintf("%#v", k.Versions()),
	}
	if b, err := json.Marshal(k); err == nil {
		outputs["json"] = string(b)
	}
	for name, s := range outputs {
		rec.assertNoLeak(t, name, s)
	}
	if got, want := k.String(), "[keyring v2]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	var sealed *keys.Keyring
	if got, want := sealed.String(), "[keyring sealed]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDeriveKey(t *testing.T) {
	k := mustKeyring(t)
	a1, err := k.DeriveKey("audit-hmac")
	if err != nil {
		t.Fatal(err)
	}
	a2, err := k.DeriveKey("audit-hmac")
	if err != nil {
		t.Fatal(err)
	}
	b, err := k.DeriveKey("webhook")
	if err != nil {
		t.Fatal(err)
	}
	if len(a1) != keys.KeySize || !bytes.Equal(a1, a2) {
		t.Fatal("DeriveKey is not a deterministic 32-byte key")
	}
	if bytes.Equal(a1, b) {
		t.Fatal("two purposes derived the same key")
	}
	rotated, err := k.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if a3, err := rotated.DeriveKey("audit-hmac"); err != nil || !bytes.Equal(a1, a3) {
		t.Fatalf("DeriveKey changed with rotation: %v", err)
	}
	if c, err := mustKeyring(t).DeriveKey("audit-hmac"); err != nil || bytes.Equal(a1, c) {
		t.Fatalf("two keyrings derived the same key: %v", err)
	}
	var sealed *keys.Keyring
	_, err = sealed.DeriveKey("audit-hmac")
	assertCode(t, err, custos.ESEALED)
}

func FuzzParseKeyring(f *testing.F) {
	valid, err := keys.NewKeyring(bytes.NewReader(bytes.Repeat([]byte{7}, 96)))
	if err != nil {
		f.Fatal(err)
	}
	data, err := valid.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("{}"))
	f.Add([]byte(`{"format":"custos-keyring","format_version":1,"current":1,"keys":[{"version":1,"retired":true}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := keys.ParseKeyring(data)
		if err != nil {
			if code := custos.ErrorCode(err); code != custos.EINVALID {
				t.Fatalf("got code %q, want %q", code, custos.EINVALID)
			}
			return
		}
		// Whatever parses must work.
		v, wrapped, err := k.Wrap(bytes.Repeat([]byte{1}, keys.KeySize))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Unwrap(v, wrapped); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkWrapUnwrap(b *testing.B) {
	k := mustKeyring(b)
	dek := mustDEK(b)
	b.ReportAllocs()
	for b.Loop() {
		v, wrapped, err := k.Wrap(dek)
		if err != nil {
			b.Fatal(err)
		}
		got, err := k.Unwrap(v, wrapped)
		if err != nil {
			b.Fatal(err)
		}
		keys.Zero(got)
	}
}

func TestZero(t *testing.T) {
	b := bytes.Repeat([]byte{0xff}, 40)
	keys.Zero(b)
	if !bytes.Equal(b, make([]byte, 40)) {
		t.Fatalf("got %x, want zeros", b)
	}
	keys.Zero(nil) // must not panic
}

func TestKeyringFileWriteErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no", "such", "dir", "keyring.json")
	_, err := keys.CreateKeyringFile(missing, rand.Reader)
	assertCode(t, err, custos.EINTERNAL)
	err = mustKeyring(t).Save(missing)
	assertCode(t, err, custos.EINTERNAL)
	_, err = keys.CreateSignerFile(missing, rand.Reader)
	assertCode(t, err, custos.EINTERNAL)

	var sealed *keys.Keyring
	err = sealed.Save(filepath.Join(t.TempDir(), "keyring.json"))
	assertCode(t, err, custos.ESEALED)
	if got := sealed.CurrentVersion(); got != 0 {
		t.Fatalf("got current version %d for a sealed keyring, want 0", got)
	}
	if sealed.Indexer() != nil || sealed.Versions() != nil {
		t.Fatal("sealed keyring returned an indexer or versions")
	}
}
