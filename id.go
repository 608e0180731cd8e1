package custos

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix + "_" + 26 base32 characters (128 bits): the
// creation time in whole seconds (32 bits, big-endian) followed by 96
// random bits. The random part keeps ids impossible to enumerate or guess;
// the time prefix makes ids created close together sort close together,
// so inserting a new subject, its data key, lookup owners and audit rows
// touches the right edge of each index instead of a random page of it
// (with 128 random bits a create dirtied about seven more random B-tree
// pages, each written to the WAL at commit; BENCHMARKS.md). An id thus
// tells its holder when the object was created, to the second, which the
// object's created_at says anyway.
func NewID(prefix string) string {
	return newIDAt(prefix, time.Now())
}

func newIDAt(prefix string, t time.Time) string {
	b := make([]byte, 16)
	binary.BigEndian.PutUint32(b, uint32(t.Unix()))
	if _, err := rand.Read(b[4:]); err != nil {
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
