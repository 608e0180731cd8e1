package keys_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"custos"
	"custos/keys"
)

func TestHashSecret(t *testing.T) {
	h, err := keys.HashSecret("correct horse battery staple", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if prefix := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(h, prefix) {
		t.Fatalf("got %q, want prefix %q", h, prefix)
	}
	if strings.Contains(h, "horse") {
		t.Fatal("hash contains the secret")
	}
	tests := []struct {
		name   string
		secret string
		want   bool
	}{
		{name: "right", secret: "correct horse battery staple", want: true},
		{name: "wrong", secret: "correct horse battery stapler", want: false},
		{name: "empty", secret: "", want: false},
		{name: "case", secret: "Correct horse battery staple", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keys.VerifySecret(h, tt.secret)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}

	h2, err := keys.HashSecret("correct horse battery staple", rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Fatal("two hashes of one secret are equal; want a fresh salt each")
	}
}

func TestHashSecretErrors(t *testing.T) {
	_, err := keys.HashSecret("", rand.Reader)
	assertCode(t, err, custos.EINVALID)
	_, err = keys.HashSecret("pw", failReader{})
	assertCode(t, err, custos.EINTERNAL)
}

func TestVerifySecretMalformed(t *testing.T) {
	const salt, sum = "c2FsdHNhbHRzYWx0c2FsdA", "aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
	tests := []struct {
		name    string
		encoded string
	}{
		{name: "empty", encoded: ""},
		{name: "bcrypt", encoded: "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{name: "argon2i", encoded: "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + sum},
		{name: "old version", encoded: "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + sum},
		{name: "too few parts", encoded: "$argon2id$v=19$m=19456,t=2,p=1$" + salt},
		{name: "too many parts", encoded: "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + sum + "$x"},
		{name: "missing parameter", encoded: "$argon2id$v=19$m=19456,t=2$" + salt + "$" + sum},
		{name: "repeated parameter", encoded: "$argon2id$v=19$m=19456,t=2,t=2,p=1$" + salt + "$" + sum},
		{name: "unknown parameter", encoded: "$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + sum},
		{name: "negative", encoded: "$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + sum},
		{name: "zero time", encoded: "$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + sum},
		{name: "zero threads", encoded: "$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + sum},
		{name: "huge memory", encoded: "$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + sum},
		{name: "huge time", encoded: "$argon2id$v=19$m=19456,t=1000000,p=1$" + salt + "$" + sum},
		{name: "memory below threads", encoded: "$argon2id$v=19$m=8,t=1,p=4$" + salt + "$" + sum},
		{name: "overflow", encoded: "$argon2id$v=19$m=99999999999999999999,t=2,p=1$" + salt + "$" + sum},
		{name: "bad salt base64", encoded: "$argon2id$v=19$m=19456,t=2,p=1$!!!$" + sum},
		{name: "short salt", encoded: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$" + sum},
		{name: "padded hash", encoded: "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + sum + "="},
		{name: "short hash", encoded: "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$aGFzaA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := keys.VerifySecret(tt.encoded, "pw")
			if ok {
				t.Fatal("got true, want false")
			}
			assertCode(t, err, custos.EINTERNAL)
		})
	}
}

func BenchmarkHashSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.HashSecret("correct horse battery staple", rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
