package keys

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"custos"
)

// argon2id parameters for console passwords and security answers.
//
// RFC 9106 recommends t=1, m=2 GiB, or t=3, m=64 MiB when memory is short;
// both cost far too much per sign-in for a service on 2 vCPUs that must stay
// responsive under a burst of log-ins. We use the OWASP Password Storage
// Cheat Sheet's first argon2id option, t=2, m=19 MiB, p=1, which keeps one
// hash in the tens of milliseconds. The parameters are stored in each hash,
// so raising them later only affects new hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonSaltLen = 16
	argonKeyLen  = 32
)

// Bounds on parameters read back from a stored hash, so a corrupted or
// planted hash cannot make VerifySecret allocate gigabytes or spin.
const (
	maxArgonTime    = 16
	maxArgonMemory  = 256 * 1024 // KiB
	maxArgonThreads = 16
)

// HashSecret hashes a password or security answer with argon2id and a
// random 16-byte salt read from rand (crypto/rand.Reader when nil). The
// result is PHC-encoded:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64. Returns EINVALID for an
// empty secret.
func HashSecret(secret string, rand io.Reader) (string, error) {
	if secret == "" {
		return "", custos.Errorf(custos.EINVALID, "The secret must not be empty.")
	}
	salt, err := randomBytes(rand, argonSaltLen)
	if err != nil {
		return "", err
	}
	pw := []byte(secret)
	defer zero(pw)
	sum := argon2.IDKey(pw, salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// VerifySecret reports whether secret matches a hash made by HashSecret,
// comparing in constant time. It uses the parameters stored in encoded, so
// hashes made with older parameters still verify. Returns EINTERNAL (and
// false) if encoded is not a well-formed argon2id hash within sane bounds.
func VerifySecret(encoded, secret string) (bool, error) {
	p, err := parseArgon2id(encoded)
	if err != nil {
		return false, &custos.Error{Code: custos.EINTERNAL, Message: "Stored secret hash is malformed.", Err: err}
	}
	pw := []byte(secret)
	defer zero(pw)
	sum := argon2.IDKey(pw, p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
	return subtle.ConstantTimeCompare(sum, p.hash) == 1, nil
}

type argonParams struct {
	time, memory uint32
	threads      uint8
	salt, hash   []byte
}

// parseArgon2id parses "$argon2id$v=19$m=M,t=T,p=P$salt$hash". Its errors
// name the part that is wrong, never the hash.
func parseArgon2id(s string) (*argonParams, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return nil, errors.New("keys: not an argon2id PHC string")
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return nil, errors.New("keys: unsupported argon2 version")
	}
	var p argonParams
	var seen [3]bool
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, errors.New("keys: malformed argon2 parameters")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, errors.New("keys: malformed argon2 parameter value")
		}
		switch {
		case k == "m" && !seen[0] && n >= 8 && n <= maxArgonMemory:
			p.memory, seen[0] = uint32(n), true
		case k == "t" && !seen[1] && n >= 1 && n <= maxArgonTime:
			p.time, seen[1] = uint32(n), true
		case k == "p" && !seen[2] && n >= 1 && n <= maxArgonThreads:
			p.threads, seen[2] = uint8(n), true
		default:
			return nil, errors.New("keys: argon2 parameter repeated, unknown or out of range")
		}
	}
	if !seen[0] || !seen[1] || !seen[2] {
		return nil, errors.New("keys: argon2 parameters missing")
	}
	if p.memory < 8*uint32(p.threads) {
		return nil, errors.New("keys: argon2 memory below 8 KiB per thread")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return nil, errors.New("keys: malformed argon2 salt")
	}
	if p.hash, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(p.hash) < 16 || len(p.hash) > 64 {
		return nil, errors.New("keys: malformed argon2 hash")
	}
	return &p, nil
}
