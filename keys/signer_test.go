package keys_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
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

func mustSigner(tb testing.TB) *keys.Signer {
	tb.Helper()
	s, err := keys.NewSigner(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	s := mustSigner(t)
	msg := []byte("checkpoint seq=42 hash=abcd")
	sig := s.Sign(msg)
	other := mustSigner(t)
	tamperedSig := bytes.Clone(sig)
	tamperedSig[0] ^= 1
	tests := []struct {
		name string
		pub  ed25519.PublicKey
		msg  []byte
		sig  []byte
		want bool
	}{
		{name: "valid", pub: s.Public(), msg: msg, sig: sig, want: true},
		{name: "tampered message", pub: s.Public(), msg: []byte("checkpoint seq=43 hash=abcd"), sig: sig},
		{name: "tampered signature", pub: s.Public(), msg: msg, sig: tamperedSig},
		{name: "truncated signature", pub: s.Public(), msg: msg, sig: sig[:63]},
		{name: "no signature", pub: s.Public(), msg: msg, sig: nil},
		{name: "other key", pub: other.Public(), msg: msg, sig: sig},
		{name: "short public key", pub: s.Public()[:31], msg: msg, sig: sig},
		{name: "nil public key", pub: nil, msg: msg, sig: sig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keys.Verify(tt.pub, tt.msg, tt.sig); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSignerKeyID(t *testing.T) {
	s := mustSigner(t)
	sum := sha256.Sum256(s.Public())
	if got, want := s.KeyID(), hex.EncodeToString(sum[:])[:16]; got != want {
		t.Fatalf("got key id %q, want %q", got, want)
	}
	if s.KeyID() == mustSigner(t).KeyID() {
		t.Fatal("two signers share a key id")
	}
	// Public returns a copy.
	pub := s.Public()
	pub[0] ^= 1
	if bytes.Equal(pub, s.Public()) {
		t.Fatal("Public returned the signer's own slice")
	}
}

func TestSignerFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.key")
	s, err := keys.CreateSignerFile(path, rand.Reader)
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
	_, err = keys.CreateSignerFile(path, rand.Reader)
	assertCode(t, err, custos.ECONFLICT)

	loaded, err := keys.LoadSignerFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.KeyID() != s.KeyID() {
		t.Fatalf("got key id %s, want %s", loaded.KeyID(), s.KeyID())
	}
	msg := []byte("head")
	if !keys.Verify(s.Public(), msg, loaded.Sign(msg)) {
		t.Fatal("signature of the loaded key does not verify with the original public key")
	}
	pub, err := keys.LoadSignerPublicKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pub, s.Public()) {
		t.Fatal("LoadSignerPublicKey returned another key")
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = keys.LoadSignerFile(path)
	assertCode(t, err, custos.EINVALID)
	if !strings.Contains(custos.ErrorMessage(err), "chmod 600") {
		t.Fatalf("got message %q, want it to say chmod 600", custos.ErrorMessage(err))
	}
	_, err = keys.LoadSignerPublicKey(path)
	assertCode(t, err, custos.EINVALID)

	_, err = keys.LoadSignerFile(filepath.Join(dir, "missing.key"))
	assertCode(t, err, custos.ENOTFOUND)
}

func TestLoadSignerFileInvalid(t *testing.T) {
	other := mustSigner(t)
	keyring, err := mustKeyring(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	valid := func() map[string]any {
		path := filepath.Join(t.TempDir(), "audit.key")
		if _, err := keys.CreateSignerFile(path, rand.Reader); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	encode := func(m map[string]any) []byte {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name string
		data []byte
	}{
		{name: "empty", data: nil},
		{name: "not JSON", data: []byte("-----BEGIN PRIVATE KEY-----")},
		{name: "keyring instead", data: keyring},
		{name: "short seed", data: func() []byte { m := valid(); m["seed"] = "AAAA"; return encode(m) }()},
		{name: "mismatched public key", data: func() []byte { m := valid(); m["public_key"] = other.Public(); return encode(m) }()},
		{name: "trailing data", data: append(encode(valid()), '{')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.key")
			if err := os.WriteFile(path, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := keys.LoadSignerFile(path)
			assertCode(t, err, custos.EINVALID)
		})
	}
}

func TestPublicKeyEncoding(t *testing.T) {
	s := mustSigner(t)
	enc := keys.EncodePublicKey(s.Public())
	got, err := keys.ParsePublicKey(enc + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, s.Public()) {
		t.Fatal("round trip changed the key")
	}
	for _, bad := range []string{"", "ed25519:", "ed25519:AAAA", strings.TrimPrefix(enc, "ed25519:"), "ed448:" + strings.TrimPrefix(enc, "ed25519:"), enc + "A"} {
		_, err := keys.ParsePublicKey(bad)
		assertCode(t, err, custos.EINVALID)
	}
}

func TestSignerNoLeak(t *testing.T) {
	rec := &recorder{}
	s, err := keys.NewSigner(rec)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "signer", s)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%#v", s), fmt.Sprintf("%x", s), logs.String()} {
		rec.assertNoLeak(t, "formatted signer", out)
	}
	if got, want := s.String(), "[signer "+s.KeyID()+"]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	_, err = keys.NewSigner(failReader{})
	assertCode(t, err, custos.EINTERNAL)
}
