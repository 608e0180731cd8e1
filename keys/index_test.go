package keys_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"custos/keys"
)

func TestIndex(t *testing.T) {
	k := mustKeyring(t)
	ix := k.Indexer()
	a := ix.Index("mobile", "13800138000")
	if len(a) != keys.IndexSize {
		t.Fatalf("got %d bytes, want %d", len(a), keys.IndexSize)
	}
	tests := []struct {
		name        string
		ix          *keys.Indexer
		field, val  string
		wantEqualTo bool
	}{
		{name: "same field and value", ix: ix, field: "mobile", val: "13800138000", wantEqualTo: true},
		{name: "another value", ix: ix, field: "mobile", val: "13800138001"},
		{name: "another field", ix: ix, field: "emergency_mobile", val: "13800138000"},
		{name: "field prefix", ix: ix, field: "mobil", val: "e13800138000"},
		{name: "another keyring", ix: mustKeyring(t).Indexer(), field: "mobile", val: "13800138000"},
		{name: "unnormalised value", ix: ix, field: "mobile", val: "138 0013 8000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.ix.Index(tt.field, tt.val)
			if eq := bytes.Equal(got, a); eq != tt.wantEqualTo {
				t.Fatalf("got equal=%v, want %v", eq, tt.wantEqualTo)
			}
		})
	}
}

func TestIndexStableAcrossKeyChanges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	k1, err := keys.CreateKeyringFile(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want := k1.Indexer().Index("email", "alice@example.com")

	k2, err := k1.Rotate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k3, err := k2.Retire(1)
	if err != nil {
		t.Fatal(err)
	}
	if err := k3.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := keys.LoadKeyringFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]*keys.Keyring{"rotated": k2, "retired": k3, "saved and loaded": loaded} {
		if got := k.Indexer().Index("email", "alice@example.com"); !bytes.Equal(got, want) {
			t.Fatalf("%s: got index %x, want %x", name, got, want)
		}
	}
}

func TestIndexConcurrent(t *testing.T) {
	ix := mustKeyring(t).Indexer()
	fields := []string{"mobile", "email", "id_number", "member_no"}
	want := make(map[string][]byte)
	for _, f := range fields {
		want[f] = ix.Index(f, "v")
	}
	fresh := mustKeyring(t).Indexer() // cold cache: goroutines race to derive
	wantFresh := make(map[string][]byte)
	for _, f := range fields {
		wantFresh[f] = mustKeyringIndexCopy(t, fresh, f)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				f := fields[(g+i)%len(fields)]
				if got := ix.Index(f, "v"); !bytes.Equal(got, want[f]) {
					errs <- fmt.Errorf("field %s: got %x, want %x", f, got, want[f])
					return
				}
				// Fresh field names are derived under the race too.
				ix.Index(fmt.Sprintf("extra_%d", i%32), "v")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, f := range fields {
		if got := fresh.Index(f, "v"); !bytes.Equal(got, wantFresh[f]) {
			t.Fatalf("field %s changed between calls", f)
		}
	}
}

func mustKeyringIndexCopy(t *testing.T, ix *keys.Indexer, field string) []byte {
	t.Helper()
	return bytes.Clone(ix.Index(field, "v"))
}

func TestIndexManyFields(t *testing.T) {
	// Past the cache bound, results stay correct and deterministic.
	ix := mustKeyring(t).Indexer()
	first := make([][]byte, 0, 1100)
	for i := range 1100 {
		first = append(first, ix.Index(fmt.Sprintf("f%d", i), "v"))
	}
	for i := range 1100 {
		if got := ix.Index(fmt.Sprintf("f%d", i), "v"); !bytes.Equal(got, first[i]) {
			t.Fatalf("field f%d: index changed", i)
		}
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	ix := mustKeyring(b).Indexer()
	ix.Index("mobile", "13800138000")
	b.ReportAllocs()
	for b.Loop() {
		ix.Index("mobile", "13800138000")
	}
}
