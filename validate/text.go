package validate

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// narrow maps full-width ASCII forms (U+FF01–U+FF5E, common in Chinese
// input methods) and the ideographic space to their ASCII equivalents, so
// "１３８…" validates like "138…".
func narrow(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r >= 0xFF01 && r <= 0xFF5E || r == 0x3000 }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFF01 + '!'
		case r == 0x3000:
			return ' '
		}
		return r
	}, s)
}

// strip removes every rune in cut from s.
func strip(s, cut string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune(cut, r) {
			return -1
		}
		return r
	}, s)
}

// badRune reports runes refused in free text: control characters (except
// newline and tab when allowNL), bidirectional overrides and isolates (they
// let a value display as something else), line/paragraph separators and the
// byte order mark.
func badRune(r rune, allowNL bool) bool {
	switch {
	case allowNL && (r == '\n' || r == '\t'):
		return false
	case unicode.IsControl(r):
		return true
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069, r == 0x200E, r == 0x200F:
		return true
	case r == 0x2028, r == 0x2029, r == 0xFEFF:
		return true
	}
	return false
}

func hasBadRune(s string, allowNL bool) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return badRune(r, allowNL) })
}

// collapseSpace replaces each run of white space with one ASCII space.
func collapseSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func runeLen(s string) int { return utf8.RuneCountInString(s) }

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

// allIn reports whether s is non-empty and every byte of s is an ASCII
// letter, digit or one of extra.
func allIn(s, extra string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isASCIIAlnum(c) || strings.IndexByte(extra, c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func isASCIIAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isASCIILetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
