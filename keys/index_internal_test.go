package keys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

// The blind index is HMAC-SHA-256 under the field's HKDF-derived key,
// truncated to its first IndexSize bytes (migration 0014 cut the stored
// keys the same way, so keys written before and after it agree).
func TestIndexIsTruncatedHMAC(t *testing.T) {
	root := bytes.Repeat([]byte{7}, KeySize)
	ix := newIndexer(root)
	for _, tc := range []struct{ field, value string }{
		{"mobile", "13800138000"},
		{"email", "alice@example.com"},
		{"resident_id", ""},
	} {
		key, err := hkdf.Key(sha256.New, root, nil, "custos blind index v1|"+tc.field, KeySize)
		if err != nil {
			t.Fatal(err)
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(tc.value))
		full := m.Sum(nil)
		got := ix.Index(tc.field, tc.value)
		if len(got) != 16 || !bytes.Equal(got, full[:16]) {
			t.Errorf("Index(%q, …) = %x, want the first 16 bytes of %x", tc.field, got, full)
		}
		if cap(got) != len(got) {
			t.Errorf("Index(%q, …) has capacity %d beyond its %d bytes; an append would show the rest of the HMAC", tc.field, cap(got), len(got))
		}
	}
}
