package validate_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"custos/validate"
)

// provinces is a sample of real province codes (GB/T 2260).
var provinces = []string{"11", "12", "31", "32", "44", "46", "50", "51", "54", "65", "81"}

func randDigits(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + rng.IntN(10))
	}
	return string(b)
}

// otherDigit returns a digit different from c.
func otherDigit(rng *rand.Rand, c byte) byte {
	return byte('0' + (int(c-'0')+1+rng.IntN(9))%10)
}

// TestResidentIDProperty: a real province, a real birth date between 1900
// and now, any area and sequence digits and the computed check character
// always validate; changing any single character never does, and for the
// first 17 the check character itself always changes (MOD 11-2 detects
// every single substitution).
func TestResidentIDProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(11643, 1999))
	f, _ := validate.Lookup("resident_id")
	opts := validate.Options{Now: now}
	start := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)
	days := int(now.Sub(start).Hours()/24) - 1
	for range 2000 {
		birth := start.AddDate(0, 0, rng.IntN(days))
		first17 := provinces[rng.IntN(len(provinces))] + randDigits(rng, 4) + birth.Format("20060102") + randDigits(rng, 3)
		check := validate.ResidentIDCheckChar(first17)
		id := first17 + string(check)
		if got, rule, detail := f(id, opts); rule != "" || got != id {
			t.Fatalf("%s: got %q, %q (%s)", id, got, rule, detail)
		}
		if d, ok := validate.ResidentIDBirthDate(id); !ok || !d.Equal(birth) {
			t.Fatalf("%s: birth date %v, %v, want %v", id, d, ok, birth)
		}
		for pos := range 18 {
			b := []byte(id)
			if pos == 17 {
				b[17] = "0123456789X"[(strings.IndexByte("0123456789X", check)+1+rng.IntN(10))%11]
			} else {
				b[pos] = otherDigit(rng, b[pos])
				if c := validate.ResidentIDCheckChar(string(b[:17])); c == check {
					t.Fatalf("%s: changing position %d keeps check %q", id, pos, c)
				}
			}
			if _, rule, _ := f(string(b), opts); rule == "" {
				t.Fatalf("%s: changed at %d to %s still validates", id, pos, b)
			}
		}
	}
}

// TestLuhnProperty: any payload plus its Luhn check digit is valid and a
// valid bank card when 12–19 digits long; changing any single digit makes
// it invalid and the bank_card validator says "luhn".
func TestLuhnProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(7812, 1))
	f, _ := validate.Lookup("bank_card")
	for range 2000 {
		payload := randDigits(rng, 11+rng.IntN(8))
		card := payload + string(validate.LuhnCheckDigit(payload))
		if !validate.LuhnValid(card) {
			t.Fatalf("%s: LuhnValid false", card)
		}
		if got, rule, _ := f(card, validate.Options{}); rule != "" || got != card {
			t.Fatalf("%s: bank_card got %q, %q", card, got, rule)
		}
		for pos := range len(card) {
			b := []byte(card)
			b[pos] = otherDigit(rng, b[pos])
			if validate.LuhnValid(string(b)) {
				t.Fatalf("%s: changed at %d to %s still valid", card, pos, b)
			}
			if _, rule, _ := f(string(b), validate.Options{}); rule != "luhn" {
				t.Fatalf("%s: changed at %d: rule %q, want luhn", card, pos, rule)
			}
		}
	}
}

// TestUSCCSubstitutions: every single-character substitution of the RULES
// example, over the whole code alphabet, is refused (weights are coprime
// with 31, so MOD 31 catches each).
func TestUSCCSubstitutions(t *testing.T) {
	const code = "91310110666007217T"
	const alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
	for pos := range len(code) {
		for i := 0; i < len(alphabet); i++ {
			if alphabet[i] == code[pos] {
				continue
			}
			b := []byte(code)
			b[pos] = alphabet[i]
			if validate.USCCValid(string(b)) {
				t.Errorf("%s (position %d) accepted", b, pos)
			}
		}
	}
}
