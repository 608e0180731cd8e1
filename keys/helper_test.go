package keys_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"

	"custos"
	"custos/keys"
)

// recorder is a random source that remembers every byte it handed out, so a
// test can check that no key material appears in some output.
type recorder struct {
	mu  sync.Mutex
	out []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := rand.Read(p)
	r.mu.Lock()
	r.out = append(r.out, p[:n]...)
	r.mu.Unlock()
	return n, err
}

// assertNoLeak fails if s contains any 8-byte window of the recorded random
// bytes, raw, in hex or in base64.
func (r *recorder) assertNoLeak(tb testing.TB, what, s string) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.out) == 0 {
		tb.Fatal("recorder handed out nothing")
	}
	for i := 0; i+8 <= len(r.out); i++ {
		w := r.out[i : i+8]
		// 6-byte windows aligned to 3 encode to whole base64 groups.
		var b64 string
		if i%3 == 0 {
			b64 = base64.StdEncoding.EncodeToString(w[:6])
		}
		if strings.Contains(s, string(w)) ||
			strings.Contains(strings.ToLower(s), hex.EncodeToString(w)) ||
			(b64 != "" && strings.Contains(s, b64)) {
			tb.Fatalf("%s contains random bytes at offset %d: %q", what, i, s)
		}
	}
}

// failReader always fails, to check that randomness errors are reported.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

// shortReader returns fewer bytes than asked and then EOF.
type shortReader struct{ n int }

func (r *shortReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("EOF")
	}
	n := min(len(p), r.n)
	r.n -= n
	return n, nil
}

func mustKeyring(tb testing.TB) *keys.Keyring {
	tb.Helper()
	k, err := keys.NewKeyring(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func mustDEK(tb testing.TB) []byte {
	tb.Helper()
	dek, err := keys.NewDEK(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return dek
}

// assertCode fails unless err is a *custos.Error with the given code.
func assertCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got nil error, want code %q", code)
	}
	if custos.AsError(err) == nil {
		tb.Fatalf("got %T %v, want *custos.Error", err, err)
	}
	if got := custos.ErrorCode(err); got != code {
		tb.Fatalf("got code %q (%v), want %q", got, err, code)
	}
}

// assertNoBytes fails if the error text contains any given byte string, in
// raw, hex or base64 form.
func assertNoBytes(tb testing.TB, err error, secrets ...[]byte) {
	tb.Helper()
	msg := err.Error() + " " + custos.ErrorMessage(err)
	for _, s := range secrets {
		if len(s) < 4 {
			continue
		}
		for _, enc := range []string{string(s), hex.EncodeToString(s), base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s)} {
			if strings.Contains(msg, enc) {
				tb.Fatalf("error %q contains secret bytes", msg)
			}
		}
	}
	if bytes.Contains([]byte(msg), []byte{0}) {
		tb.Fatalf("error %q contains a NUL byte", msg)
	}
}
