package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"custos"
)

// Signer holds the Ed25519 key that signs audit checkpoints. It is kept
// apart from the keyring: a verifier needs only its public key, and
// rotating master keys must not invalidate old checkpoints. A Signer is
// safe for concurrent use.
type Signer struct {
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	keyID   string
	created time.Time
}

const (
	signerFormat        = "custos-audit-signer"
	signerFormatVersion = 1
)

type signerFile struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	Created       time.Time `json:"created"`
	Seed          []byte    `json:"seed"`
	PublicKey     []byte    `json:"public_key"`
}

// NewSigner returns a signer with a fresh key pair whose 32-byte seed is
// read from rand (crypto/rand.Reader when nil). It is not saved anywhere;
// see CreateSignerFile.
func NewSigner(rand io.Reader) (*Signer, error) {
	// The seed is read here rather than by ed25519.GenerateKey, which since
	// Go 1.26 ignores a caller's reader: the injected reader must be used.
	seed, err := randomBytes(rand, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	defer zero(seed)
	return newSigner(seed, time.Now().UTC()), nil
}

func newSigner(seed []byte, created time.Time) *Signer {
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: pub, keyID: PublicKeyID(pub), created: created}
}

// CreateSignerFile creates a new signing key and writes it to path with
// mode 0600, atomically. Returns ECONFLICT if path exists.
func CreateSignerFile(path string, rand io.Reader) (*Signer, error) {
	if _, err := os.Lstat(path); err == nil {
		return nil, custos.Errorf(custos.ECONFLICT, "The audit signing key file %s already exists.", path)
	}
	s, err := NewSigner(rand)
	if err != nil {
		return nil, err
	}
	seed := s.priv.Seed() // a copy, wiped below
	defer zero(seed)
	data, err := json.MarshalIndent(signerFile{
		Format:        signerFormat,
		FormatVersion: signerFormatVersion,
		Created:       s.created,
		Seed:          seed,
		PublicKey:     s.pub,
	}, "", "  ")
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not encode audit signing key.", Err: err}
	}
	defer zero(data)
	if err := writePrivateFile(path, append(data, '\n'), true, "audit signing key"); err != nil {
		return nil, err
	}
	return s, nil
}

// LoadSignerFile reads a signing key written by CreateSignerFile. Returns
// ENOTFOUND if the file does not exist, and EINVALID if group or others may
// access it (the message says to chmod 600) or if it is not a valid key
// file, including a public key that does not match the private one.
func LoadSignerFile(path string) (*Signer, error) {
	data, err := readPrivateFile(path, "audit signing key")
	if err != nil {
		return nil, err
	}
	defer zero(data)

	var f signerFile
	defer func() { zero(f.Seed) }()
	if err := decodeStrictJSON(data, &f); err != nil {
		return nil, invalidSigner("The audit signing key file is not valid key JSON.", err)
	}
	if f.Format != signerFormat || f.FormatVersion != signerFormatVersion {
		return nil, invalidSigner("The file is not a custos audit signing key.", nil)
	}
	if len(f.Seed) != ed25519.SeedSize {
		return nil, invalidSigner("The audit signing key has the wrong length.", nil)
	}
	s := newSigner(f.Seed, f.Created)
	if !bytes.Equal(s.pub, f.PublicKey) {
		return nil, invalidSigner("The audit signing key does not match its public key.", nil)
	}
	return s, nil
}

// LoadSignerPublicKey returns the public key of the signing key file at
// path, for `custos audit verify` on the host that holds it. It applies
// the checks of LoadSignerFile. Hosts without the private key use
// ParsePublicKey instead.
func LoadSignerPublicKey(path string) (ed25519.PublicKey, error) {
	s, err := LoadSignerFile(path)
	if err != nil {
		return nil, err
	}
	return s.Public(), nil
}

func invalidSigner(msg string, cause error) error {
	return &custos.Error{Code: custos.EINVALID, Message: msg, Err: cause}
}

// Sign returns the Ed25519 signature of msg.
func (s *Signer) Sign(msg []byte) []byte {
	return ed25519.Sign(s.priv, msg)
}

// Public returns a copy of the public key.
func (s *Signer) Public() ed25519.PublicKey {
	return bytes.Clone(s.pub)
}

// KeyID returns the id recorded with each checkpoint
// (custos.AuditCheckpoint.KeyID): see PublicKeyID.
func (s *Signer) KeyID() string { return s.keyID }

// String returns "[signer <key id>]"; the private key is never printed.
func (s *Signer) String() string {
	if s == nil {
		return "[signer none]"
	}
	return "[signer " + s.keyID + "]"
}

// Format prints String for every verb, so fmt never reflects into the key.
func (s *Signer) Format(f fmt.State, verb rune) { writeRedacted(f, s.String()) }

// LogValue returns String for log/slog.
func (s *Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

// PublicKeyID returns the first 16 hex digits of the SHA-256 of pub: short
// enough to print, long enough that two keys of one deployment never share
// it.
func PublicKeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Verify reports whether sig is a valid signature of msg by pub. A public
// key of the wrong length is reported as false, not a panic as in
// ed25519.Verify.
func Verify(pub ed25519.PublicKey, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize {
		return false
	}
	return ed25519.Verify(pub, msg, sig)
}

// EncodePublicKey returns pub as "ed25519:" followed by standard base64,
// the form operators copy to a verifying host.
func EncodePublicKey(pub ed25519.PublicKey) string {
	return "ed25519:" + base64.StdEncoding.EncodeToString(pub)
}

// ParsePublicKey parses the output of EncodePublicKey. Returns EINVALID for
// anything else.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), "ed25519:")
	if !ok {
		return nil, custos.Errorf(custos.EINVALID, "A public key must start with \"ed25519:\".")
	}
	b, err := base64.StdEncoding.Strict().DecodeString(rest)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, custos.Errorf(custos.EINVALID, "The public key is not %d bytes of base64.", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
