package keys_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"custos"
	"custos/keys"
)

func TestNewToken(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		token, hash, err := keys.NewToken(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(token, "cst_")
		if !ok {
			t.Fatalf("got token %q, want prefix cst_", token)
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || len(raw) != 32 {
			t.Fatalf("got %d random bytes (%v), want 32", len(raw), err)
		}
		want := sha256.Sum256([]byte(token))
		if !bytes.Equal(hash, want[:]) {
			t.Fatalf("got hash %x, want SHA-256 of the token %x", hash, want)
		}
		if !bytes.Equal(keys.TokenHash(token), hash) {
			t.Fatal("TokenHash differs from the hash NewToken returned")
		}
		if seen[token] {
			t.Fatal("token repeated")
		}
		seen[token] = true
	}
	if bytes.Equal(keys.TokenHash("cst_a"), keys.TokenHash("cst_b")) {
		t.Fatal("different tokens hash equal")
	}
	_, _, err := keys.NewToken(failReader{})
	assertCode(t, err, custos.EINTERNAL)
}
