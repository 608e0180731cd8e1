package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
)

// TokenPrefix starts every API token, so a leaked token is easy to find
// with secret scanners and easy to tell apart from other credentials.
const TokenPrefix = "cst_"

// tokenBytes is the entropy of a token: 256 bits, so the unsalted SHA-256
// stored for it cannot be reversed by guessing.
const tokenBytes = 32

// NewToken returns a new API token, "cst_" followed by 32 random bytes from
// rand (crypto/rand.Reader when nil) in unpadded base64url, and the
// SHA-256 of the token to store. The token itself is shown once and never
// stored. Returns EINTERNAL if rand fails.
func NewToken(rand io.Reader) (token string, hash []byte, err error) {
	b, err := randomBytes(rand, tokenBytes)
	if err != nil {
		return "", nil, err
	}
	defer zero(b)
	token = TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return token, TokenHash(token), nil
}

// TokenHash returns the SHA-256 of a presented token, the value to look up
// (custos.Tx.FindAPIKey). A plain hash is enough because tokens carry 256
// random bits: there is nothing to brute-force, unlike a password, and the
// lookup must be a single indexed equality.
func TokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}
