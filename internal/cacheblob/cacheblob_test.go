package cacheblob

import (
	"bytes"
	"fmt"
	"reflect"
	"strconv"
	"testing"
	"time"

	"custos"
)

// fillAll sets every field of the struct v points to to a value that is
// not its zero value and differs with n, so that a field the read-cache
// encoding forgets (one added to the struct later, say) comes back zero and
// fails a comparison.
func fillAll(t *testing.T, v any, n int) {
	t.Helper()
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		f, name := rv.Field(i), rv.Type().Field(i).Name
		switch {
		case f.Type() == reflect.TypeFor[time.Time]():
			f.Set(reflect.ValueOf(time.Unix(1_700_000_000+int64(n*100+i), int64(123_456_789+i)).UTC()))
		case f.Type() == reflect.TypeFor[[]byte]():
			f.SetBytes([]byte(fmt.Sprintf("%s-%d-bytes", name, n)))
		case f.Type() == reflect.TypeFor[map[string][]byte]():
			f.Set(reflect.ValueOf(map[string][]byte{"mobile": []byte("ct-mobile-" + strconv.Itoa(n)), "name": {}, "z": []byte("ct-z")}))
		case f.Kind() == reflect.String:
			f.SetString(fmt.Sprintf("%s-%d", name, n))
		case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
			f.SetInt(int64(n*1000 + i + 1))
		case f.Kind() == reflect.Bool:
			f.SetBool(true)
		default:
			t.Fatalf("fillAll: field %s of %s has type %s, which the test does not fill; teach it, and the encoding", name, rv.Type(), f.Type())
		}
	}
}

// TestCacheEntryRoundTrip checks that a read-cache entry gives back every
// field of the subject row, data key and consents it was made from, and
// only the consents of the purposes asked for, in recorded order (the
// read cache must answer exactly as the database would: S4's decision
// reads the consents it returns).
func TestCacheEntryRoundTrip(t *testing.T) {
	var in Interner
	id := custos.SubjectID("sub-1")
	st := &custos.StoredSubject{}
	fillAll(t, st, 1)
	st.ID = id
	key := &custos.DataKey{}
	fillAll(t, key, 2)
	key.SubjectID = id
	key.CreatedAt = time.Date(1960, 5, 1, 12, 0, 0, 7, time.UTC) // before 1970: negative seconds
	var history []*custos.StoredConsent
	for n, purpose := range []string{"marketing", "analytics", "marketing", "account"} {
		c := &custos.StoredConsent{}
		fillAll(t, c, n+3)
		c.SubjectID, c.Purpose = id, purpose
		history = append(history, c)
	}
	history[3].Sealed = nil       // none: stays nil
	history[2].Sealed = []byte{}  // empty: stays empty
	history[2].ByGuardian = false // both values of a flag
	history[3].At = time.Time{}   // the zero time stays zero

	b := Encode(st, key, history)
	for range 2 { // a second decode of the same bytes gives the same
		if got := Subject(b, id, &in); !reflect.DeepEqual(got, st) {
			t.Errorf("subject:\n got %+v\nwant %+v", got, st)
		}
		if got := Key(b, id); !reflect.DeepEqual(got, key) {
			t.Errorf("key:\n got %+v\nwant %+v", got, key)
		}
		got := Consents(b, id, []string{"marketing", "account"}, &in)
		want := []*custos.StoredConsent{history[0], history[2], history[3]}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("consents for marketing, account: got %d", len(got))
			for i := range max(len(got), len(want)) {
				if i >= len(got) || i >= len(want) || !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("  %d: got %+v", i, got[i:min(i+1, len(got))])
					t.Errorf("  %d: want %+v", i, want[i:min(i+1, len(want))])
				}
			}
		}
		if got := Consents(b, id, []string{"account", "analytics", "marketing"}, &in); !reflect.DeepEqual(got, history) {
			t.Errorf("consents for every purpose: got %d, want all %d, in order, every field", len(got), len(history))
		}
		if got := Consents(b, id, []string{"risk-control"}, &in); got == nil || len(got) != 0 {
			t.Errorf("consents for a purpose without any: %#v, want an empty, non-nil list", got)
		}
		if got[1].Sealed == nil || got[0].At.Location() != time.UTC {
			t.Errorf("empty sealed decoded as nil, or a time not in UTC: %#v, %v", got[1].Sealed, got[0].At.Location())
		}
	}

	// A consent of a purpose not asked for is skipped before anything is
	// made of it.
	if n := testing.AllocsPerRun(100, func() { Consents(b, id, []string{"risk-control"}, &in) }); n != 0 {
		t.Errorf("consents for a purpose none has: %.0f allocations, want 0", n)
	}

	// What a caller gets shares no memory with the entry.
	s1 := Subject(b, id, &in)
	s1.Sealed["mobile"][0] ^= 0xff
	k1 := Key(b, id)
	k1.Wrapped[0] ^= 0xff
	c1 := Consents(b, id, []string{"marketing"}, &in)
	c1[0].Sealed[0] ^= 0xff
	if !reflect.DeepEqual(Subject(b, id, &in), st) || !reflect.DeepEqual(Key(b, id), key) ||
		!reflect.DeepEqual(Consents(b, id, []string{"marketing"}, &in)[0], history[0]) {
		t.Error("changing what a decode returned changed the entry")
	}

	// No key, no consents, no fields.
	bare := &custos.StoredSubject{ID: id, Sealed: map[string][]byte{}, CreatedAt: st.CreatedAt}
	b = Encode(bare, nil, nil)
	if got := Subject(b, id, &in); !reflect.DeepEqual(got, bare) {
		t.Errorf("bare subject: got %+v, want %+v", got, bare)
	}
	if got := Key(b, id); got != nil {
		t.Errorf("key of an entry without one: %+v, want nil", got)
	}
	if got := Consents(b, id, []string{"marketing"}, &in); got == nil || len(got) != 0 {
		t.Errorf("consents of an entry without any: %#v, want an empty, non-nil list", got)
	}
}

// TestInterner checks that the Interner gives equal strings, one string
// per value while it has room, and still the right string once full.
func TestInterner(t *testing.T) {
	var in Interner
	a, b := in.get([]byte("mobile")), in.get([]byte("mobile"))
	if a != "mobile" || b != "mobile" || reflect.ValueOf(a).UnsafePointer() != reflect.ValueOf(b).UnsafePointer() {
		t.Errorf("get(mobile) twice: %q, %q, not one string", a, b)
	}
	for i := range MaxInterned + 10 {
		if s := in.get([]byte("v" + strconv.Itoa(i))); s != "v"+strconv.Itoa(i) {
			t.Fatalf("get(v%d) = %q", i, s)
		}
	}
	if n := len(*in.m.Load()); n != MaxInterned {
		t.Errorf("Interner holds %d values, want at most %d", n, MaxInterned)
	}
	if s := in.get([]byte("past-the-bound")); s != "past-the-bound" {
		t.Errorf("get past the bound = %q", s)
	}
}

// TestCacheEntrySize checks that an entry is made at its size (its
// capacity at most an eighth over its length, so that the cache's memory
// is what docs/deploy.md says) and in memory of its own.
func TestCacheEntrySize(t *testing.T) {
	st, key, history := Typical("s", 1, "marketing", "marketing", "marketing", "marketing")
	var entries [][]byte
	for _, h := range [][]*custos.StoredConsent{nil, history} {
		b := Encode(st, key, h)
		if cap(b) > len(b)+len(b)/8 {
			t.Errorf("entry with %d consents: %d bytes in a capacity of %d", len(h), len(b), cap(b))
		}
		entries = append(entries, b)
	}
	// Entries made one after the other share no memory (encodeEntry
	// writes into a scratch buffer it reuses).
	if got := Consents(entries[0], "s", []string{"marketing"}, &Interner{}); len(got) != 0 {
		t.Errorf("the first entry, made without consents, has %d after a second entry was made", len(got))
	}
	if got := Subject(entries[0], "s", &Interner{}); !reflect.DeepEqual(got.Sealed, st.Sealed) {
		t.Error("the first entry's subject changed when a second entry was made")
	}
	// The scratch keeps nothing of the last entry (the pool may hand out
	// a new, empty one instead, which passes too).
	key.Wrapped = []byte("wrapped-key-canary")
	Encode(st, key, nil)
	sp := entryScratch.Get().(*[]byte)
	defer entryScratch.Put(sp)
	if scratch := (*sp)[:cap(*sp)]; bytes.Contains(scratch, []byte("wrapped-key-canary")) {
		t.Error("the encoder's scratch buffer still holds the last entry's wrapped key")
	}
}
