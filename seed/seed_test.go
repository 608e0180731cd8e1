package seed_test

import (
	"math/rand/v2"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"custos"
	"custos/seed"
)

func newGen(seedValue uint64) *seed.Generator {
	return seed.New(rand.New(rand.NewPCG(seedValue, 0x5eed)))
}

// mod112Valid checks a resident ID's check character with the recursive
// form of ISO 7064 MOD 11-2 (not the weight table the package uses).
func mod112Valid(id string) bool {
	if len(id) != 18 {
		return false
	}
	p := 0
	for i := range 17 {
		c := id[i]
		if c < '0' || c > '9' {
			return false
		}
		p = (p + int(c-'0')) * 2 % 11
	}
	want := (12 - p%11) % 11
	last := id[17]
	if want == 10 {
		return last == 'X'
	}
	return last == byte('0'+want)
}

func TestMod112Reference(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"RULES.md example with X", "11010519491231002X", true},
		{"RULES.md example", "440524188001015368", true},
		{"wrong check", "110105194912310021", false},
		{"short", "11010519491231002", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mod112Valid(tt.id); got != tt.ok {
				t.Errorf("got %v, want %v", got, tt.ok)
			}
		})
	}
}

func luhnValid(s string) bool {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if (len(s)-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func TestLuhnReference(t *testing.T) {
	if !luhnValid("6222021234567890128") || luhnValid("6222021234567890127") {
		t.Error("reference Luhn check disagrees with RULES.md example")
	}
}

var (
	mobileRE   = regexp.MustCompile(`^\+861[3-9]\d{9}$`)
	emailRE    = regexp.MustCompile(`^[a-z0-9._]+@[a-z0-9]+(\.[a-z0-9]+)+$`)
	memberRE   = regexp.MustCompile(`^M\d{10}$`)
	postalRE   = regexp.MustCompile(`^\d{6}$`)
	usernameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{3,31}$`)
	cardRE     = regexp.MustCompile(`^62\d{14,17}$`)
)

// TestSubject checks 2,000 generated customers against the formats custos
// validates (RULES.md "Formats") and the consistency between fields.
func TestSubject(t *testing.T) {
	const n = 2000
	g := newGen(1)
	seen := map[string]map[string]bool{}
	for _, f := range []string{"mobile", "email", "id_number", "member_no", "username", "bank_card"} {
		seen[f] = map[string]bool{}
	}
	district := map[string]string{} // id area code → address up to the district
	postal := map[string]string{}   // id area code → postal code
	cards := 0

	for i := range n {
		s := g.Subject()
		f := s.Fields
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("subject %d: "+format, append([]any{i}, args...)...)
		}
		if s.Provenance != seed.Provenance || s.Provenance.Source != "synthetic" {
			fail("got provenance %+v", s.Provenance)
		}

		// Name: a surname and one or two given characters, all Han.
		if c := utf8.RuneCountInString(f["name"]); c < 2 || c > 4 {
			fail("got name of %d characters", c)
		}
		for _, r := range f["name"] {
			if !unicode.Is(unicode.Han, r) {
				fail("got non-Han rune %q in name", r)
			}
		}

		// ID number: check character, birth date, gender parity.
		id := f["id_number"]
		if !mod112Valid(id) {
			fail("got id_number failing MOD 11-2")
			continue
		}
		birth, err := time.Parse(time.DateOnly, f["birth_date"])
		if err != nil {
			fail("got birth_date %q: %v", f["birth_date"], err)
			continue
		}
		if got, want := id[6:14], birth.Format("20060102"); got != want {
			fail("got id birth %s, want %s", got, want)
		}
		seq, _ := strconv.Atoi(id[14:17])
		switch f["gender"] {
		case "male":
			if seq%2 != 1 {
				fail("got even sequence %03d for male", seq)
			}
		case "female":
			if seq%2 != 0 {
				fail("got odd sequence %03d for female", seq)
			}
		default:
			fail("got gender %q", f["gender"])
		}
		if age := ageAt(birth, seed.DefaultReference); age < seed.MinAge || age > seed.MaxAge {
			fail("got age %d", age)
		}

		// Address and postal code follow the ID's area code.
		addr := f["address"]
		end := strings.Index(addr, "区")
		if end < 0 {
			fail("got address without a district")
			continue
		}
		head := addr[:end+len("区")]
		if prev, ok := district[id[:6]]; ok && prev != head {
			fail("area %s: got district %s, earlier %s", id[:6], head, prev)
		}
		district[id[:6]] = head
		if prev, ok := postal[id[:6]]; ok && prev != f["postal_code"] {
			fail("area %s: got postal code %s, earlier %s", id[:6], f["postal_code"], prev)
		}
		postal[id[:6]] = f["postal_code"]

		if !mobileRE.MatchString(f["mobile"]) || strings.HasPrefix(f["mobile"], "+86154") {
			fail("got invalid mobile")
		}
		if !emailRE.MatchString(f["email"]) {
			fail("got invalid email")
		}
		if !memberRE.MatchString(f["member_no"]) {
			fail("got invalid member_no")
		}
		if !postalRE.MatchString(f["postal_code"]) {
			fail("got invalid postal_code")
		}
		if !usernameRE.MatchString(f["username"]) {
			fail("got invalid username %q", f["username"])
		}
		if f["nationality"] != "CN" {
			fail("got nationality %q", f["nationality"])
		}
		if card, ok := f["bank_card"]; ok {
			cards++
			if !cardRE.MatchString(card) || !luhnValid(card) {
				fail("got invalid bank_card")
			}
		}

		for field, set := range seen {
			v, ok := f[field]
			if !ok {
				continue
			}
			if set[v] {
				fail("got duplicate %s", field)
			}
			set[v] = true
		}
	}
	if share := float64(cards) / n; share < 0.25 || share > 0.35 {
		t.Errorf("got bank card share %.2f, want about %.2f", share, seed.BankCardShare)
	}
	if len(district) < 30 {
		t.Errorf("got %d areas, want at least 30", len(district))
	}
}

// ageAt returns the age in whole years on day ref of someone born on birth.
func ageAt(birth, ref time.Time) int {
	age := ref.Year() - birth.Year()
	if ref.Month() < birth.Month() || ref.Month() == birth.Month() && ref.Day() < birth.Day() {
		age--
	}
	return age
}

func TestNewAt(t *testing.T) {
	ref := time.Date(2030, 6, 15, 0, 0, 0, 0, time.UTC)
	g := seed.NewAt(rand.New(rand.NewPCG(3, 4)), ref)
	for range 500 {
		f := g.Subject().Fields
		birth, err := time.Parse(time.DateOnly, f["birth_date"])
		if err != nil {
			t.Fatal(err)
		}
		if age := ageAt(birth, ref); age < seed.MinAge || age > seed.MaxAge {
			t.Errorf("got age %d at %s", age, ref.Format(time.DateOnly))
		}
	}
	for _, r := range g.Records(50) {
		if !r.OccurredAt.Before(ref) || r.OccurredAt.Before(ref.AddDate(-1, 0, 0)) {
			t.Errorf("got record at %v, want within the year before %v", r.OccurredAt, ref)
		}
	}
}

func TestDeterministic(t *testing.T) {
	type batch struct {
		subjects []custos.NewSubject
		records  [][]custos.NewRecord
	}
	run := func(s uint64) batch {
		g := newGen(s)
		var b batch
		for range 200 {
			b.subjects = append(b.subjects, g.Subject())
			b.records = append(b.records, g.Records(5))
		}
		return b
	}
	a, b := run(42), run(42)
	if !reflect.DeepEqual(a, b) {
		t.Error("same seed gave different output")
	}
	if c := run(43); reflect.DeepEqual(a.subjects, c.subjects) {
		t.Error("different seeds gave the same output")
	}
}

var amountRE = regexp.MustCompile(`^\d+\.\d{2}$`)

func TestRecords(t *testing.T) {
	g := newGen(7)
	s := g.Subject()
	recs := g.Records(500)
	if len(recs) != 500 {
		t.Fatalf("got %d records, want 500", len(recs))
	}
	ref := seed.DefaultReference
	types := map[string]int{}
	orders := map[string]string{} // order_no → amount
	for i, r := range recs {
		types[r.Type]++
		if !r.OccurredAt.Before(ref) || r.OccurredAt.Before(ref.AddDate(-1, 0, 0)) {
			t.Errorf("record %d: got time %v, want within the year before %v", i, r.OccurredAt, ref)
		}
		if i > 0 && r.OccurredAt.Before(recs[i-1].OccurredAt) {
			t.Errorf("record %d: got records out of time order", i)
		}
		if r.Provenance != seed.Provenance {
			t.Errorf("record %d: got provenance %+v", i, r.Provenance)
		}
		for _, v := range s.Fields {
			for k, d := range r.Data {
				if str, ok := d.(string); ok && str == v {
					t.Errorf("record %d: data %s holds a subject field value", i, k)
				}
			}
		}
		switch r.Type {
		case seed.TypeOrder:
			amt, _ := r.Data["amount"].(string)
			no, _ := r.Data["order_no"].(string)
			if !amountRE.MatchString(amt) || r.Data["currency"] != "CNY" || no == "" {
				t.Errorf("record %d: got order %v", i, r.Data)
			}
			if items, _ := r.Data["items"].([]any); len(items) == 0 {
				t.Errorf("record %d: got order without items", i)
			}
			orders[no] = amt
		case seed.TypePayment:
			no, _ := r.Data["order_no"].(string)
			if want, ok := orders[no]; ok && r.Data["amount"] != want {
				t.Errorf("record %d: got payment %v, want order amount %s", i, r.Data["amount"], want)
			}
		case seed.TypeLogistics:
			if r.Data["carrier"] == "" || r.Data["tracking_no"] == "" || r.Data["status"] == "" {
				t.Errorf("record %d: got logistics %v", i, r.Data)
			}
		case seed.TypeBrowsing, seed.TypeSearch:
		default:
			t.Errorf("record %d: got type %q", i, r.Type)
		}
	}
	for _, typ := range []string{seed.TypeOrder, seed.TypePayment, seed.TypeLogistics, seed.TypeBrowsing, seed.TypeSearch} {
		if types[typ] == 0 {
			t.Errorf("got no %s records", typ)
		}
	}
	if got := g.Records(0); len(got) != 0 {
		t.Errorf("got %d records, want 0", len(got))
	}
}

func TestRecordTypesInCatalog(t *testing.T) {
	cat := custos.DefaultCatalog()
	for _, typ := range []string{seed.TypeOrder, seed.TypePayment, seed.TypeLogistics, seed.TypeBrowsing, seed.TypeSearch} {
		if cat.RecordType(typ) == nil {
			t.Errorf("record type %q is not in the default catalog", typ)
		}
	}
}

func TestFieldsInCatalog(t *testing.T) {
	cat := custos.DefaultCatalog()
	g := newGen(9)
	for range 50 {
		for name := range g.Subject().Fields {
			if cat.Field(name) == nil {
				t.Errorf("field %q is not in the default catalog", name)
			}
		}
	}
}

func BenchmarkSubject(b *testing.B) {
	g := newGen(1)
	b.ReportAllocs()
	for b.Loop() {
		g.Subject()
	}
}

// TestRecordTimes checks, over many seeds and reference dates, that every
// record lies within the year before the reference date.
func TestRecordTimes(t *testing.T) {
	tests := []struct {
		name string
		ref  time.Time
	}{
		{"default", seed.DefaultReference},
		{"late evening UTC", time.Date(2030, 6, 15, 23, 30, 0, 0, time.UTC)},
		{"after a leap day", time.Date(2028, 3, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for s := range uint64(20) {
				g := seed.NewAt(rand.New(rand.NewPCG(s, s)), tt.ref)
				for _, r := range g.Records(300) {
					if !r.OccurredAt.Before(tt.ref) || r.OccurredAt.Before(tt.ref.Add(-365*24*time.Hour)) {
						t.Fatalf("seed %d: got %v, want within 365 days before %v", s, r.OccurredAt, tt.ref)
					}
				}
			}
		})
	}
}
