package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"

	"custos"
)

// Ciphertext format, for sealed fields and for wrapped data keys:
//
//	[format 1 byte = 0x01][nonce 12 bytes][AES-256-GCM ciphertext][tag 16 bytes]
//
// The format byte comes first so that a later scheme (another cipher, a
// longer nonce) can be read beside this one, as Vault's barrier prefixes
// every value with its term and version. The key version is not stored in
// the ciphertext: the data key's version lives in its custos.DataKey row and
// is bound into the associated data instead, so a value sealed under one
// version fails to open under another.
const (
	formatV1  byte = 0x01
	nonceSize      = 12 // the GCM standard nonce
	tagSize        = 16
	// Overhead is how many bytes Seal adds to a plaintext.
	Overhead = 1 + nonceSize + tagSize
)

var (
	errMalformed = errors.New("keys: ciphertext too short or of unknown format")
	errAuth      = errors.New("keys: message authentication failed")
)

// AEAD seals and opens field values under one data key. It holds the
// expanded AES key schedule, so a caller sealing the ten or so fields of one
// subject builds it once instead of once per field. It is safe for
// concurrent use.
//
// Each data key encrypts only one subject's values, far below the 2^32
// messages NIST SP 800-38D allows under one key with random 96-bit nonces,
// so per-key encryption counts need not be tracked (Vault tracks them for
// its single barrier key).
type AEAD struct {
	gcm cipher.AEAD
}

// NewAEAD returns an AEAD for a 32-byte data key. The key bytes are copied
// into the cipher's key schedule; the caller may Zero dek afterwards.
// Returns EINTERNAL if dek is not KeySize bytes.
func NewAEAD(dek []byte) (*AEAD, error) {
	gcm, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	return &AEAD{gcm: gcm}, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		// Only the length is reported, never the bytes.
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Key has the wrong length.",
			Err: fmt.Errorf("keys: key is %d bytes, want %d", len(key), KeySize)}
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not build cipher.", Err: err}
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not build cipher.", Err: err}
	}
	return gcm, nil
}

// Seal encrypts plaintext and binds it to aad (build it with AAD). The nonce
// is read from rand (crypto/rand.Reader when nil); a failing reader is an
// EINTERNAL error, never a fixed or partial nonce.
func (a *AEAD) Seal(plaintext, aad []byte, rand io.Reader) ([]byte, error) {
	return seal(a.gcm, plaintext, aad, rand)
}

// Open decrypts a value sealed by Seal with the same data key and aad. Any
// failure — a short or unknown-format input, a wrong key, a different aad,
// a flipped bit — is an EINTERNAL error whose message names no bytes.
func (a *AEAD) Open(ciphertext, aad []byte) ([]byte, error) {
	return a.OpenAppend(nil, ciphertext, aad)
}

// OpenAppend is Open appending the plaintext to dst, for a caller that
// opens several values into one buffer (and zeroes it after) instead of
// allocating each. On failure it returns nil and dst is unchanged.
func (a *AEAD) OpenAppend(dst, ciphertext, aad []byte) ([]byte, error) {
	pt, err := open(a.gcm, dst, ciphertext, aad)
	if err != nil {
		return nil, openError(err)
	}
	return pt, nil
}

// String returns "[aead]"; the key schedule is never printed.
func (a *AEAD) String() string { return "[aead]" }

// Format prints String for every verb, including %#v and %x, so that
// fmt never reflects into the key schedule.
func (a *AEAD) Format(f fmt.State, verb rune) { writeRedacted(f, a.String()) }

// LogValue returns String for log/slog.
func (a *AEAD) LogValue() slog.Value { return slog.StringValue(a.String()) }

// Seal encrypts plaintext under dek; see AEAD.Seal. Callers sealing several
// values with one key should use NewAEAD once instead.
func Seal(dek, plaintext, aad []byte, rand io.Reader) ([]byte, error) {
	a, err := NewAEAD(dek)
	if err != nil {
		return nil, err
	}
	return a.Seal(plaintext, aad, rand)
}

// Open decrypts ciphertext under dek; see AEAD.Open.
func Open(dek, ciphertext, aad []byte) ([]byte, error) {
	a, err := NewAEAD(dek)
	if err != nil {
		return nil, err
	}
	return a.Open(ciphertext, aad)
}

func seal(gcm cipher.AEAD, plaintext, aad []byte, rand io.Reader) ([]byte, error) {
	out := make([]byte, 1+nonceSize, Overhead+len(plaintext))
	out[0] = formatV1
	nonce := out[1 : 1+nonceSize]
	// A fresh random nonce for every seal: GCM under a repeated nonce leaks
	// the XOR of plaintexts and the authentication key.
	if err := readRandom(rand, nonce); err != nil {
		return nil, err
	}
	return gcm.Seal(out, nonce, plaintext, aad), nil
}

// open checks every length before slicing (Vault's decrypt does the same),
// so no input can panic it.
func open(gcm cipher.AEAD, dst, ciphertext, aad []byte) ([]byte, error) {
	if len(ciphertext) < Overhead || ciphertext[0] != formatV1 {
		return nil, errMalformed
	}
	nonce := ciphertext[1 : 1+nonceSize]
	pt, err := gcm.Open(dst, nonce, ciphertext[1+nonceSize:], aad)
	if err != nil {
		return nil, errAuth
	}
	return pt, nil
}

func openError(cause error) error {
	if errors.Is(cause, errMalformed) {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Stored value is malformed.", Err: cause}
	}
	return &custos.Error{Code: custos.EINTERNAL, Message: "Stored value failed authentication.", Err: cause}
}

// AAD encodes parts as associated data: each part is written as its length
// (4 bytes, big-endian) followed by its bytes. The encoding is injective, so
// ("a|b", "c") and ("a", "b|c") — which a plain join would confuse — bind
// to different data. Callers pass, in a fixed order, the table, the column
// or field name, the subject id, the record id (or "") and the data key
// version, so a value copied to another row, field or key version fails to
// open.
func AAD(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		checkAADPart(p)
		n += 4 + len(p)
	}
	return AppendAAD(make([]byte, 0, n), parts...)
}

// AppendAAD is AAD appending the encoding to dst, for a caller that
// reuses one buffer for the associated data of several values.
func AppendAAD(dst []byte, parts ...string) []byte {
	b := dst
	for _, p := range parts {
		checkAADPart(p)
		b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
		b = append(b, p...)
	}
	return b
}

// checkAADPart refuses a part whose length would wrap its 4-byte prefix:
// unreachable for field names and ids, and refused rather than let the
// encoding become ambiguous.
func checkAADPart(p string) {
	if uint64(len(p)) > math.MaxUint32 {
		panic("keys: AAD part longer than 4 GiB")
	}
}

func writeRedacted(w io.Writer, s string) {
	// A failed write to a fmt.State cannot be reported anywhere; fmt itself
	// ignores it.
	if _, err := io.WriteString(w, s); err != nil {
		return
	}
}
