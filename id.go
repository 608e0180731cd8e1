package custos

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// IDAlphabet is the 32 characters of ids, in ASCII order, so that ids
// sort as their bytes do: by creation time (NewID). Ids made before the
// alphabet was put in this order (it began with the letters) use the same
// characters and stay valid; they just no longer sort by time.
const IDAlphabet = "234567abcdefghijklmnopqrstuvwxyz"

var idEncoding = base32.NewEncoding(IDAlphabet).WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 26 base32 characters (128 bits): the
// creation time — whole seconds (32 bits, big-endian) then the fraction of
// the second in units of 1/65536 s, about 15 µs (16 bits) — followed by 80
// random bits. The random part keeps ids impossible to enumerate or guess
// (UUIDv7 keeps 74). The time prefix makes ids created one after another
// sort one after another, so inserting a new subject, its data key, lookup
// owners and audit rows touches the right edge of each index instead of a
// random page of it. With 128 random bits a create dirtied about seven more
// random B-tree pages; with whole seconds only, ids of the same second
// still landed on any of that second's pages, which cost a create about
// four of its ten WAL pages (BENCHMARKS.md, sixth session). An id thus
// tells its holder when the object was created, to about 15 µs, which the
// object's created_at says to the microsecond anyway.
func NewID(prefix string) string {
	return newIDAt(prefix, time.Now())
}

func newIDAt(prefix string, t time.Time) string {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, uint32(t.Unix()))
	binary.BigEndian.PutUint16(b[4:], uint16(uint64(t.Nanosecond())<<16/1e9))
	if _, err := rand.Read(b[6:]); err != nil {
		panic("custos: crypto/rand failed: " + err.Error())
	}
	return prefix + "_" + idEncoding.EncodeToString(b)
}

// ValidID reports whether s looks like an id with the prefix.
func ValidID(prefix, s string) bool {
	rest, ok := strings.CutPrefix(s, prefix+"_")
	if !ok || len(rest) != 26 {
		return false
	}
	_, err := idEncoding.DecodeString(rest)
	return err == nil
}
