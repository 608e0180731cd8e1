package sqlite

import (
	"encoding/json"
	"testing"
)

// encodeList writes what json.Marshal writes, for lists it writes itself
// (catalog names) and lists it hands to json.Marshal (anything that needs
// escaping), and decodeList reads it back; a list of catalog names takes
// one allocation.
func TestEncodeList(t *testing.T) {
	for _, l := range [][]string{
		nil, {}, {""}, {"name"}, {"name", "mobile", "id_number"}, {"customer-service", "risk-control"},
		{"a b", "x.y", "~!@#$%^*()_+={}[]|:;',?/`"},
		{`quote"`}, {`back\slash`}, {"<tag>"}, {"a&b"}, {"tab\t"}, {"nl\n"}, {"\x7f"},
		{"名字"}, {"é"}, {"\u2028"}, {"\xff"}, {"plain", "<mixed>"},
	} {
		want, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		got := encodeList(l)
		if got != string(want) {
			t.Errorf("encodeList(%q) = %s; want %s", l, got, want)
			continue
		}
		back, err := decodeList(got)
		if err != nil || len(back) != len(l) {
			t.Errorf("decodeList(%s) = %q, %v", got, back, err)
		}
	}
	names := []string{"name", "mobile", "email", "address"}
	if n := testing.AllocsPerRun(100, func() { encodeList(names) }); n != 1 {
		t.Errorf("a list of catalog names: %.0f allocations, want 1", n)
	}
}
