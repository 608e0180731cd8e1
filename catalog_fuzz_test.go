package custos_test

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"custos"
)

// catalogNames returns the sorted field, purpose and role names of c.
func catalogNames(c *custos.Catalog) (fields, purposes, roles []string) {
	for _, f := range c.Fields {
		fields = append(fields, f.Name)
	}
	for _, p := range c.Purposes {
		purposes = append(purposes, p.Name)
	}
	for _, r := range c.Roles {
		roles = append(roles, r.Name)
	}
	slices.Sort(fields)
	slices.Sort(purposes)
	slices.Sort(roles)
	return fields, purposes, roles
}

func FuzzParseCatalog(f *testing.F) {
	def, err := os.ReadFile("catalog_default.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Add(def[:len(def)/2])
	f.Add(def[:len(def)-1])
	f.Add(bytes.Replace(def, []byte(`"name"`), []byte(`"nmae"`), 1))
	f.Add(bytes.Replace(def, []byte(`"fields"`), []byte(`"fields2"`), 1))
	f.Add(bytes.ReplaceAll(def, []byte(`"lookup": true`), []byte(`"lookup": false`)))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"fields":[{"name":"a","validator":"text","mask":"none"}],"purposes":[{"name":"p","fields":["a","a"]}],"roles":[{"name":"r","purposes":["p","nope"]}]}`))
	f.Add([]byte(`{"fields":[{"name":""},{"name":""}]}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[`))
	f.Add([]byte("{\"version\":\"\xff\"}"))

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := custos.ParseCatalog(bytes.NewReader(data))
		if err != nil {
			if c != nil {
				t.Fatalf("ParseCatalog returned a catalog with error %v", err)
			}
			return
		}
		if c == nil {
			t.Fatal("ParseCatalog returned nil catalog and nil error")
		}
		for _, fd := range c.Fields {
			if c.Field(fd.Name) == nil {
				t.Fatalf("field %q not indexed", fd.Name)
			}
		}
		for _, p := range c.Purposes {
			if c.Purpose(p.Name) == nil {
				t.Fatalf("purpose %q not indexed", p.Name)
			}
		}
		for _, r := range c.Roles {
			if c.Role(r.Name) == nil {
				t.Fatalf("role %q not indexed", r.Name)
			}
		}
		_ = c.LookupFields()
		_ = c.String()
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("marshal a parsed catalog: %v", err)
		}
		c2, err := custos.ParseCatalog(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("re-parse a marshalled catalog: %v\njson: %s", err, b)
		}
		f1, p1, r1 := catalogNames(c)
		f2, p2, r2 := catalogNames(c2)
		if !slices.Equal(f1, f2) || !slices.Equal(p1, p2) || !slices.Equal(r1, r2) {
			t.Fatalf("round trip changed names:\nfields %q → %q\npurposes %q → %q\nroles %q → %q", f1, f2, p1, p2, r1, r2)
		}
	})
}
