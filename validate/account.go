package validate

import (
	"strings"
	"unicode"
)

func validMemberNo(v string, _ Options) result {
	if len(v) < 4 || len(v) > 32 || !allIn(v, "-") {
		return fail(RuleMemberNoFormat, "must be 4 to 32 letters, digits or hyphens")
	}
	return ok(strings.ToUpper(v))
}

func validUsername(v string, _ Options) result {
	switch {
	case len(v) < 3:
		return fail(RuleMinLength, "must be at least 3 characters")
	case len(v) > 32:
		return fail(RuleMaxLength, "must be at most 32 characters")
	case !isASCIILetter(v[0]):
		return fail(RuleUsernameFormat, "must start with a letter")
	case !allIn(v, "_.-"):
		return fail(RuleUsernameFormat, "must contain only letters, digits, _ . and -")
	}
	return ok(v)
}

// validPassword checks a password exactly as given: it is hashed, so any
// change here would have to be repeated at every login. Surrounding spaces
// are therefore kept and count towards the length.
func validPassword(v string, _ Options) result {
	if hasBadRune(v, false) {
		return fail(RuleControlChar, "must not contain control characters")
	}
	switch n := runeLen(v); {
	case n < 8:
		return fail(RuleMinLength, "must be at least 8 characters")
	case n > 128:
		return fail(RuleMaxLength, "must be at most 128 characters")
	}
	var lower, upper, digit, other int
	for _, r := range v {
		switch {
		case unicode.IsLower(r):
			lower = 1
		case unicode.IsUpper(r):
			upper = 1
		case unicode.IsDigit(r):
			digit = 1
		default:
			other = 1
		}
	}
	if lower+upper+digit+other < 2 {
		return fail(RulePasswordStrength, "must mix at least two of: lower case, upper case, digits, symbols")
	}
	return ok(v)
}

// validSecurityAnswer lower-cases the answer and collapses white space
// (tabs and newlines included) so that "  Beijing  Zoo" and "beijing zoo"
// hash alike.
func validSecurityAnswer(v string, _ Options) result {
	if hasBadRune(v, true) {
		return fail(RuleControlChar, "must not contain control characters")
	}
	v = collapseSpace(strings.ToLower(v))
	if runeLen(v) > 128 {
		return fail(RuleMaxLength, "must be at most 128 characters")
	}
	return ok(v)
}
