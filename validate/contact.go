package validate

import (
	"net/mail"
	"strings"
)

// mobileDigits returns the 11 national digits of a Chinese mobile number
// written as `^(?:\+?86)?1[3-9]\d{9}$` once spaces and hyphens are removed,
// and reports whether v has that shape (the 154 segment is not checked).
func mobileDigits(v string) (string, bool) {
	v = strip(narrow(v), " -")
	switch {
	case len(v) == 14 && strings.HasPrefix(v, "+86"):
		v = v[3:]
	case len(v) == 13 && strings.HasPrefix(v, "86"):
		v = v[2:]
	}
	if len(v) != 11 || !isDigits(v) || v[0] != '1' || v[1] < '3' {
		return "", false
	}
	return v, true
}

func validMobile(v string, _ Options) result {
	d, found := mobileDigits(v)
	if !found {
		return fail(RuleMobileFormat, "must be an 11-digit mainland mobile number, optionally with +86")
	}
	if strings.HasPrefix(d, "154") {
		// 154 is not allocated to any carrier.
		return fail(RuleMobileFormat, "the number segment is not allocated")
	}
	return ok("+86" + d)
}

// landlineExtSeps introduce an extension after a fixed-line number.
var landlineExtSeps = []string{"-", "#", "ext.", "ext", "x", "转"}

// validLandline accepts a mainland fixed-line number: optional +86 or 0086,
// the area code (010, 02X or a 4-digit 0XXX; the trunk 0 may be left out
// after +86), an optional separator, a 7–8 digit local number not starting
// with 0 or 1, and an optional extension of 1–6 digits. The normalised form
// is 0AA-NNNNNNNN[-EEEE].
func validLandline(v string, _ Options) result {
	bad := fail(RuleLandlineFormat, "must be a fixed-line number such as 010-12345678")
	s := strings.ToLower(strip(narrow(v), " "))
	s = strings.NewReplacer("(", "", ")", "").Replace(s)
	international := false
	for _, p := range []string{"+86", "0086"} {
		if strings.HasPrefix(s, p) {
			s, international = strings.TrimPrefix(s[len(p):], "-"), true
			break
		}
	}
	switch {
	case strings.HasPrefix(s, "0"):
		s = s[1:]
	case !international:
		return bad
	}
	// Area code without the trunk 0: 10 and 2X have two digits, the rest three.
	n := 3
	if strings.HasPrefix(s, "1") || strings.HasPrefix(s, "2") {
		n = 2
	}
	if len(s) < n || !isDigits(s[:n]) || s[0] == '0' || (n == 2 && s[0] == '1' && s[1] != '0') {
		return bad
	}
	area := "0" + s[:n]
	s = strings.TrimPrefix(s[n:], "-")
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	local, rest := s[:i], s[i:]
	if len(local) < 7 || len(local) > 8 || local[0] < '2' {
		return bad
	}
	out := area + "-" + local
	if rest != "" {
		var ext string
		for _, sep := range landlineExtSeps {
			if strings.HasPrefix(rest, sep) {
				ext = rest[len(sep):]
				break
			}
		}
		if len(ext) < 1 || len(ext) > 6 || !isDigits(ext) {
			return bad
		}
		out += "-" + ext
	}
	return ok(out)
}

// validEmail accepts a bare ASCII address (no display name, comments or
// quoting) of at most 254 characters with a local part of at most 64 and a
// domain of dot-separated LDH labels; the domain is lower-cased.
func validEmail(v string, _ Options) result {
	if len(v) > 254 {
		return fail(RuleMaxLength, "must be at most 254 characters")
	}
	bad := fail(RuleEmailFormat, "must be an e-mail address such as name@example.com")
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return bad
		}
	}
	if strings.Count(v, "@") != 1 {
		return bad
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Name != "" || addr.Address != v {
		return bad
	}
	local, domain, _ := strings.Cut(v, "@")
	if len(local) > 64 || !validDomain(domain) {
		return bad
	}
	return ok(local + "@" + strings.ToLower(domain))
}

// validDomain reports whether d is a host name with at least two labels of
// letters, digits and inner hyphens, and a top-level label that is not
// numeric.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || !allIn(l, "-") {
			return false
		}
	}
	return !isDigits(labels[len(labels)-1])
}

func validAddress(v string, _ Options) result {
	if hasBadRune(v, false) {
		return fail(RuleControlChar, "must not contain control characters")
	}
	switch n := runeLen(v); {
	case n < 4:
		return fail(RuleMinLength, "must be at least 4 characters")
	case n > 200:
		return fail(RuleMaxLength, "must be at most 200 characters")
	}
	return ok(v)
}

func validPostalCode(v string, _ Options) result {
	v = narrow(v)
	if len(v) != 6 || !isDigits(v) {
		return fail(RulePostalCodeFormat, "must be 6 digits")
	}
	return ok(v)
}
