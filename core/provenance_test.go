package core

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"
	"unsafe"

	"custos"
)

func provenanceSamples() []provenanceEntry {
	cst := time.FixedZone("CST", 8*3600)
	return []provenanceEntry{
		{Fields: []string{"mobile", "name"}, Provenance: custos.Provenance{Collector: "prn_01", Channel: "app", Source: "the customer",
			Time: time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.UTC)}},
		{Fields: []string{"address"}, Provenance: custos.Provenance{Collector: "门店 7", Channel: "pos", Location: "上海 静安", Source: "the customer",
			Plan: "pln_02", Time: time.Date(2026, 12, 1, 8, 0, 0, 0, cst)}},
		{Fields: nil, Provenance: custos.Provenance{Time: time.Date(1969, 7, 20, 20, 17, 40, 5, time.FixedZone("", -3*3600-1800))}},
	}
}

// The binary form decodes to exactly what the JSON form did (C6: the
// provenance a read shows must not change with the storage format).
func TestProvenanceBinaryMatchesJSON(t *testing.T) {
	all := provenanceSamples()
	enc := encodeProvenance(all[:2:2], all[2].Fields, all[2].Provenance)
	if enc[0] != provenanceV1 {
		t.Fatalf("first byte %#x, want %#x", enc[0], provenanceV1)
	}
	got, err := decodeProvenance([]byte(enc), nil)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(all)
	if err != nil {
		t.Fatal(err)
	}
	var want []provenanceEntry
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	want[2].Fields = []string{} // binary decodes an empty list as empty, JSON null as nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("binary round trip\n got %+v\nwant %+v", got, want)
	}
	for i := range got {
		if !got[i].Provenance.Time.Equal(all[i].Provenance.Time) {
			t.Errorf("entry %d: time %v, want %v", i, got[i].Provenance.Time, all[i].Provenance.Time)
		}
	}
	// Stores written before the binary form hold JSON; it still reads.
	legacy, err := decodeProvenance(js, nil)
	if err != nil {
		t.Fatal(err)
	}
	want[2].Fields = nil
	if !reflect.DeepEqual(legacy, want) {
		t.Fatalf("legacy JSON\n got %+v\nwant %+v", legacy, want)
	}
}

// Every truncation of a valid list, and a trailing byte, is an error,
// never a panic or a shorter list.
func TestProvenanceMalformed(t *testing.T) {
	all := provenanceSamples()
	enc := encodeProvenance(all[:2:2], all[2].Fields, all[2].Provenance)
	for n := 1; n < len(enc); n++ {
		if got, err := decodeProvenance([]byte(enc[:n]), nil); err == nil {
			t.Fatalf("%d of %d bytes decoded to %d entries, want an error", n, len(enc), len(got))
		}
	}
	if _, err := decodeProvenance([]byte(enc+"x"), nil); err == nil {
		t.Fatal("a trailing byte was accepted")
	}
	huge := []byte{provenanceV1, 0xff, 0xff, 0xff, 0xff, 0x0f}
	if _, err := decodeProvenance(huge, nil); err == nil {
		t.Fatal("a count larger than the input was accepted")
	}
}

func FuzzDecodeProvenance(f *testing.F) {
	all := provenanceSamples()
	enc := encodeProvenance(all[:2:2], all[2].Fields, all[2].Provenance)
	f.Add([]byte(enc))
	f.Add([]byte{provenanceV1, 0})
	f.Add([]byte(`[{"fields":["mobile"],"provenance":{"time":"2026-11-25T09:30:00Z"}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeProvenance(b, nil)
		if err != nil || len(b) == 0 || b[0] != provenanceV1 {
			return
		}
		// What decodes survives another round trip unchanged.
		if len(entries) == 0 {
			return
		}
		last := entries[len(entries)-1]
		again := encodeProvenance(slices.Clone(entries[:len(entries)-1]), last.Fields, last.Provenance)
		back, err := decodeProvenance([]byte(again), nil)
		if err != nil || !reflect.DeepEqual(back, entries) {
			t.Fatalf("%x decoded to %+v, which re-encoded decodes to %+v (%v)", b, entries, back, err)
		}
	})
}

func BenchmarkDecodeProvenance(b *testing.B) {
	all := provenanceSamples()
	enc := encodeProvenance(all[:1:1], all[1].Fields, all[1].Provenance)
	js, _ := json.Marshal(all[:2])
	b.Run("binary", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeProvenance([]byte(enc), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeProvenance(js, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Field names the catalog knows decode as the catalog's own strings, so a
// read allocates none of them; a name it does not know still decodes, as
// a string of its own. Everything else decodes as without the catalog.
func TestProvenanceCatalogNames(t *testing.T) {
	cat := custos.DefaultCatalog()
	all := provenanceSamples()
	all[0].Fields = append(all[0].Fields, "no_such_field")
	enc := []byte(encodeProvenance(all[:2:2], all[2].Fields, all[2].Provenance))
	plain, err := decodeProvenance(enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeProvenance(enc, cat)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, plain) {
		t.Fatalf("with the catalog\n got %+v\nwant %+v", got, plain)
	}
	known := 0
	for _, e := range got {
		for _, f := range e.Fields {
			def := cat.Field(f)
			if def == nil {
				continue
			}
			known++
			if unsafe.StringData(f) != unsafe.StringData(def.Name) {
				t.Errorf("field %s: a string of its own, want the catalog's", f)
			}
		}
	}
	if known != 3 {
		t.Fatalf("%d known field names in the samples, want 3", known)
	}
	// Each known name was an allocation of its own without the catalog.
	allocs := func(cat *custos.Catalog) float64 {
		return testing.AllocsPerRun(100, func() {
			if _, err := decodeProvenance(enc, cat); err != nil {
				t.Fatal(err)
			}
		})
	}
	if with, without := allocs(cat), allocs(nil); with != without-float64(known) {
		t.Errorf("%.0f allocations with the catalog, %.0f without: want %d fewer", with, without, known)
	}
}
