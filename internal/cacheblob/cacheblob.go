// Package cacheblob encodes a read-cache entry (a customer's subject row,
// data key and consent history) as one pointer-free byte slice, for the
// read caches of both stores (sqlite/readcache.go, postgres/readcache.go).
package cacheblob

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"custos"
)

// A read-cache entry is kept as one byte slice, encoded here, rather than
// as the StoredSubject, DataKey and StoredConsents it holds. Those are
// 30–40 objects and about 80 pointers a customer, and the garbage
// collector traced all of them in every cycle: with 10,000 customers
// cached they were about 90 % of the live heap, and marking them about a
// tenth of a read's CPU at c=64 (BENCHMARKS.md, twenty-ninth session). A
// byte slice holds no pointers, so the collector marks it without looking
// inside. A hit decodes what it needs, which costs about what copying the
// objects did.
//
// Layout: two little-endian uint32 offsets (of the key section and of the
// history section), then
//
//	subject: created, updated, restricted (times), uvarint n, n × (name, value)
//	key:     0 (none) | 1, version, kek version, wrapped (bytes), created
//	history: uvarint n, n × uvarint(len(record)) record
//	record:  purpose, seq, id, scope, action, notice version, at,
//	         channel, initiated by, by guardian, actor, sealed (bytes)
//
// Strings and values are uvarint length-prefixed; "bytes" is 0 for nil,
// else 1 + len, so nil and empty stay apart; a time is 0 for the zero time,
// else 1, varint seconds, uvarint nanoseconds, decoded in UTC; integers
// are varints. The subject's id, the key's and each consent's subject id
// are the entry's key and are not stored again. Only this process reads
// what it wrote, so the format has no version.

// Encode encodes an entry for st with key (nil: none) and history.
func Encode(st *custos.StoredSubject, key *custos.DataKey, history []*custos.StoredConsent) []byte {
	sp := entryScratch.Get().(*[]byte)
	defer entryScratch.Put(sp)
	b := append((*sp)[:0], 0, 0, 0, 0, 0, 0, 0, 0) // the offsets, below
	b = appendTime(b, st.CreatedAt)
	b = appendTime(b, st.UpdatedAt)
	b = appendTime(b, st.RestrictedUntil)
	b = binary.AppendUvarint(b, uint64(len(st.Sealed)))
	for k, v := range st.Sealed {
		b = appendString(b, k)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	if key == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.AppendVarint(b, int64(key.Version))
		b = binary.AppendVarint(b, int64(key.KEKVersion))
		b = appendBytes(b, key.Wrapped)
		b = appendTime(b, key.CreatedAt)
	}
	binary.LittleEndian.PutUint32(b[4:], uint32(len(b)))
	b = binary.AppendUvarint(b, uint64(len(history)))
	var rec []byte
	for _, c := range history {
		rec = appendString(rec[:0], c.Purpose)
		rec = binary.AppendVarint(rec, c.Seq)
		rec = appendString(rec, c.ID)
		rec = appendString(rec, c.Scope)
		rec = appendString(rec, c.Action)
		rec = binary.AppendVarint(rec, int64(c.NoticeVersion))
		rec = appendTime(rec, c.At)
		rec = appendString(rec, c.Channel)
		rec = appendString(rec, c.InitiatedBy)
		if c.ByGuardian {
			rec = append(rec, 1)
		} else {
			rec = append(rec, 0)
		}
		rec = appendString(rec, string(c.ActorID))
		rec = appendBytes(rec, c.Sealed)
		b = binary.AppendUvarint(b, uint64(len(rec)))
		b = append(b, rec...)
	}
	// An entry lives long: it is made at its size, from the scratch. The
	// scratch is cleared before it goes back to the pool, so that no
	// wrapped key or ciphertext stays reachable there after its entry is
	// dropped (an erasure's shredded key must not outlive it in memory
	// the cache keeps: docs/security.md).
	out := make([]byte, len(b))
	copy(out, b)
	clear(b)
	*sp = b[:0]
	return out
}

// entryScratch holds the buffers Encode writes an entry into before
// it copies it out at its size.
var entryScratch = sync.Pool{New: func() any { return new([]byte) }}

// Subject decodes the subject of entry b, whose key is id.
func Subject(b []byte, id custos.SubjectID, in *Interner) *custos.StoredSubject {
	d := decoder{b: b[8:binary.LittleEndian.Uint32(b[0:])]}
	st := &custos.StoredSubject{ID: id, CreatedAt: d.time(), UpdatedAt: d.time(), RestrictedUntil: d.time()}
	n := int(d.uvarint())
	st.Sealed = make(map[string][]byte, n)
	// One allocation for every value, as the database read makes one per
	// row: the subject's section less its names and lengths bounds it.
	buf := make([]byte, 0, len(d.b))
	for range n {
		name := in.get(d.chunk())
		v := d.chunk()
		buf = append(buf, v...)
		st.Sealed[name] = buf[len(buf)-len(v) : len(buf) : len(buf)]
	}
	return st
}

// Key decodes the data key of entry b, whose key is id; nil when it
// has none.
func Key(b []byte, id custos.SubjectID) *custos.DataKey {
	d := decoder{b: b[binary.LittleEndian.Uint32(b[0:]):binary.LittleEndian.Uint32(b[4:])]}
	if d.byte() == 0 {
		return nil
	}
	return &custos.DataKey{SubjectID: id, Version: int(d.varint()), KEKVersion: int(d.varint()),
		Wrapped: d.bytes(), CreatedAt: d.time()}
}

// Consents decodes the consents of entry b, whose key is id, for
// purposes, in recorded order. A consent of another purpose is skipped
// before anything is made of it.
func Consents(b []byte, id custos.SubjectID, purposes []string, in *Interner) []*custos.StoredConsent {
	d := decoder{b: b[binary.LittleEndian.Uint32(b[4:]):]}
	out := []*custos.StoredConsent{}
	for n := d.uvarint(); n > 0; n-- {
		r := decoder{b: d.chunk()}
		p := r.chunk()
		i := slices.IndexFunc(purposes, func(s string) bool { return s == string(p) })
		if i < 0 {
			continue // decoded no further, nothing allocated
		}
		c := &custos.StoredConsent{Purpose: purposes[i], SubjectID: id}
		c.Seq = r.varint()
		c.ID = string(r.chunk())
		c.Scope = in.get(r.chunk())
		c.Action = in.get(r.chunk())
		c.NoticeVersion = int(r.varint())
		c.At = r.time()
		c.Channel = in.get(r.chunk())
		c.InitiatedBy = in.get(r.chunk())
		c.ByGuardian = r.byte() == 1
		c.ActorID = custos.PrincipalID(r.chunk())
		c.Sealed = r.bytes()
		out = append(out, c)
	}
	return out
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

// decoder reads what Encode wrote. The bytes never leave this
// process's memory, so a malformed entry is a bug: reading past the end
// panics rather than returning an error nobody could act on.
type decoder struct{ b []byte }

func (d *decoder) byte() byte {
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		panic("cacheblob: malformed read-cache entry")
	}
	d.b = d.b[n:]
	return v
}

// varint reads what binary.AppendVarint wrote: a uvarint of the value
// zig-zag encoded, as binary.Varint decodes it.
func (d *decoder) varint() int64 {
	u := d.uvarint()
	v := int64(u >> 1)
	if u&1 != 0 {
		v = ^v
	}
	return v
}

// chunk returns the next length-prefixed bytes, sharing d's memory.
func (d *decoder) chunk() []byte {
	n := d.uvarint()
	c := d.b[:n:n]
	d.b = d.b[n:]
	return c
}

// bytes returns a copy of the next appendBytes value.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n == 0 {
		return nil
	}
	c := make([]byte, n-1)
	copy(c, d.b)
	d.b = d.b[n-1:]
	return c
}

func (d *decoder) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	sec := d.varint()
	return time.Unix(sec, int64(d.uvarint())).UTC()
}

// Interner hands out one string per distinct short value the entries
// repeat (field names, scopes, actions, channels), so that a hit does not
// allocate them again. Lookups read an immutable map; a new value
// replaces it with a copy, which happens a few dozen times in a process's
// life. It keeps at most MaxInterned values; beyond that a value is
// allocated each time.
type Interner struct {
	mu sync.Mutex // held to replace m
	m  atomic.Pointer[map[string]string]
}

const MaxInterned = 1024

func (in *Interner) get(b []byte) string {
	if m := in.m.Load(); m != nil {
		if s, ok := (*m)[string(b)]; ok {
			return s
		}
	}
	s := string(b)
	in.mu.Lock()
	defer in.mu.Unlock()
	old := in.m.Load()
	if old == nil {
		m := map[string]string{s: s}
		in.m.Store(&m)
		return s
	}
	if v, ok := (*old)[s]; ok {
		return v
	}
	if len(*old) < MaxInterned {
		m := maps.Clone(*old)
		m[s] = s
		in.m.Store(&m)
	}
	return s
}
