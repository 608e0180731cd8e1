package core

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"custos"
)

// A subject's provenance list is sealed under the pseudo-field
// provenanceField. It was first stored as JSON (an array, so its first
// byte is '['); it is now stored in a compact binary form that starts with
// provenanceV1, because every read opens it and encoding/json spent about
// 11 µs a read on it, 3.5 % of a read's CPU (BENCHMARKS.md, tenth session).
// decodeProvenance reads both, so stores written before keep working and
// are rewritten entry by entry as subjects are corrected.
//
// The binary form:
//
//	0x01  uvarint(entries)
//	per entry: uvarint(fields) then each field name,
//	           collector, channel, location, source, plan,
//	           varint(unix seconds) uvarint(nanoseconds) varint(zone offset seconds)
//
// where each string is uvarint(length) and its bytes. A time decodes as
// encoding/json's RFC 3339 round trip would: UTC when its offset is zero, a
// fixed zone of that offset otherwise.
const provenanceV1 = 0x01

// encodeProvenance returns prev with an entry for fields appended, in the
// binary form.
func encodeProvenance(prev []provenanceEntry, fields []string, p custos.Provenance) string {
	entries := append(prev, provenanceEntry{Fields: fields, Provenance: p})
	b := []byte{provenanceV1}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Fields)))
		for _, f := range e.Fields {
			str(f)
		}
		pv := e.Provenance
		str(pv.Collector)
		str(pv.Channel)
		str(pv.Location)
		str(pv.Source)
		str(pv.Plan)
		_, off := pv.Time.Zone()
		b = binary.AppendVarint(b, pv.Time.Unix())
		b = binary.AppendUvarint(b, uint64(pv.Time.Nanosecond()))
		b = binary.AppendVarint(b, int64(off))
	}
	return string(b)
}

var errProvenance = errors.New("provenance: malformed sealed list")

// decodeProvenance reads a sealed provenance list in either form. The
// field names of cat's fields are cat's own strings rather than new ones:
// every read decodes the list, and its names were most of what that
// allocated (BENCHMARKS.md, sixtieth session). cat may be nil.
func decodeProvenance(pt []byte, cat *custos.Catalog) ([]provenanceEntry, error) {
	if len(pt) == 0 || pt[0] != provenanceV1 {
		var entries []provenanceEntry
		if err := json.Unmarshal(pt, &entries); err != nil {
			return nil, err
		}
		return entries, nil
	}
	d := provDecoder{b: pt[1:], cat: cat}
	n := d.count()
	entries := make([]provenanceEntry, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		var e provenanceEntry
		nf := d.count()
		e.Fields = make([]string, 0, nf)
		for j := 0; j < nf && d.err == nil; j++ {
			e.Fields = append(e.Fields, d.field())
		}
		pv := &e.Provenance
		pv.Collector, pv.Channel, pv.Location, pv.Source, pv.Plan = d.str(), d.str(), d.str(), d.str(), d.str()
		sec, nsec, off := d.varint(), d.uvarint(), d.varint()
		if nsec >= 1e9 || off < -24*3600 || off > 24*3600 {
			d.err = errProvenance
		}
		if d.err != nil {
			break
		}
		loc := time.UTC
		if off != 0 {
			loc = time.FixedZone("", int(off))
		}
		pv.Time = time.Unix(sec, int64(nsec)).In(loc)
		entries = append(entries, e)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errProvenance
	}
	if d.err != nil {
		return nil, d.err
	}
	return entries, nil
}

// provDecoder reads the binary form; the first error sticks and every
// later read returns a zero value.
type provDecoder struct {
	b   []byte
	cat *custos.Catalog // field names it knows are its own strings; may be nil
	err error
}

func (d *provDecoder) uvarint() uint64 { return next(d, binary.Uvarint) }

func (d *provDecoder) varint() int64 { return next(d, binary.Varint) }

// next reads one varint with read (binary.Uvarint or binary.Varint).
func next[T any](d *provDecoder, read func([]byte) (T, int)) T {
	var zero T
	if d.err != nil {
		return zero
	}
	v, n := read(d.b)
	if n <= 0 {
		d.err = errProvenance
		return zero
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each item takes at
// least a byte), so a corrupt count cannot ask for a huge allocation.
func (d *provDecoder) count() int {
	v := d.uvarint()
	if v > uint64(len(d.b)) {
		d.err = errProvenance
		return 0
	}
	return int(v)
}

func (d *provDecoder) str() string {
	b := d.bytes()
	if b == nil {
		return ""
	}
	return string(b)
}

// field reads a field name: the catalog's string when it has the field.
func (d *provDecoder) field() string {
	b := d.bytes()
	if name, ok := d.cat.FieldName(b); ok {
		return name
	}
	return string(b)
}

// bytes reads a string's bytes, nil after an error.
func (d *provDecoder) bytes() []byte {
	n := d.count()
	if d.err != nil {
		return nil
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b
}
