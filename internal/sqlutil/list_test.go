package sqlutil_test

import (
	"testing"

	"custos/internal/sqlutil"

	"github.com/google/go-cmp/cmp"
)

func TestList(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		enc  string
	}{
		{name: "nil", in: nil, enc: "null"},
		{name: "empty", in: []string{}, enc: "[]"},
		{name: "values", in: []string{"email", "é\"\\", ""}, enc: `["email","é\"\\",""]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := sqlutil.EncodeList(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.enc {
				t.Errorf("EncodeList: got %s, want %s", b, tt.enc)
			}
			got, err := sqlutil.DecodeList(b)
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tt.in == nil) || !cmp.Equal(got, tt.in) {
				t.Errorf("DecodeList: got %#v, want %#v", got, tt.in)
			}
		})
	}
	if _, err := sqlutil.DecodeList([]byte(`{"a":1}`)); err == nil {
		t.Errorf("DecodeList object: got nil error")
	}
}
