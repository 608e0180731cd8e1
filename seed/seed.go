// Package seed generates synthetic Chinese retail customers and their
// records for demos, tests and benchmarks (`custos seed`, `custos bench`).
//
// Every value is made up but well-formed: resident ID numbers carry a real
// area code, the birth date and gender of the customer and a correct
// GB 11643 check character; mobiles use allocated prefixes; bank cards pass
// Luhn; the address lies in the district the ID number names. A Generator
// is deterministic for a given random source, and never repeats a lookup
// value (mobile, e-mail, ID number, member number).
//
// Synthetic mobiles and e-mail addresses at real providers may still belong
// to someone: never send messages to seeded customers.
package seed

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"custos"
)

// DefaultReference is the date New measures ages and record times from.
var DefaultReference = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Provenance is the provenance of every generated subject and record.
var Provenance = custos.Provenance{Collector: "seed", Channel: "seed", Source: "synthetic"}

// Age range of generated customers, in whole years at the reference date.
const (
	MinAge = 18
	MaxAge = 80
)

// BankCardShare is the share of generated customers that have a bank card.
const BankCardShare = 0.3

// Generator makes synthetic customers and records. It is not safe for
// concurrent use.
type Generator struct {
	r    *rand.Rand
	ref  time.Time
	used seen  // the lookup values (and other ids) handed out, with their kind
	last *area // area of the last subject, for its records
}

// New returns a Generator drawing from r, with ages and record times
// relative to DefaultReference. The same seed gives the same output.
func New(r *rand.Rand) *Generator {
	return NewAt(r, DefaultReference)
}

// NewAt is New with ages and record times relative to ref.
func NewAt(r *rand.Rand, ref time.Time) *Generator {
	if r == nil {
		r = rand.New(rand.NewPCG(1, 2))
	}
	return &Generator{r: r, ref: ref}
}

// Subject returns a new customer: fields keyed by catalog field name (name,
// gender, birth_date, nationality, id_number, mobile, email, address,
// postal_code, member_no, username, and for BankCardShare of them
// bank_card), with seed Provenance.
func (g *Generator) Subject() custos.NewSubject {
	a := &areas[g.r.IntN(len(areas))]
	g.last = a

	male := g.r.IntN(2) == 0
	gender := "female"
	if male {
		gender = "male"
	}
	sur, given := g.name(male)
	birth := g.birthDate()

	f := map[string]string{
		"name":        sur.char + joinChars(given),
		"gender":      gender,
		"birth_date":  birth.Format(time.DateOnly),
		"nationality": "CN",
		"id_number":   g.idNumber(a.code, birth, male),
		"mobile":      g.mobile(),
		"email":       g.email(sur, given, birth),
		"address":     g.address(a),
		"postal_code": a.postal,
		"member_no":   g.unique("member", func() string { return "M" + g.digits(10) }),
		"username":    g.username(sur, given, birth),
	}
	if g.r.Float64() < BankCardShare {
		f["bank_card"] = g.bankCard()
	}
	return custos.NewSubject{Fields: f, Provenance: Provenance}
}

// unique calls gen until it returns a value not handed out before under
// kind, and records it. It keeps a 64-bit FNV-1a hash of kind and value
// in a Bloom filter (seen) rather than the value, so that memory stays at
// about 20 bits a value: a Go map of the hashes took 1.2 GB for ten million
// customers. Two different values with one hash, or a false positive of
// the filter (under 0.1 %), only make gen draw again: values stay unique,
// and the output stays deterministic.
func (g *Generator) unique(kind string, gen func() string) string {
	for {
		v := gen()
		h := fnv.New64a()
		h.Write([]byte(kind))
		h.Write([]byte{0})
		h.Write([]byte(v))
		if g.used.addIfNew(h.Sum64()) {
			return v
		}
	}
}

// digits returns n random decimal digits.
func (g *Generator) digits(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + g.r.IntN(10))
	}
	return string(b)
}

func (g *Generator) pick(l []hanzi) hanzi { return l[g.r.IntN(len(l))] }

// name returns a surname and one or two given-name characters.
func (g *Generator) name(male bool) (hanzi, []hanzi) {
	var sur hanzi
	switch x := g.r.IntN(100); {
	case x == 0:
		sur = g.pick(compoundSurnames)
	case x < 45:
		sur = surnames[g.r.IntN(10)] // the ten most common cover ~45%
	case x < 75:
		sur = surnames[10+g.r.IntN(20)]
	default:
		sur = g.pick(surnames)
	}
	pool := femaleGiven
	if male {
		pool = maleGiven
	}
	first := func() hanzi {
		if g.r.IntN(5) == 0 {
			return g.pick(sharedGiven)
		}
		return g.pick(pool)
	}
	given := []hanzi{first()}
	two := g.r.IntN(10) < 7
	if len(sur.char) > 3 { // compound surnames mostly take one given character
		two = g.r.IntN(10) < 3
	}
	for two {
		c := first()
		if c.char != given[0].char && c.char != sur.char {
			given = append(given, c)
			break
		}
	}
	return sur, given
}

func joinChars(l []hanzi) string {
	var b strings.Builder
	for _, h := range l {
		b.WriteString(h.char)
	}
	return b.String()
}

func joinPinyin(l []hanzi) string {
	var b strings.Builder
	for _, h := range l {
		b.WriteString(h.pinyin)
	}
	return b.String()
}

// birthDate returns a date on which the customer is between MinAge and
// MaxAge at the reference date, favouring the 18–45 year-olds who make most
// online purchases.
func (g *Generator) birthDate() time.Time {
	lo, hi := MinAge, MaxAge
	if g.r.IntN(100) < 65 {
		hi = 44
	} else {
		lo = 45
	}
	ref := time.Date(g.ref.Year(), g.ref.Month(), g.ref.Day(), 0, 0, 0, 0, time.UTC)
	latest := ref.AddDate(-lo, 0, 0)
	earliest := ref.AddDate(-(hi + 1), 0, 1)
	days := int(latest.Sub(earliest).Hours()/24) + 1
	return earliest.AddDate(0, 0, g.r.IntN(days))
}

// idWeights are the GB 11643-1999 (ISO 7064 MOD 11-2) weights of the first
// 17 digits; idCheck maps the weighted sum mod 11 to the check character.
var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const idCheck = "10X98765432"

// idCheckChar returns the check character for the first 17 digits of a
// resident ID number.
func idCheckChar(first17 string) byte {
	sum := 0
	for i := range 17 {
		sum += int(first17[i]-'0') * idWeights[i]
	}
	return idCheck[sum%11]
}

// idNumber returns an unused 18-character resident ID number: area code,
// birth date, a 3-digit sequence (odd for men, even for women) and the check
// character.
func (g *Generator) idNumber(code string, birth time.Time, male bool) string {
	return g.unique("id", func() string {
		seq := 1 + g.r.IntN(499)*2 // odd, 1..997
		if !male {
			seq = 2 + g.r.IntN(499)*2 // even, 2..998
		}
		s := code + birth.Format("20060102") + fmt.Sprintf("%03d", seq)
		return s + string(idCheckChar(s))
	})
}

// mobile returns an unused mainland mobile number as +86 and 11 digits.
func (g *Generator) mobile() string {
	return g.unique("mobile", func() string {
		return "+86" + mobilePrefixes[g.r.IntN(len(mobilePrefixes))] + g.digits(8)
	})
}

// email returns an unused e-mail address whose local part is made from the
// customer's name in pinyin, the way Chinese customers pick them.
func (g *Generator) email(sur hanzi, given []hanzi, birth time.Time) string {
	return g.unique("email", func() string {
		d := g.pickDomain()
		full := sur.pinyin + joinPinyin(given)
		initials := sur.pinyin[:1]
		for _, h := range given {
			initials += h.pinyin[:1]
		}
		var local string
		switch g.r.IntN(7) {
		case 0:
			if d == "qq.com" || d == "foxmail.com" { // QQ numbers
				local = strconv.Itoa(10000+g.r.IntN(90000)) + g.digits(g.r.IntN(6))
			} else {
				local = full + g.digits(2)
			}
		case 1:
			local = full + strconv.Itoa(birth.Year())
		case 2:
			local = joinPinyin(given) + "." + sur.pinyin + g.digits(g.r.IntN(3))
		case 3:
			local = sur.pinyin + "_" + joinPinyin(given) + g.digits(g.r.IntN(3))
		case 4:
			local = initials + birth.Format("0102") + g.digits(g.r.IntN(3))
		default:
			local = full + g.digits(1+g.r.IntN(4))
		}
		return local + "@" + d
	})
}

func (g *Generator) pickDomain() string {
	total := 0
	for _, d := range emailDomains {
		total += d.weight
	}
	x := g.r.IntN(total)
	for _, d := range emailDomains {
		if x < d.weight {
			return d.domain
		}
		x -= d.weight
	}
	return emailDomains[0].domain
}

// username returns an unused login name: lowercase letters, digits and
// underscores, starting with a letter, 4–24 characters.
func (g *Generator) username(sur hanzi, given []hanzi, birth time.Time) string {
	return g.unique("username", func() string {
		full := sur.pinyin + joinPinyin(given)
		switch g.r.IntN(4) {
		case 0:
			return full + g.digits(2+g.r.IntN(3))
		case 1:
			return joinPinyin(given) + "_" + fmt.Sprintf("%02d", birth.Year()%100) + g.digits(g.r.IntN(3))
		case 2:
			return "user_" + g.digits(8)
		default:
			return sur.pinyin + "_" + g.digits(4)
		}
	})
}

// address returns a street address in area a: province (left out for the
// municipalities), city, district, road and number, often with a
// residential compound, building, unit and flat.
func (g *Generator) address(a *area) string {
	var b strings.Builder
	if a.province != a.city {
		b.WriteString(a.province)
	}
	b.WriteString(a.city)
	b.WriteString(a.district)
	b.WriteString(a.roads[g.r.IntN(len(a.roads))])
	fmt.Fprintf(&b, "%d号", 1+g.r.IntN(399))
	if g.r.IntN(10) < 7 {
		fmt.Fprintf(&b, "%s%d栋%d单元%d%02d室", communities[g.r.IntN(len(communities))],
			1+g.r.IntN(30), 1+g.r.IntN(4), 1+g.r.IntN(32), 1+g.r.IntN(6))
	}
	return b.String()
}

// bankCard returns an unused UnionPay card number (62…, 16–19 digits) with
// a valid Luhn check digit.
func (g *Generator) bankCard() string {
	return g.unique("card", func() string {
		n := 19
		switch x := g.r.IntN(20); {
		case x < 7:
			n = 16
		case x < 8:
			n = 17
		case x < 10:
			n = 18
		}
		body := cardBINs[g.r.IntN(len(cardBINs))]
		body += g.digits(n - 1 - len(body))
		return body + string(luhnDigit(body))
	})
}

// luhnDigit returns the Luhn check digit to append to body.
func luhnDigit(body string) byte {
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 { // doubled: every second digit from the right of the full number
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte('0' + (10-sum%10)%10)
}
