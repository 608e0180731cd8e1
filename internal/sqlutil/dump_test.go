package sqlutil_test

import (
	"slices"
	"testing"

	"custos/internal/sqlutil"
)

func TestParentsFirst(t *testing.T) {
	for _, c := range []struct {
		name    string
		tables  []string
		parents map[string][]string
		want    []string
	}{
		{"no keys: by name", []string{"b", "a", "c"}, nil, []string{"a", "b", "c"}},
		{"custos schema", []string{"lookups", "records", "subjects", "api_keys", "principals", "meta"},
			map[string][]string{"lookups": {"subjects"}, "records": {"subjects"}, "api_keys": {"principals"}},
			[]string{"principals", "api_keys", "subjects", "lookups", "meta", "records"}},
		{"chain", []string{"c", "b", "a"}, map[string][]string{"a": {"b"}, "b": {"c"}}, []string{"c", "b", "a"}},
		{"self reference and cycle", []string{"x", "y"}, map[string][]string{"x": {"x", "y"}, "y": {"x"}}, []string{"y", "x"}},
		{"parent outside the dump", []string{"a"}, map[string][]string{"a": {"migrations"}}, []string{"a"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := sqlutil.ParentsFirst(c.tables, c.parents); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestConvertDumpValue(t *testing.T) {
	for _, c := range []struct {
		in      any
		typ     string
		want    any
		wantErr bool
	}{
		{int64(1), "bool", true, false},
		{int64(0), "bool", false, false},
		{int64(2), "bool", nil, true},
		{true, "int", int64(1), false},
		{[]byte(`["a"]`), "json", `["a"]`, false},
		{"x", "text", "x", false},
		{nil, "bool", nil, false},
	} {
		got, err := sqlutil.ConvertDumpValue(c.in, c.typ)
		if (err != nil) != c.wantErr || (!c.wantErr && got != c.want) {
			t.Errorf("ConvertDumpValue(%#v, %s) = %#v, %v; want %#v (error %v)", c.in, c.typ, got, err, c.want, c.wantErr)
		}
	}
}

func TestSkipDumpTable(t *testing.T) {
	for name, want := range map[string]bool{"migrations": true, "sqlite_sequence": true, "cache_gen": true, "subjects": false, "shred_ledger": false} {
		if got := sqlutil.SkipDumpTable(name); got != want {
			t.Errorf("SkipDumpTable(%q) = %v, want %v", name, got, want)
		}
	}
}
