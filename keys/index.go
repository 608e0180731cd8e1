package keys

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"
)

// IndexSize is the length in bytes of a blind index value: HMAC-SHA-256
// truncated to its first 128 bits.
//
// Truncation is allowed by RFC 2104 section 5 down to half the hash's
// length and by NIST SP 800-107r1 section 5.3.3; 128 bits is that half.
// What the index must resist is a collision between two customers' values
// of one field, which would make the second customer's create or
// correction fail as a duplicate: among a billion keys of one field the
// chance of any is about 1.5e-21 (n²/2¹²⁹). Guessing a value from its key
// still needs the index key. The shorter key takes half the space in the
// blind index's B-tree leaves, where a create's keys land on random pages
// (BENCHMARKS.md, fifty-third and fifty-fourth sessions). Keys written
// before migration 0014 were 32 bytes; the migration cut them to these 16.
const IndexSize = 16

// maxCachedFields bounds the cache of derived field keys. Field names come
// from the catalog, a few dozen; the bound only stops a caller that passes
// arbitrary names from growing the cache without limit.
const maxCachedFields = 1024

// Indexer computes blind indexes: HMAC-SHA-256 of a normalised value under a
// key of its own for each field, so equal values can be found without
// decrypting anything, and the index of a mobile number cannot be matched
// against the index of an email field.
//
// Field keys are derived with HKDF-SHA-256 from the keyring's index root key
// with the info "custos blind index v1|"+field, never by concatenating key
// bytes. Each is derived once and cached. An Indexer is safe for concurrent
// use.
type Indexer struct {
	root []byte

	mu     sync.RWMutex
	fields map[string]*fieldMAC
}

// fieldMAC is the keyed HMAC state of one field, before any message. Index
// clones it instead of calling hmac.New, which saves hashing the padded key
// twice per value. The precomputed states are as secret as the key.
type fieldMAC struct {
	key  []byte
	base hash.Hash // written to by nobody; only cloned
}

func newIndexer(root []byte) *Indexer {
	return &Indexer{root: root, fields: make(map[string]*fieldMAC)}
}

// Index returns the IndexSize-byte blind index of normalized for field.
// The caller normalises first (trimmed, case-folded, digits only …, per
// the catalog's normaliser), since "138 0013 8000" and "13800138000"
// index differently.
// The result depends only on the index root key, field and value, so it is
// unchanged by master key rotation.
func (ix *Indexer) Index(field, normalized string) []byte {
	h := ix.mac(field)
	// hash.Hash.Write never returns an error.
	if _, err := io.WriteString(h, normalized); err != nil {
		panic("keys: hash write failed: " + err.Error())
	}
	// One allocation: Sum's argument escapes through the hash.Hash
	// interface, so a stack array for the whole sum would be a second.
	// The capacity is cut with the length, so an append cannot reach the
	// rest of the HMAC.
	sum := h.Sum(make([]byte, 0, sha256.Size))
	return sum[:IndexSize:IndexSize]
}

// mac returns a fresh keyed HMAC for field.
func (ix *Indexer) mac(field string) hash.Hash {
	ix.mu.RLock()
	fm := ix.fields[field]
	ix.mu.RUnlock()
	if fm == nil {
		fm = ix.derive(field)
	}
	if c, ok := fm.base.(hash.Cloner); ok {
		if h, err := c.Clone(); err == nil {
			return h
		}
	}
	// Clone is supported by every standard library hash unless an old FIPS
	// module is selected; then build the state again.
	return hmac.New(sha256.New, fm.key)
}

func (ix *Indexer) derive(field string) *fieldMAC {
	key, err := hkdf.Key(sha256.New, ix.root, nil, "custos blind index v1|"+field, KeySize)
	if err != nil {
		// hkdf.Key fails only for an output longer than 255 hashes, or a
		// secret too short for FIPS mode; a 32-byte root and a 32-byte
		// output are neither.
		panic("keys: deriving blind index key: " + err.Error())
	}
	base := hmac.New(sha256.New, key)
	// Reset makes crypto/hmac precompute the inner and outer padded-key
	// states, which every clone then starts from.
	base.Reset()
	fm := &fieldMAC{key: key, base: base}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if prev := ix.fields[field]; prev != nil {
		zero(key) // another goroutine won the race; use its state
		return prev
	}
	if len(ix.fields) < maxCachedFields {
		ix.fields[field] = fm
	}
	return fm
}

// String returns "[indexer]"; keys are never printed.
func (ix *Indexer) String() string { return "[indexer]" }

// Format prints String for every verb, so fmt never reflects into keys.
func (ix *Indexer) Format(f fmt.State, verb rune) { writeRedacted(f, ix.String()) }

// LogValue returns String for log/slog.
func (ix *Indexer) LogValue() slog.Value { return slog.StringValue(ix.String()) }
