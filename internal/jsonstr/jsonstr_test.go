package jsonstr

import (
	"encoding/json"
	"testing"
)

// Append writes what encoding/json writes for a string, escapes included:
// quotes and backslashes, HTML's <, > and &, control characters, invalid
// UTF-8 and the line and paragraph separators.
func TestAppend(t *testing.T) {
	for _, s := range []string{
		"", "name", "customer-service", "a b ~!@#$%^*()_+={}[]|:;',?/`", "\x7f",
		`quote"`, `back\slash`, "<tag>", "a&b", "tab\t", "nl\n", "cr\r", "\b\f", "\x00\x01\x1f",
		"名字", "é", "\u2028\u2029", "\xff", "a\xffb", "\xe4\xb8", "张三 <13800138000>",
	} {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("Append(%q) = %s, want %s", s, got[1:], want)
		}
	}
}

func FuzzAppend(f *testing.F) {
	f.Add("name")
	f.Add("<\u2028\xff\"")
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := Append(nil, s); string(got) != string(want) {
			t.Fatalf("Append(%q) = %s, want %s", s, got, want)
		}
	})
}
