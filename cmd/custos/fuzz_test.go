package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"custos"
)

// passwordValue finds the values of password= parameters in a config file.
var passwordValue = regexp.MustCompile(`(?i)password=([^&"\\\s]+)`)

func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"addr":"127.0.0.1:9000","log_format":"json","log_level":"debug"}`))
	f.Add([]byte(`{"store":"mysql://u:secretpw@h/db?password=secretpw"}`))
	f.Add([]byte(`{"store":"mysql://h/db?sslmode=disable&password=secretpw&x=1"}`))
	f.Add([]byte(`{"store":"mysql://h/db?PASSWORD=secretpw"}`))
	f.Add([]byte(`{"store":"postgres://u:secretpw@h/db?password=secretpw","max_conns":-1}`))
	f.Add([]byte(`{"store":"sqlite:/tmp/x.db","migrate":true,"max_conns":4}`))
	f.Add([]byte(`{"addr":"nocolon"}`))
	f.Add([]byte(`{"log_level":"trace"}`))
	f.Add([]byte(`{"unknown":1}`))
	f.Add([]byte(`{"max_conns":"x"}`))
	f.Add([]byte(`{"store":"x?password=secretpw`))
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"store":"host=h user=u password=secretpw dbname=x"}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		load := func(data []byte) (Config, error) {
			if err := os.WriteFile(filepath.Join(dir, "custos.json"), data, 0o600); err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			cf := bindFlags(fs)
			getenv := func(k string) string {
				if k == "CUSTOS_DATA" {
					return dir
				}
				return ""
			}
			return cf.load(getenv)
		}
		c, err := load(data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("load succeeded but Validate fails: %v", verr)
			}
			if c.Data != dir {
				t.Fatalf("data = %q, want %q from CUSTOS_DATA", c.Data, dir)
			}
			return
		}
		msg := err.Error()
		for _, m := range passwordValue.FindAllSubmatch(data, -1) {
			secret := string(m[1])
			if len(secret) < 4 {
				continue // too short to tell from other text
			}
			if rest := strings.Replace(string(data), string(m[0]), "", 1); strings.Contains(rest, secret) {
				continue // the same text stands elsewhere in the input, not as a password
			}
			if !strings.Contains(msg, secret) {
				continue
			}
			// The value may be part of the message's own words ("s://" of
			// "postgres://"): it leaked only if the message loses it when
			// the value is masked in the input.
			masked := strings.Replace(string(m[0]), secret, strings.Repeat("#", len(secret)), 1)
			if _, merr := load([]byte(strings.Replace(string(data), string(m[0]), masked, 1))); merr != nil && strings.Contains(merr.Error(), secret) {
				continue
			}
			t.Fatalf("error leaks password value %q: %s", secret, msg)
		}
	})
}

// parseRules are the rules readRows may give a line it could not parse.
var parseRules = []string{"csv_syntax", "column_count", "json_object_of_strings"}

func FuzzReadRows(f *testing.F) {
	f.Add([]byte("name,mobile\n王小明,13900000001\n李四,13900000002\n"), true)
	// Syntax errors after the first field: one in the first field crashes
	// readRows (csv.Reader.FieldPos(0) after a ParseError), reported.
	f.Add([]byte("name,mobile\nx,\"unterminated 13900000001\nx,y\n"), true)
	f.Add([]byte("name,mobile\nx,a\"b\nc,d\n"), true)
	f.Add([]byte("name,mobile\na,b,c\nsecretvalue\n"), true)
	f.Add([]byte("\ufeffname , mobile\r\n a , b \r\n"), true)
	f.Add([]byte("name,mobile\n\"a\"\"b\",c\n\"multi\nline\",d\n"), true)
	f.Add([]byte(""), true)
	f.Add([]byte("1,2,9,9\n\"0"), true) // syntax error in a first field: no field positions
	f.Add([]byte(`{"name":"王小明","mobile":"13900000001"}`+"\n\n"+`{"name":1}`+"\nnot json secretvalue\n"), false)
	f.Add([]byte("  \n{}\n[]\nnull\n"), false)
	f.Add([]byte(`{"a":"b"} {"c":"d"}`), false)

	f.Fuzz(func(t *testing.T, data []byte, csv bool) {
		path := filepath.Join(t.TempDir(), "rows")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		format := "jsonl"
		if csv {
			format = "csv"
		}
		prov := custos.Provenance{Collector: "fuzz", Channel: "test", Source: "customer"}
		rows, err := readRows(path, format, prov)
		if err != nil {
			t.Fatal(err)
		}
		last := 0
		for row, err := range rows {
			if err != nil {
				continue // a read error ends the iteration
			}
			if row.Line < 1 {
				t.Fatalf("row with line %d", row.Line)
			}
			if row.Line <= last {
				t.Fatalf("line %d after line %d", row.Line, last)
			}
			last = row.Line
			if row.parseErr == nil {
				if row.Subject.Provenance != prov {
					t.Fatalf("line %d: provenance %+v", row.Line, row.Subject.Provenance)
				}
				continue
			}
			rule := row.parseErr.Error()
			if !slices.Contains(parseRules, rule) {
				t.Fatalf("line %d: parse error %q is not a known rule", row.Line, rule)
			}
			if len(row.Subject.Fields) != 0 || row.ParseError != "" && row.ParseError != rule {
				t.Fatalf("line %d: parse error row carries data: %+v", row.Line, row.ImportInput)
			}
		}
	})
}
