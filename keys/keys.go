// Package keys holds every cryptographic operation of custos: the master
// keyring (KEK) that wraps per-subject data keys (DEK), field sealing with
// AES-256-GCM, the blind index for lookups without decryption, argon2id
// secret hashes, API tokens and the Ed25519 key that signs audit checkpoints.
//
// It is the only package that imports crypto/cipher. It builds on the
// standard library and golang.org/x/crypto only; no primitive is written
// here by hand.
//
// Errors are *custos.Error values. Their messages never contain key bytes,
// plaintext or ciphertext: a failed decryption says only that the stored
// value failed authentication.
package keys

import (
	"crypto/rand"
	"io"

	"custos"
)

// KeySize is the size in bytes of every symmetric key: master keys, data
// keys and the index and MAC root keys (AES-256, HMAC-SHA-256).
const KeySize = 32

// randOrDefault returns r, or crypto/rand.Reader when r is nil. Randomness
// is injected so that tests can make a reader fail; production passes nil
// or crypto/rand.Reader.
func randOrDefault(r io.Reader) io.Reader {
	if r == nil {
		return rand.Reader
	}
	return r
}

// randomBytes reads n bytes from r. A short read is an error: a nonce or
// key that is partly zero must never be used.
func randomBytes(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if err := readRandom(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

// readRandom fills b from r (crypto/rand.Reader when nil).
func readRandom(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(randOrDefault(r), b); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Could not read random bytes.", Err: err}
	}
	return nil
}

// Zero overwrites b with zeros. Callers use it on a data key once they have
// built an AEAD from it, and on any other buffer that held key material.
//
// Wiping is best effort, as in Vault's memzero: the Go runtime may already
// have copied the bytes (a growing slice, the garbage collector, an AES key
// schedule inside crypto/aes that we cannot reach). It still shortens the
// time a key sits in memory that may end up in a core dump or swap.
func Zero(b []byte) { zero(b) }

func zero(b []byte) { clear(b) }
