package validate

import (
	"slices"
	"strings"
	"time"
	"unicode"
)

// nameSeparators may appear inside a personal name: the middle dot of
// transliterated names (阿沛·阿旺晋美) and its common look-alikes, and the
// hyphen, apostrophe and full stop of Latin names.
const nameSeparators = "·•・‧.-'’"

func validName(v string, _ Options) result {
	if hasBadRune(v, false) {
		return fail(RuleControlChar, "must not contain control characters")
	}
	v = collapseSpace(v)
	if runeLen(v) > 64 {
		return fail(RuleMaxLength, "must be at most 64 characters")
	}
	for i, r := range v {
		switch {
		case unicode.IsLetter(r):
		case i == 0:
			return fail(RuleNameFormat, "must start with a letter")
		case unicode.IsMark(r), r == ' ', strings.ContainsRune(nameSeparators, r):
		default:
			return fail(RuleNameFormat, "must contain only letters, spaces and name separators")
		}
	}
	return ok(v)
}

func validEnum(v string, o Options) result {
	if len(o.Enum) == 0 {
		return fail(RuleEnum, "no allowed values are configured")
	}
	if !slices.Contains(o.Enum, v) {
		return fail(RuleEnum, "must be one of the allowed values")
	}
	return ok(v)
}

// parseDate parses a strict YYYY-MM-DD (or, with compact, YYYYMMDD) date.
// It returns the rule that failed, if any.
func parseDate(s string, compact bool) (time.Time, string) {
	layout := "2006-01-02"
	if compact {
		layout = "20060102"
	}
	if len(s) != len(layout) {
		return time.Time{}, RuleDateFormat
	}
	for i := 0; i < len(s); i++ {
		if layout[i] == '-' {
			if s[i] != '-' {
				return time.Time{}, RuleDateFormat
			}
		} else if s[i] < '0' || s[i] > '9' {
			return time.Time{}, RuleDateFormat
		}
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		// The shape is right, so the day or month does not exist.
		return time.Time{}, RuleDateNotExist
	}
	return t, ""
}

// afterToday reports whether the calendar date d (UTC midnight) is after
// the calendar day of now in now's location.
func afterToday(d, now time.Time) bool {
	y, m, day := now.Date()
	return d.After(time.Date(y, m, day, 0, 0, 0, 0, time.UTC))
}

func validBirthDate(v string, o Options) result {
	d, rule := parseDate(v, false)
	switch rule {
	case RuleDateFormat:
		return fail(rule, "must be a date in the form YYYY-MM-DD")
	case RuleDateNotExist:
		return fail(rule, "the date does not exist")
	}
	if d.Year() < 1900 {
		return fail(RuleDateTooEarly, "must not be before 1900")
	}
	if afterToday(d, o.now()) {
		return fail(RuleDateInFuture, "must not be in the future")
	}
	return ok(v)
}

// ethnicGroups are the 56 ethnic groups officially recognised in China, in
// the order of GB/T 3304, plus 其他 (other).
var ethnicGroups = []string{
	"汉族", "蒙古族", "回族", "藏族", "维吾尔族", "苗族", "彝族", "壮族", "布依族", "朝鲜族",
	"满族", "侗族", "瑶族", "白族", "土家族", "哈尼族", "哈萨克族", "傣族", "黎族", "傈僳族",
	"佤族", "畲族", "高山族", "拉祜族", "水族", "东乡族", "纳西族", "景颇族", "柯尔克孜族", "土族",
	"达斡尔族", "仫佬族", "羌族", "布朗族", "撒拉族", "毛南族", "仡佬族", "锡伯族", "阿昌族", "普米族",
	"塔吉克族", "怒族", "乌孜别克族", "俄罗斯族", "鄂温克族", "德昂族", "保安族", "裕固族", "京族", "塔塔尔族",
	"独龙族", "鄂伦春族", "赫哲族", "门巴族", "珞巴族", "基诺族",
	"其他",
}

func validEthnicity(v string, _ Options) result {
	if slices.Contains(ethnicGroups, v) {
		return ok(v)
	}
	if slices.Contains(ethnicGroups, v+"族") {
		return ok(v + "族")
	}
	return fail(RuleEthnicity, "must be one of the 56 ethnic groups, e.g. 汉族, or 其他")
}

func validCountry(v string, _ Options) result {
	v = strings.ToUpper(v)
	if len(v) != 2 || !strings.Contains(countryCodes, " "+v+" ") {
		return fail(RuleCountryCode, "must be an ISO 3166-1 alpha-2 country code such as CN")
	}
	return ok(v)
}

// provinceCodes are the first two digits of the area code of a resident ID
// (GB/T 2260 provinces, plus 71 Taiwan, 81 Hong Kong, 82 Macao and 83 for
// residence permits of Taiwan residents).
var provinceCodes = []string{
	"11", "12", "13", "14", "15",
	"21", "22", "23",
	"31", "32", "33", "34", "35", "36", "37",
	"41", "42", "43", "44", "45", "46",
	"50", "51", "52", "53", "54",
	"61", "62", "63", "64", "65",
	"71", "81", "82", "83",
}

var residentIDWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// ResidentIDCheckChar returns the ISO 7064 MOD 11-2 check character
// ('0'–'9' or 'X') of the first 17 digits of a resident ID number
// (GB 11643-1999), or 0 if first17 is not 17 ASCII digits.
func ResidentIDCheckChar(first17 string) byte {
	if len(first17) != 17 || !isDigits(first17) {
		return 0
	}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * residentIDWeights[i]
	}
	return "10X98765432"[sum%11]
}

// ResidentIDBirthDate returns the birth date (UTC midnight) encoded in a
// resident ID number: 18 characters with the date at positions 7–14, or a
// legacy 15-digit number with YYMMDD at positions 7–12 (taken as 19YY). It
// reports false if the date is missing or does not exist. It does not check
// the check character; validate the number first.
func ResidentIDBirthDate(id string) (time.Time, bool) {
	var s string
	switch len(id) {
	case 18:
		s = id[6:14]
	case 15:
		s = "19" + id[6:12]
	default:
		return time.Time{}, false
	}
	d, rule := parseDate(s, true)
	return d, rule == ""
}

// ResidentIDGender returns "male" or "female" from the parity of the
// sequence number of a resident ID number (odd: male), or "" if id is not
// 18 characters (or legacy 15) with a digit in that position.
func ResidentIDGender(id string) string {
	var c byte
	switch len(id) {
	case 18:
		c = id[16]
	case 15:
		c = id[14]
	default:
		return ""
	}
	if c < '0' || c > '9' {
		return ""
	}
	if (c-'0')%2 == 1 {
		return "male"
	}
	return "female"
}

func validResidentID(v string, o Options) result {
	v = strings.ToUpper(strip(narrow(v), " "))
	if len(v) != 18 || !isDigits(v[:17]) || !(v[17] == 'X' || v[17] >= '0' && v[17] <= '9') {
		return fail(RuleResidentIDFormat, "must be 18 characters: 17 digits and a digit or X")
	}
	if ResidentIDCheckChar(v[:17]) != v[17] {
		return fail(RuleResidentIDChecksum, "the check character does not match")
	}
	if !slices.Contains(provinceCodes, v[:2]) {
		return fail(RuleResidentIDArea, "the area code names no province")
	}
	d, found := ResidentIDBirthDate(v)
	if !found {
		return fail(RuleDateNotExist, "the birth date in the number does not exist")
	}
	if afterToday(d, o.now()) {
		return fail(RuleDateInFuture, "the birth date in the number is in the future")
	}
	return ok(v)
}

func validPassport(v string, _ Options) result {
	v = strings.ToUpper(narrow(v))
	if !allIn(v, "") {
		return fail(RulePassportFormat, "must contain only letters and digits")
	}
	switch {
	case len(v) == 9 && strings.IndexByte("EGPSD", v[0]) >= 0 && isDigits(v[1:]):
		// Chinese passport: E/G (ordinary), P (public affairs), S (service),
		// D (diplomatic) + 8 digits.
	case (len(v) == 9 || len(v) == 10) && v[0] == 'E' && isASCIILetter(v[1]) && isDigits(v[2:]):
		// Chinese e-passport of the newer series: E + letter + 7 or 8 digits.
	case len(v) >= 6 && len(v) <= 9 && strings.ContainsAny(v, "0123456789"):
		// Foreign passport: ICAO 9303 document numbers have up to 9 characters.
	default:
		return fail(RulePassportFormat, "must be a passport number of 6 to 9 letters and digits")
	}
	return ok(v)
}
