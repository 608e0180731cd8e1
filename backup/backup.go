// Package backup writes and reads custos backup files (S7): a logical dump
// of every table of a store, taken in one read snapshot of a live store,
// encrypted and signed.
//
// File layout:
//
//	"CUSTOSBK"                      8 bytes of magic
//	u32 n, header JSON (n bytes)    format, id, time, store, migrations,
//	                                master key version, wrapped file key,
//	                                signing key id, chunk size
//	frames: type byte, u32 n, n bytes
//	  'C' a body chunk, 'F' the final body chunk, then
//	  'S' the trailer JSON: chunk count, SHA-256 of the frames, signature
//
// Encryption: a random 32-byte file key, wrapped by the current master key
// (keys.Keyring.Wrap, AES-256-GCM), so the file holds only ciphertext and
// wrapped keys. The chunk key is HKDF-SHA-256(file key, salt = backup id,
// info "custos backup v1 chunk key"). Each chunk of at most ChunkSize bytes
// of the dump is sealed with AES-256-GCM (keys.AEAD, random nonce) under
// associated data binding the SHA-256 of the header, the chunk's index and
// whether it is the final chunk: a chunk moved, dropped, repeated, taken
// from another backup or relabelled final fails authentication, and a file
// cut short lacks its final chunk.
//
// Signature: Ed25519 (the audit signing key, keys.Signer) over
// "custos-backup-v1\n" ‖ SHA-256(header) ‖ SHA-256(all chunk frames) ‖
// u64 chunk count, so the origin and the whole file are checked with the
// public key before a restore commits.
//
// The dump inside (plaintext only in memory): records 'T' (a table: name,
// row count, columns and portable types), 'R' (a row: tagged values), and
// one 'E' at the end (table and row totals).
package backup

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"custos"
	"custos/keys"
)

const (
	magic = "CUSTOSBK"
	// Format is the header's format name.
	Format = "custos-backup"
	// FormatVersion is the version this package writes and reads.
	FormatVersion = 1
	// ChunkSize is the plaintext size of every chunk but the last.
	ChunkSize = 1 << 16

	maxHeader     = 1 << 20
	maxChunkSize  = 1 << 24
	signPrefix    = "custos-backup-v1\n"
	chunkKeyInfo  = "custos backup v1 chunk key"
	chunkAADLabel = "custos-backup-v1|chunk|"
)

// Frame types.
const (
	frameChunk   byte = 'C'
	frameFinal   byte = 'F'
	frameTrailer byte = 'S'
)

// Dump record types.
const (
	recTable byte = 'T'
	recRow   byte = 'R'
	recEnd   byte = 'E'
)

// Value tags in a row.
const (
	tagNull  byte = 0
	tagInt   byte = 1
	tagReal  byte = 2
	tagText  byte = 3
	tagBlob  byte = 4
	tagFalse byte = 5
	tagTrue  byte = 6
)

// Header is the unencrypted, signed start of a backup file. It holds no
// personal data and no key in the clear.
type Header struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	ID            string    `json:"id"`
	Created       time.Time `json:"created"`
	Store         string    `json:"store"`
	Migrations    []string  `json:"migrations"`
	KEKVersion    int       `json:"kek_version"`
	WrappedKey    []byte    `json:"wrapped_key"`
	SignerKeyID   string    `json:"signer_key_id"`
	ChunkSize     int       `json:"chunk_size"`
}

// trailer ends the file.
type trailer struct {
	Chunks     int64  `json:"chunks"`
	BodySHA256 []byte `json:"body_sha256"`
	Signature  []byte `json:"signature"`
}

// Summary describes a backup written or read.
type Summary struct {
	Header    Header
	Tables    int
	Rows      int64
	Chunks    int64
	TableRows map[string]int64
	Order     []string // table names in file order
}

// corrupt is the error for a backup that fails a check.
func corrupt(format string, args ...any) error {
	return &custos.Error{Code: custos.EINVALID, Message: "The backup file is corrupt or was altered: " + fmt.Sprintf(format, args...) + "."}
}

// chunkKey derives the chunk sealing key from the file key.
func chunkKey(fileKey []byte, id string) (*keys.AEAD, error) {
	k, err := hkdf.Key(sha256.New, fileKey, []byte(id), chunkKeyInfo, keys.KeySize)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Could not derive the backup key.", Err: err}
	}
	defer keys.Zero(k)
	return keys.NewAEAD(k)
}

// chunkAAD binds a chunk to its file (header digest), index and finality.
func chunkAAD(headerSum []byte, index int64, final bool) []byte {
	b := make([]byte, 0, len(chunkAADLabel)+len(headerSum)+9)
	b = append(b, chunkAADLabel...)
	b = append(b, headerSum...)
	b = binary.BigEndian.AppendUint64(b, uint64(index))
	if final {
		return append(b, 1)
	}
	return append(b, 0)
}

// signedMessage is what the signature covers.
func signedMessage(headerSum, bodySum []byte, chunks int64) []byte {
	b := append([]byte(signPrefix), headerSum...)
	b = append(b, bodySum...)
	return binary.BigEndian.AppendUint64(b, uint64(chunks))
}

// appendValue encodes one row value.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, tagNull), nil
	case int64:
		return binary.AppendVarint(append(b, tagInt), x), nil
	case int:
		return binary.AppendVarint(append(b, tagInt), int64(x)), nil
	case float64:
		return binary.BigEndian.AppendUint64(append(b, tagReal), math.Float64bits(x)), nil
	case string:
		b = binary.AppendUvarint(append(b, tagText), uint64(len(x)))
		return append(b, x...), nil
	case []byte:
		b = binary.AppendUvarint(append(b, tagBlob), uint64(len(x)))
		return append(b, x...), nil
	case bool:
		if x {
			return append(b, tagTrue), nil
		}
		return append(b, tagFalse), nil
	case time.Time:
		// Stores keep times as integers; a driver handing back a time
		// value is kept exact as text.
		s := x.UTC().Format(time.RFC3339Nano)
		b = binary.AppendUvarint(append(b, tagText), uint64(len(s)))
		return append(b, s...), nil
	}
	return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("backup: unsupported value type %T", v)}
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readFull reads exactly len(b) bytes; a short read is a truncated file.
func readFull(r io.Reader, b []byte, what string) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return corrupt("the file ends inside %s (truncated)", what)
		}
		return &custos.Error{Code: custos.EINTERNAL, Message: "Could not read the backup file.", Err: err}
	}
	return nil
}

func decodeHeader(b []byte) (*Header, error) {
	var h Header
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, corrupt("the header is not valid")
	}
	if h.Format != Format {
		return nil, corrupt("the header does not name the custos backup format")
	}
	if h.FormatVersion != FormatVersion {
		return nil, custos.Errorf(custos.EINVALID, "Backup format version %d is not supported by this custos (it reads version %d).", h.FormatVersion, FormatVersion)
	}
	if h.ChunkSize < 1 || h.ChunkSize > maxChunkSize || h.ID == "" || len(h.WrappedKey) == 0 {
		return nil, corrupt("the header is not valid")
	}
	return &h, nil
}
