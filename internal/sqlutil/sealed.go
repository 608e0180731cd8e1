// Package sqlutil holds the few helpers the SQL store adapters share: the
// encoding of a subject's sealed fields and the time representation.
package sqlutil

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"custos"
)

// sealedVersion is the first byte of every encoded sealed map, so the format
// can change later without guessing what an old row holds.
const sealedVersion = 1

// ErrSealedFormat is returned by DecodeSealed for bytes it cannot decode.
var ErrSealedFormat = errors.New("sqlutil: malformed sealed map")

// EncodeSealed encodes a subject's sealed fields (field name → ciphertext) as
//
//	0x01 uvarint(n) n × (uvarint(len(name)) name uvarint(len(value)) value)
//
// with names in sorted order, so equal maps encode to equal bytes. All of a
// subject's sealed fields live in one row (STYLE §7); each ciphertext still
// binds subject, field and key version through its associated data. A nil or
// empty value encodes like an empty one.
func EncodeSealed(m map[string][]byte) []byte {
	size := 1 + binary.MaxVarintLen64
	for k, v := range m {
		size += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, size)
	b = append(b, sealedVersion)
	b = binary.AppendUvarint(b, uint64(len(m)))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(m[k])))
		b = append(b, m[k]...)
	}
	return b
}

// DecodeSealed decodes the output of EncodeSealed. It returns a non-nil map
// whose values are fresh copies (an empty value decodes as a non-nil empty
// slice) and ErrSealedFormat for truncated input, trailing bytes, an unknown
// version or a repeated or unsorted name. It never panics.
func DecodeSealed(b []byte) (map[string][]byte, error) {
	if len(b) == 0 || b[0] != sealedVersion {
		return nil, fmt.Errorf("%w: unknown version", ErrSealedFormat)
	}
	b = b[1:]
	n, b, err := uvarint(b)
	if err != nil {
		return nil, err
	}
	// Every entry takes at least two bytes, which bounds n before allocating.
	if n > uint64(len(b))/2 {
		return nil, fmt.Errorf("%w: bad entry count", ErrSealedFormat)
	}
	m := make(map[string][]byte, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		var name, value []byte
		if name, b, err = chunk(b); err != nil {
			return nil, err
		}
		if value, b, err = chunk(b); err != nil {
			return nil, err
		}
		if i > 0 && string(name) <= prev {
			return nil, fmt.Errorf("%w: names not sorted", ErrSealedFormat)
		}
		prev = string(name)
		m[prev] = append([]byte{}, value...)
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes", ErrSealedFormat)
	}
	return m, nil
}

func uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	// Only the shortest encoding is accepted, so each map has one encoding.
	if n <= 0 || n != len(binary.AppendUvarint(nil, v)) {
		return 0, nil, fmt.Errorf("%w: bad length", ErrSealedFormat)
	}
	return v, b[n:], nil
}

func chunk(b []byte) (c, rest []byte, err error) {
	n, b, err := uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: truncated", ErrSealedFormat)
	}
	return b[:n], b[n:], nil
}

// Micros converts t to the stored form: Unix microseconds. Anything finer
// than a microsecond is dropped (toward the past), so round trips are exact
// for times already truncated to the microsecond.
func Micros(t time.Time) int64 { return t.UnixMicro() }

// Time converts stored Unix microseconds back to a UTC time. The zero
// time.Time round-trips to the zero time.Time.
func Time(us int64) time.Time { return time.UnixMicro(us).UTC() }

// Subject builds a subject from its stored row: the sealed column
// (EncodeSealed) and the times in Unix microseconds, restricted 0 meaning
// not restricted.
func Subject(id custos.SubjectID, sealed []byte, created, updated, restricted int64) (*custos.StoredSubject, error) {
	m, err := DecodeSealed(sealed)
	if err != nil {
		return nil, err
	}
	return &custos.StoredSubject{ID: id, Sealed: m, CreatedAt: Time(created), UpdatedAt: Time(updated),
		RestrictedUntil: OptTime(restricted)}, nil
}
