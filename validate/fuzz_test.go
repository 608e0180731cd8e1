package validate_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"custos/validate"
)

// fuzzOpts are the options FuzzValidate passes to every validator.
var fuzzOpts = validate.Options{Enum: gender, Now: now}

// knownDetails joins every detail the table cases produce, with the table's
// options and with fuzzOpts. Details are fixed texts chosen per rule, so a
// fuzz input that happens to be a piece of one ("must be") is no leak; any
// other input showing up in a detail is.
func knownDetails() string {
	var b strings.Builder
	for _, tc := range cases {
		f, _ := validate.Lookup(tc.validator)
		opts := tc.opts
		opts.Now = now
		for _, o := range []validate.Options{opts, fuzzOpts} {
			_, _, d := f(tc.in, o)
			b.WriteString(d + "\n")
		}
	}
	for _, name := range validate.Names() {
		f, _ := validate.Lookup(name)
		for _, in := range []string{"", "\xff"} {
			_, _, d := f(in, fuzzOpts)
			b.WriteString(d + "\n")
		}
	}
	return b.String()
}

// FuzzValidate runs every validator on the input: none may panic, a
// success must be a fixed point (validating the normalised value returns
// it unchanged), and a failure must carry a rule and a detail that does not
// contain the input.
func FuzzValidate(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.in)
	}
	known := knownDetails()
	f.Fuzz(func(t *testing.T, in string) {
		for _, name := range validate.Names() {
			fn, _ := validate.Lookup(name)
			got, rule, detail := fn(in, fuzzOpts)
			if rule == "" {
				if detail != "" {
					t.Errorf("%s(%q): success with detail %q", name, in, detail)
				}
				again, rule2, detail2 := fn(got, fuzzOpts)
				if rule2 != "" || again != got {
					t.Errorf("%s(%q) = %q, but validating that gives %q, %q (%s)", name, in, got, again, rule2, detail2)
				}
				continue
			}
			if got != "" || detail == "" {
				t.Errorf("%s(%q): failure %q with value %q and detail %q", name, in, rule, got, detail)
			}
			for _, v := range []string{in, strings.TrimSpace(in)} {
				if utf8.RuneCountInString(v) >= 4 && strings.Contains(detail, v) && !strings.Contains(known, v) {
					t.Errorf("%s(%q): detail %q contains the input", name, in, detail)
				}
			}
		}
	})
}
