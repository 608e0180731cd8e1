package validate

import "strings"

// LuhnValid reports whether digits, at least two ASCII digits, ends in a
// correct Luhn (ISO/IEC 7812-1) check digit.
func LuhnValid(digits string) bool {
	if len(digits) < 2 || !isDigits(digits) {
		return false
	}
	return luhnSum(digits, false)%10 == 0
}

// LuhnCheckDigit returns the Luhn check digit ('0'–'9') to append to
// payload, or 0 if payload is empty or not all ASCII digits.
func LuhnCheckDigit(payload string) byte {
	if !isDigits(payload) {
		return 0
	}
	return byte('0' + (10-luhnSum(payload, true)%10)%10)
}

// luhnSum sums s from the right, doubling every second digit; doubleFirst
// says whether the rightmost digit is doubled (true when s lacks its check
// digit).
func luhnSum(s string, doubleFirst bool) int {
	sum, double := 0, doubleFirst
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

func validBankCard(v string, _ Options) result {
	v = strip(narrow(v), " -")
	if len(v) < 12 || len(v) > 19 || !isDigits(v) {
		return fail(RuleBankCardFormat, "must be 12 to 19 digits")
	}
	if !LuhnValid(v) {
		return fail(RuleLuhn, "the check digit does not match")
	}
	return ok(v)
}

// validPaymentAccount accepts the account of a payment platform (Alipay,
// WeChat Pay …): an e-mail address or a mobile number, normalised as by
// "email" and "mobile", or a platform ID of 6–64 letters, digits, _ . and -.
func validPaymentAccount(v string, o Options) result {
	if strings.Contains(v, "@") {
		return validEmail(v, o)
	}
	if _, found := mobileDigits(v); found {
		return validMobile(v, o)
	}
	if len(v) < 6 || len(v) > 64 || !allIn(v, "_.-") {
		return fail(RulePaymentAccount, "must be an e-mail address, a mobile number or 6 to 64 letters, digits, _ . and -")
	}
	return ok(v)
}

// usccAlphabet is the character set of unified social credit codes; its
// index is a character's value.
const usccAlphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"

var usccWeights = [17]int{1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28}

// USCCValid reports whether code is a unified social credit code
// (统一社会信用代码, GB 32100-2015) with a correct check character: 18
// characters over 0-9 and A-Y without I, O, S, V and Z, the last being
// 31 − (Σ value×weight mod 31), with 31 written as 0. Lower-case letters are
// accepted.
func USCCValid(code string) bool {
	code = strings.ToUpper(code)
	if len(code) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		n := strings.IndexByte(usccAlphabet, code[i])
		if n < 0 {
			return false
		}
		sum += n * usccWeights[i]
	}
	return code[17] == usccAlphabet[(31-sum%31)%31]
}
