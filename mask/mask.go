// Package mask renders normalised field values for display to staff and
// customers who may see that a value exists but not the whole value
// (脱敏展示), following the conventions in RULES.md: 138****1234,
// 110105********002X, 张**, **** **** **** 0128, 北京市朝阳区******,
// z***@example.com, 192.*.*.*.
//
// A rule never reveals more than it says. A value too short or too odd for
// its rule (a 3-digit "mobile", a resident ID of the wrong length) comes back
// fully masked rather than partly revealed, and the hidden part is a fixed
// run of asterisks wherever the rule allows, so its length does not leak.
//
// The package is pure and imports only the standard library.
package mask

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"
)

// Rule names, as used by the "mask" of catalog fields.
const (
	None            = "none"              // value unchanged
	Full            = "full"              // always FullMask
	Name            = "name"              // first rune: 张**
	Mobile          = "mobile"            // first 3 + last 4: 138****5678
	ResidentID      = "resident_id"       // first 6 + last 4: 110105********002X
	ResidentIDShort = "resident_id_short" // first 1 + last 1: 1****************X
	First1Last1     = "first1_last1"      // E****8
	First4          = "first4"            // abcd****
	Last4           = "last4"             // ****5678
	BankCard        = "bank_card"         // **** **** **** 0128
	Address         = "address"           // down to the district: 北京市朝阳区******
	Email           = "email"             // first rune of the local part: z***@example.com
	IP              = "ip"                // first IPv4 octet or IPv6 hextet: 192.*.*.*, 2001:*
	DateYear        = "date_year"         // year only: 1990-**-**
)

// FullMask is the output of the "full" rule and of any rule applied to a
// value it cannot mask safely. Its length is fixed so nothing about the
// value leaks.
const FullMask = "******"

var rules = map[string]func(string) string{
	None:            func(v string) string { return v },
	Full:            func(string) string { return FullMask },
	Name:            maskName,
	Mobile:          maskMobile,
	ResidentID:      func(v string) string { return maskResidentID(v, 6, 4) },
	ResidentIDShort: func(v string) string { return maskResidentID(v, 1, 1) },
	First1Last1:     maskFirst1Last1,
	First4:          maskFirst4,
	Last4:           maskLast4,
	BankCard:        maskBankCard,
	Address:         maskAddress,
	Email:           maskEmail,
	IP:              maskIP,
	DateYear:        maskDateYear,
}

// Apply returns the masked display form of a normalised value under rule.
// An unknown rule gives FullMask, and so does any rule but "none" for a
// value that is not valid UTF-8 (validated values always are), because
// character positions in it mean nothing.
func Apply(rule, value string) string {
	f, ok := rules[rule]
	if !ok || rule != None && !utf8.ValidString(value) {
		return FullMask
	}
	return f(value)
}

// Rules returns the names of all rules, sorted.
func Rules() []string {
	names := make([]string, 0, len(rules))
	for n := range rules {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// maskName keeps the first rune and replaces each other rune with *, as is
// usual for names (张三丰 → 张**). A one-rune value is fully masked.
func maskName(v string) string {
	r := []rune(v)
	if len(r) < 2 {
		return FullMask
	}
	return string(r[0]) + strings.Repeat("*", len(r)-1)
}

// separators removes the spaces and hyphens people type inside numbers. A
// Replacer is safe for concurrent use; building one per call cost more
// than the masking itself.
var separators = strings.NewReplacer(" ", "", "-", "")

// maskMobile shows the first 3 and last 4 of the 11 national digits of a
// mainland mobile, without +86.
func maskMobile(v string) string {
	d := separators.Replace(v)
	switch {
	case len(d) == 14 && strings.HasPrefix(d, "+86"):
		d = d[3:]
	case len(d) == 13 && strings.HasPrefix(d, "86"):
		d = d[2:]
	}
	if len(d) != 11 || !isDigits(d) || d[0] != '1' {
		return FullMask
	}
	return d[:3] + "****" + d[7:]
}

// maskResidentID shows the first head and last tail characters of an
// 18-character resident ID.
func maskResidentID(v string, head, tail int) string {
	if len(v) != 18 || !isASCIIAlnum(v) {
		return FullMask
	}
	return v[:head] + strings.Repeat("*", 18-head-tail) + v[18-tail:]
}

// maskFirst1Last1 shows the first and the last rune around a fixed ****;
// values under 4 runes are fully masked, so at most half is shown.
func maskFirst1Last1(v string) string {
	r := []rune(v)
	if len(r) < 4 {
		return FullMask
	}
	return string(r[0]) + "****" + string(r[len(r)-1])
}

// maskFirst4 shows the first 4 runes; values under 8 runes are fully
// masked, so at most half is shown.
func maskFirst4(v string) string {
	r := []rune(v)
	if len(r) < 8 {
		return FullMask
	}
	return string(r[:4]) + "****"
}

// maskLast4 shows the last 4 runes; values under 8 runes are fully masked.
func maskLast4(v string) string {
	r := []rune(v)
	if len(r) < 8 {
		return FullMask
	}
	return "****" + string(r[len(r)-4:])
}

// maskBankCard shows the last 4 digits of a 12–19 digit card number, in the
// fixed form **** **** **** NNNN (PCI DSS 3.3 allows at most first 6 and
// last 4).
func maskBankCard(v string) string {
	d := separators.Replace(v)
	if len(d) < 12 || len(d) > 19 || !isDigits(d) {
		return FullMask
	}
	return "**** **** **** " + d[len(d)-4:]
}

// maskEmail shows the first rune of the local part and the domain. A
// one-rune local part is hidden entirely.
func maskEmail(v string) string {
	local, domain, found := strings.Cut(v, "@")
	if !found || local == "" || domain == "" || strings.Contains(domain, "@") {
		return FullMask
	}
	r := []rune(local)
	if len(r) < 2 {
		return "***@" + domain
	}
	return string(r[0]) + "***@" + domain
}

// maskIP shows the first octet of an IPv4 address or the first hextet of an
// IPv6 address.
func maskIP(v string) string {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return FullMask
	}
	a = a.Unmap()
	if a.Is4() {
		return fmt.Sprintf("%d.*.*.*", a.As4()[0])
	}
	b := a.As16()
	return fmt.Sprintf("%x:*", uint16(b[0])<<8|uint16(b[1]))
}

// maskDateYear keeps the year of a YYYY-MM-DD date.
func maskDateYear(v string) string {
	if len(v) != 10 || v[4] != '-' || v[7] != '-' || !isDigits(v[:4]+v[5:7]+v[8:]) {
		return FullMask
	}
	return v[:4] + "-**-**"
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isASCIIAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
