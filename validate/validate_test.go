package validate_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"custos"
	"custos/validate"
)

// now is the reference time of every test: 2026-03-15 10:00 in Beijing.
var now = time.Date(2026, 3, 15, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

var gender = []string{"male", "female", "other", "undisclosed"}

// withCheck appends the computed check character to the 17 digits first17.
func withCheck(first17 string) string {
	return first17 + string(validate.ResidentIDCheckChar(first17))
}

// testCase is one validator call. want is the normalised value when rule
// is "", otherwise the expected rule.
type testCase struct {
	name      string
	validator string
	in        string
	opts      validate.Options
	want      string
	rule      string
}

var cases = []testCase{
	// name
	{name: "chinese name", validator: "name", in: "张三丰", want: "张三丰"},
	{name: "latin name collapsed", validator: "name", in: "  Li   Lei ", want: "Li Lei"},
	{name: "transliterated with middle dot", validator: "name", in: "阿沛·阿旺晋美", want: "阿沛·阿旺晋美"},
	{name: "apostrophe and hyphen", validator: "name", in: "Mary O'Brien-Smith", want: "Mary O'Brien-Smith"},
	{name: "accented", validator: "name", in: "José Núñez", want: "José Núñez"},
	{name: "ideographic space trimmed", validator: "name", in: "\u3000王五\u3000", want: "王五"},
	{name: "digit inside", validator: "name", in: "张3", rule: "name_format"},
	{name: "full-width digit", validator: "name", in: "张３", rule: "name_format"},
	{name: "starts with hyphen", validator: "name", in: "-Li", rule: "name_format"},
	{name: "symbol", validator: "name", in: "Li@Lei", rule: "name_format"},
	{name: "newline", validator: "name", in: "Li\nLei", rule: "control_char"},
	{name: "bidi override", validator: "name", in: "Li\u202eLei", rule: "control_char"},
	{name: "65 runes", validator: "name", in: strings.Repeat("张", 65), rule: "max_length"},
	{name: "64 runes", validator: "name", in: strings.Repeat("张", 64), want: strings.Repeat("张", 64)},
	{name: "name empty", validator: "name", in: "  ", rule: "required"},

	// enum
	{name: "enum member", validator: "enum", in: "female", opts: validate.Options{Enum: gender}, want: "female"},
	{name: "enum trimmed", validator: "enum", in: " male ", opts: validate.Options{Enum: gender}, want: "male"},
	{name: "enum case-sensitive", validator: "enum", in: "Male", opts: validate.Options{Enum: gender}, rule: "enum"},
	{name: "enum not listed", validator: "enum", in: "unknown", opts: validate.Options{Enum: gender}, rule: "enum"},
	{name: "enum not configured", validator: "enum", in: "male", rule: "enum"},

	// birth_date
	{name: "birth date", validator: "birth_date", in: "1990-05-17", want: "1990-05-17"},
	{name: "leap day", validator: "birth_date", in: "2000-02-29", want: "2000-02-29"},
	{name: "today", validator: "birth_date", in: "2026-03-15", want: "2026-03-15"},
	{name: "tomorrow", validator: "birth_date", in: "2026-03-16", rule: "date_in_future"},
	{name: "1900-01-01", validator: "birth_date", in: "1900-01-01", want: "1900-01-01"},
	{name: "before 1900", validator: "birth_date", in: "1899-12-31", rule: "date_too_early"},
	{name: "february 30", validator: "birth_date", in: "1999-02-30", rule: "date_not_exist"},
	{name: "1900 not leap", validator: "birth_date", in: "1900-02-29", rule: "date_not_exist"},
	{name: "month 13", validator: "birth_date", in: "1990-13-01", rule: "date_not_exist"},
	{name: "no padding", validator: "birth_date", in: "1990-5-17", rule: "date_format"},
	{name: "compact", validator: "birth_date", in: "19900517", rule: "date_format"},
	{name: "slashes", validator: "birth_date", in: "1990/05/17", rule: "date_format"},

	// ethnicity
	{name: "han", validator: "ethnicity", in: "汉族", want: "汉族"},
	{name: "without 族", validator: "ethnicity", in: "汉", want: "汉族"},
	{name: "mongol short", validator: "ethnicity", in: "蒙古", want: "蒙古族"},
	{name: "tujia vs tu", validator: "ethnicity", in: "土家", want: "土家族"},
	{name: "tu", validator: "ethnicity", in: "土", want: "土族"},
	{name: "other", validator: "ethnicity", in: "其他", want: "其他"},
	{name: "colloquial abbreviation", validator: "ethnicity", in: "蒙族", rule: "ethnicity"},
	{name: "english", validator: "ethnicity", in: "Han", rule: "ethnicity"},
	{name: "double 族", validator: "ethnicity", in: "汉族族", rule: "ethnicity"},

	// country
	{name: "lower case", validator: "country", in: "cn", want: "CN"},
	{name: "upper case", validator: "country", in: "US", want: "US"},
	{name: "not assigned", validator: "country", in: "XX", rule: "country_code"},
	{name: "UK is reserved, not assigned", validator: "country", in: "UK", rule: "country_code"},
	{name: "alpha-3", validator: "country", in: "CHN", rule: "country_code"},

	// resident_id
	{name: "RULES example X", validator: "resident_id", in: "11010519491231002X", want: "11010519491231002X"},
	{name: "RULES example 1880", validator: "resident_id", in: "440524188001015368", want: "440524188001015368"},
	{name: "lower-case x", validator: "resident_id", in: "11010519491231002x", want: "11010519491231002X"},
	{name: "spaces", validator: "resident_id", in: " 110105 19491231 002X ", want: "11010519491231002X"},
	{name: "full-width", validator: "resident_id", in: "１１０１０５１９４９１２３１００２Ｘ", want: "11010519491231002X"},
	{name: "wrong check X→1", validator: "resident_id", in: "110105194912310021", rule: "resident_id_checksum"},
	{name: "wrong check 8→7", validator: "resident_id", in: "440524188001015367", rule: "resident_id_checksum"},
	{name: "typo in body", validator: "resident_id", in: "11010519491231003X", rule: "resident_id_checksum"},
	{name: "february 30", validator: "resident_id", in: withCheck("11010519990230123"), rule: "date_not_exist"},
	{name: "future birth", validator: "resident_id", in: withCheck("11010520260316123"), rule: "date_in_future"},
	{name: "born today", validator: "resident_id", in: withCheck("11010520260315123"), want: withCheck("11010520260315123")},
	{name: "unknown province", validator: "resident_id", in: withCheck("99010519491231002"), rule: "resident_id_area"},
	{name: "17 chars", validator: "resident_id", in: "11010519491231002", rule: "resident_id_format"},
	{name: "legacy 15 digits", validator: "resident_id", in: "110105491231002", rule: "resident_id_format"},
	{name: "X inside", validator: "resident_id", in: "1101051949123100XX", rule: "resident_id_format"},
	{name: "19 chars", validator: "resident_id", in: "11010519491231002X1", rule: "resident_id_format"},

	// passport
	{name: "ordinary E", validator: "passport", in: "E12345678", want: "E12345678"},
	{name: "lower case", validator: "passport", in: "g12345678", want: "G12345678"},
	{name: "e-passport letter series", validator: "passport", in: "EA1234567", want: "EA1234567"},
	{name: "e-passport 10 chars", validator: "passport", in: "EA12345678", want: "EA12345678"},
	{name: "foreign", validator: "passport", in: "X1234567", want: "X1234567"},
	{name: "foreign digits", validator: "passport", in: "123456789", want: "123456789"},
	{name: "no digit", validator: "passport", in: "ABCDEFGH", rule: "passport_format"},
	{name: "too short", validator: "passport", in: "E1234", rule: "passport_format"},
	{name: "too long", validator: "passport", in: "1234567890", rule: "passport_format"},
	{name: "hyphen", validator: "passport", in: "E1234-5678", rule: "passport_format"},

	// mobile
	{name: "11 digits", validator: "mobile", in: "13812345678", want: "+8613812345678"},
	{name: "+86 with spaces", validator: "mobile", in: "+86 138 1234 5678", want: "+8613812345678"},
	{name: "hyphens", validator: "mobile", in: "138-1234-5678", want: "+8613812345678"},
	{name: "86 without plus", validator: "mobile", in: "8613812345678", want: "+8613812345678"},
	{name: "normalised", validator: "mobile", in: "+8613812345678", want: "+8613812345678"},
	{name: "full-width", validator: "mobile", in: "１３８１２３４５６７８", want: "+8613812345678"},
	{name: "154 unallocated", validator: "mobile", in: "15412345678", rule: "mobile_format"},
	{name: "second digit 2", validator: "mobile", in: "12345678901", rule: "mobile_format"},
	{name: "10 digits", validator: "mobile", in: "1381234567", rule: "mobile_format"},
	{name: "12 digits", validator: "mobile", in: "138123456789", rule: "mobile_format"},
	{name: "other country code", validator: "mobile", in: "+8513812345678", rule: "mobile_format"},
	{name: "landline", validator: "mobile", in: "010-12345678", rule: "mobile_format"},

	// landline
	{name: "beijing", validator: "landline", in: "010-62345678", want: "010-62345678"},
	{name: "no separator", validator: "landline", in: "01062345678", want: "010-62345678"},
	{name: "parentheses", validator: "landline", in: "(0755)8765432", want: "0755-8765432"},
	{name: "space", validator: "landline", in: "0755 87654321", want: "0755-87654321"},
	{name: "+86 no trunk 0", validator: "landline", in: "+86 10 62345678", want: "010-62345678"},
	{name: "+86 hyphens", validator: "landline", in: "+86-21-62345678", want: "021-62345678"},
	{name: "0086 with trunk 0", validator: "landline", in: "0086 021 62345678", want: "021-62345678"},
	{name: "extension", validator: "landline", in: "021-62345678-123", want: "021-62345678-123"},
	{name: "extension 转", validator: "landline", in: "021-62345678转123", want: "021-62345678-123"},
	{name: "extension ext.", validator: "landline", in: "021-62345678 ext. 12", want: "021-62345678-12"},
	{name: "mobile", validator: "landline", in: "13812345678", rule: "landline_format"},
	{name: "no area code", validator: "landline", in: "62345678", rule: "landline_format"},
	{name: "area 011", validator: "landline", in: "011-62345678", rule: "landline_format"},
	{name: "6-digit local", validator: "landline", in: "0755-876543", rule: "landline_format"},
	{name: "local starts with 1", validator: "landline", in: "0755-12345678", rule: "landline_format"},
	{name: "extension too long", validator: "landline", in: "021-62345678-1234567", rule: "landline_format"},
	{name: "letters", validator: "landline", in: "021-6234567a", rule: "landline_format"},

	// email
	{name: "domain lower-cased", validator: "email", in: "Zhang.San@Example.COM", want: "Zhang.San@example.com"},
	{name: "plus tag", validator: "email", in: "z+shop@mail.example.cn", want: "z+shop@mail.example.cn"},
	{name: "punycode domain", validator: "email", in: "z@xn--fiqs8s.cn", want: "z@xn--fiqs8s.cn"},
	{name: "display name", validator: "email", in: "Zhang San <z@example.com>", rule: "email_format"},
	{name: "angle brackets", validator: "email", in: "<z@example.com>", rule: "email_format"},
	{name: "two @", validator: "email", in: "z@@example.com", rule: "email_format"},
	{name: "no dot in domain", validator: "email", in: "z@localhost", rule: "email_format"},
	{name: "empty label", validator: "email", in: "z@example..com", rule: "email_format"},
	{name: "leading hyphen label", validator: "email", in: "z@-example.com", rule: "email_format"},
	{name: "quoted local part", validator: "email", in: `"z s"@example.com`, rule: "email_format"},
	{name: "numeric tld", validator: "email", in: "z@10.0.0.1", rule: "email_format"},
	{name: "non-ascii", validator: "email", in: "张@example.com", rule: "email_format"},
	{name: "double dot local", validator: "email", in: "z..s@example.com", rule: "email_format"},
	{name: "local 65", validator: "email", in: strings.Repeat("a", 65) + "@example.com", rule: "email_format"},
	{name: "255 chars", validator: "email", in: "a@" + strings.Repeat("b", 249) + ".com", rule: "max_length"},

	// address
	{name: "address", validator: "address", in: "北京市朝阳区建国路88号", want: "北京市朝阳区建国路88号"},
	{name: "4 runes", validator: "address", in: "朝阳公园", want: "朝阳公园"},
	{name: "3 runes", validator: "address", in: "朝阳区", rule: "min_length"},
	{name: "201 runes", validator: "address", in: strings.Repeat("路", 201), rule: "max_length"},
	{name: "newline", validator: "address", in: "北京市\n朝阳区", rule: "control_char"},
	{name: "bidi isolate", validator: "address", in: "北京市\u2066朝阳区", rule: "control_char"},

	// postal_code
	{name: "postal code", validator: "postal_code", in: "100020", want: "100020"},
	{name: "full-width", validator: "postal_code", in: "１０００２０", want: "100020"},
	{name: "5 digits", validator: "postal_code", in: "10002", rule: "postal_code_format"},
	{name: "7 digits", validator: "postal_code", in: "1000200", rule: "postal_code_format"},
	{name: "letter", validator: "postal_code", in: "10002A", rule: "postal_code_format"},

	// member_no
	{name: "upper-cased", validator: "member_no", in: "vip-0001", want: "VIP-0001"},
	{name: "3 chars", validator: "member_no", in: "V01", rule: "member_no_format"},
	{name: "underscore", validator: "member_no", in: "VIP_0001", rule: "member_no_format"},
	{name: "33 chars", validator: "member_no", in: strings.Repeat("A", 33), rule: "member_no_format"},

	// username
	{name: "username", validator: "username", in: "li.lei_01-x", want: "li.lei_01-x"},
	{name: "case kept", validator: "username", in: "LiLei", want: "LiLei"},
	{name: "2 chars", validator: "username", in: "li", rule: "min_length"},
	{name: "33 chars", validator: "username", in: "a" + strings.Repeat("b", 32), rule: "max_length"},
	{name: "starts with digit", validator: "username", in: "1lilei", rule: "username_format"},
	{name: "space", validator: "username", in: "li lei", rule: "username_format"},
	{name: "chinese", validator: "username", in: "李雷abc", rule: "username_format"},

	// password
	{name: "lower and digit", validator: "password", in: "abcdefg1", want: "abcdefg1"},
	{name: "spaces kept", validator: "password", in: "  abcdefg1  ", want: "  abcdefg1  "},
	{name: "han and digits", validator: "password", in: "密码密码密码12", want: "密码密码密码12"},
	{name: "one class", validator: "password", in: "abcdefgh", rule: "password_strength"},
	{name: "han only", validator: "password", in: "密码密码密码密码", rule: "password_strength"},
	{name: "7 runes", validator: "password", in: "Abcdef1", rule: "min_length"},
	{name: "129 runes", validator: "password", in: "A" + strings.Repeat("a", 128), rule: "max_length"},
	{name: "NUL", validator: "password", in: "abcdefg\x001", rule: "control_char"},
	{name: "blank", validator: "password", in: "        ", rule: "required"},

	// security_answer
	{name: "folded", validator: "security_answer", in: "  Beijing \t  Zoo ", want: "beijing zoo"},
	{name: "chinese", validator: "security_answer", in: "北京 动物园", want: "北京 动物园"},
	{name: "bell", validator: "security_answer", in: "a\x07b", rule: "control_char"},
	{name: "129 runes", validator: "security_answer", in: strings.Repeat("答", 129), rule: "max_length"},

	// bank_card
	{name: "RULES example", validator: "bank_card", in: "6222021234567890128", want: "6222021234567890128"},
	{name: "grouped", validator: "bank_card", in: "6222 0212 3456 7890 128", want: "6222021234567890128"},
	{name: "last digit changed", validator: "bank_card", in: "6222021234567890129", rule: "luhn"},
	{name: "two digits swapped", validator: "bank_card", in: "6222021234567890218", rule: "luhn"},
	{name: "11 digits", validator: "bank_card", in: "62220212345", rule: "bank_card_format"},
	{name: "20 digits", validator: "bank_card", in: "62220212345678901280", rule: "bank_card_format"},
	{name: "letter", validator: "bank_card", in: "6222a21234567890128", rule: "bank_card_format"},

	// payment_account
	{name: "mobile", validator: "payment_account", in: "138 1234 5678", want: "+8613812345678"},
	{name: "email", validator: "payment_account", in: "Zhang@Example.com", want: "Zhang@example.com"},
	{name: "platform id", validator: "payment_account", in: "wxid_abc123", want: "wxid_abc123"},
	{name: "numeric id", validator: "payment_account", in: "1234567890123", want: "1234567890123"},
	{name: "too short", validator: "payment_account", in: "abc", rule: "payment_account_format"},
	{name: "space", validator: "payment_account", in: "abc def", rule: "payment_account_format"},
	{name: "154 mobile", validator: "payment_account", in: "15412345678", rule: "mobile_format"},
	{name: "bad email", validator: "payment_account", in: "a@b", rule: "email_format"},

	// base64
	{name: "16 bytes padded", validator: "base64", in: "AAECAwQFBgcICQoLDA0ODw==", want: "AAECAwQFBgcICQoLDA0ODw=="},
	{name: "16 bytes raw", validator: "base64", in: "AAECAwQFBgcICQoLDA0ODw", want: "AAECAwQFBgcICQoLDA0ODw=="},
	{name: "line breaks", validator: "base64", in: "AAECAwQFBgcI\r\nCQoLDA0ODw==", want: "AAECAwQFBgcICQoLDA0ODw=="},
	{name: "15 bytes", validator: "base64", in: "AAECAwQFBgcICQoLDA0O", rule: "min_length"},
	{name: "16385 bytes", validator: "base64", in: strings.Repeat("AAAA", 5462), rule: "max_length"},
	{name: "16384 bytes", validator: "base64", in: strings.Repeat("AAAA", 5461) + "AA==", want: strings.Repeat("AAAA", 5461) + "AA=="},
	{name: "url alphabet", validator: "base64", in: "AAECAwQFBgcICQoLDA0OD-_", rule: "base64_format"},
	{name: "garbage", validator: "base64", in: "not base64 at all!", rule: "base64_format"},

	// text
	{name: "multi-line", validator: "text", in: "头痛\n需要休息", want: "头痛\n需要休息"},
	{name: "CRLF", validator: "text", in: "a\r\nb", want: "a\nb"},
	{name: "tab inside", validator: "text", in: "a\tb", want: "a\tb"},
	{name: "lone CR", validator: "text", in: "a\rb", rule: "control_char"},
	{name: "NUL", validator: "text", in: "a\x00b", rule: "control_char"},
	{name: "max_len 5", validator: "text", in: "123456", opts: validate.Options{MaxLen: 5}, rule: "max_length"},
	{name: "max_len 5 ok", validator: "text", in: "12345", opts: validate.Options{MaxLen: 5}, want: "12345"},
	{name: "default 1000", validator: "text", in: strings.Repeat("字", 1001), rule: "max_length"},

	// device_id
	{name: "device id", validator: "device_id", in: "A1B2-C3D4:E5_f.6", want: "A1B2-C3D4:E5_f.6"},
	{name: "7 chars", validator: "device_id", in: "abcdefg", rule: "device_id_format"},
	{name: "space", validator: "device_id", in: "abcd efgh", rule: "device_id_format"},
	{name: "129 chars", validator: "device_id", in: strings.Repeat("a", 129), rule: "device_id_format"},

	// ip
	{name: "ipv4", validator: "ip", in: "192.168.0.1", want: "192.168.0.1"},
	{name: "mapped", validator: "ip", in: "::FFFF:192.168.0.1", want: "192.168.0.1"},
	{name: "ipv6 canonical", validator: "ip", in: "2001:0DB8:0000::0001", want: "2001:db8::1"},
	{name: "octet 256", validator: "ip", in: "256.1.1.1", rule: "ip_format"},
	{name: "leading zero", validator: "ip", in: "01.2.3.4", rule: "ip_format"},
	{name: "zone", validator: "ip", in: "fe80::1%eth0", rule: "ip_format"},
	{name: "with port", validator: "ip", in: "1.2.3.4:80", rule: "ip_format"},

	// geo
	{name: "beijing", validator: "geo", in: "39.9042,116.4074", want: "39.904200,116.407400"},
	{name: "spaces", validator: "geo", in: " 39.9042 , 116.4074 ", want: "39.904200,116.407400"},
	{name: "signs", validator: "geo", in: "+1.5,-2.25", want: "1.500000,-2.250000"},
	{name: "rounded", validator: "geo", in: "-33.86881234,151.20929999", want: "-33.868812,151.209300"},
	{name: "negative zero", validator: "geo", in: "-0.0000001,0", want: "0.000000,0.000000"},
	{name: "poles", validator: "geo", in: "-90,180", want: "-90.000000,180.000000"},
	{name: "latitude 91", validator: "geo", in: "91,0", rule: "geo_range"},
	{name: "longitude 181", validator: "geo", in: "0,181", rule: "geo_range"},
	{name: "exponent", validator: "geo", in: "1e1,2", rule: "geo_format"},
	{name: "NaN", validator: "geo", in: "NaN,1", rule: "geo_format"},
	{name: "one number", validator: "geo", in: "39.9042", rule: "geo_format"},
	{name: "three numbers", validator: "geo", in: "1,2,3", rule: "geo_format"},
	{name: "double sign", validator: "geo", in: "--1,2", rule: "geo_format"},
}

func TestValidators(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.validator+"/"+tc.name, func(t *testing.T) {
			f, ok := validate.Lookup(tc.validator)
			if !ok {
				t.Fatalf("Lookup(%q) not found", tc.validator)
			}
			opts := tc.opts
			if opts.Now.IsZero() {
				opts.Now = now
			}
			got, rule, detail := f(tc.in, opts)
			if rule != tc.rule {
				t.Fatalf("rule = %q (%s), want %q", rule, detail, tc.rule)
			}
			if tc.rule == "" {
				if got != tc.want || detail != "" {
					t.Fatalf("got %q, %q, want %q", got, detail, tc.want)
				}
				return
			}
			if got != "" {
				t.Errorf("failed validation returned value %q", got)
			}
			if detail == "" {
				t.Error("failed validation without detail")
			}
			if v := strings.TrimSpace(tc.in); utf8.RuneCountInString(v) >= 4 && strings.Contains(detail, v) {
				t.Errorf("detail %q contains the value", detail)
			}
		})
	}
}

func TestEmptyAndEncoding(t *testing.T) {
	for _, name := range validate.Names() {
		f, _ := validate.Lookup(name)
		for _, tc := range []struct {
			name string
			in   string
			rule string
		}{
			{name: "empty", in: "", rule: "required"},
			{name: "white space", in: " \t\n\u3000", rule: "required"},
			{name: "invalid UTF-8", in: "ab\xffcd", rule: "encoding"},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				got, rule, detail := f(tc.in, validate.Options{Enum: gender, Now: now})
				if rule != tc.rule || got != "" || detail == "" {
					t.Errorf("got %q, %q, %q, want rule %q", got, rule, detail, tc.rule)
				}
			})
		}
	}
}

func TestNames(t *testing.T) {
	want := []string{"address", "bank_card", "base64", "birth_date", "country", "device_id", "email",
		"enum", "ethnicity", "geo", "ip", "landline", "member_no", "mobile", "name", "passport",
		"password", "payment_account", "postal_code", "resident_id", "security_answer", "text", "username"}
	got := validate.Names()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if _, ok := validate.Lookup("nope"); ok {
		t.Error(`Lookup("nope") found a validator`)
	}
}

// TestCatalogValidators checks that every validator the default catalog
// names exists and that the table above covers each of them.
func TestCatalogValidators(t *testing.T) {
	c := custos.DefaultCatalog()
	if err := validate.CheckCatalog(c); err != nil {
		t.Fatalf("CheckCatalog(default) = %v", err)
	}
	tested := map[string]bool{}
	for _, tc := range cases {
		tested[tc.validator] = true
	}
	for _, f := range c.Fields {
		if !tested[f.Validator] {
			t.Errorf("validator %q of field %s has no table test", f.Validator, f.Name)
		}
	}

	bad := *c.Field("mobile")
	bad.Validator = "telephone"
	broken := &custos.Catalog{Fields: []custos.FieldDef{bad}}
	if err := validate.CheckCatalog(broken); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("CheckCatalog(unknown validator) = %v, want EINVALID", err)
	}
	noEnum := *c.Field("gender")
	noEnum.Enum = nil
	if err := validate.CheckCatalog(&custos.Catalog{Fields: []custos.FieldDef{noEnum}}); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("CheckCatalog(enum without values) = %v, want EINVALID", err)
	}
}

func TestField(t *testing.T) {
	c := custos.DefaultCatalog()
	tests := []struct {
		name  string
		field string
		in    string
		want  string
		rule  string
	}{
		{name: "mobile", field: "mobile", in: "138 1234 5678", want: "+8613812345678"},
		{name: "gender from catalog enum", field: "gender", in: "female", want: "female"},
		{name: "gender not in enum", field: "gender", in: "robot", rule: "enum"},
		{name: "health note max_len from catalog", field: "health_note", in: strings.Repeat("病", c.Field("health_note").MaxLen+1), rule: "max_length"},
		{name: "birth date uses now", field: "birth_date", in: "2026-03-16", rule: "date_in_future"},
		{name: "bad id", field: "id_number", in: "110105194912310021", rule: "resident_id_checksum"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, v := validate.Field(c.Field(tc.field), tc.in, now)
			if tc.rule == "" {
				if v != nil || got != tc.want {
					t.Fatalf("got %q, %+v, want %q", got, v, tc.want)
				}
				return
			}
			if v == nil {
				t.Fatalf("got %q, want violation %q", got, tc.rule)
			}
			if v.Field != tc.field || v.Rule != tc.rule || strings.Contains(v.Detail, tc.in) {
				t.Errorf("violation %+v, want field %q rule %q", *v, tc.field, tc.rule)
			}
		})
	}

	_, v := validate.Field(&custos.FieldDef{Name: "x", Validator: "nope"}, "value", now)
	if v == nil || v.Rule != validate.RuleUnknownValidator {
		t.Errorf("unknown validator: violation %+v", v)
	}
}

// TestAllEthnicGroups lists the 56 groups independently of the package.
func TestAllEthnicGroups(t *testing.T) {
	groups := strings.Fields(`汉 蒙古 回 藏 维吾尔 苗 彝 壮 布依 朝鲜 满 侗 瑶 白 土家 哈尼 哈萨克 傣 黎 傈僳
		佤 畲 高山 拉祜 水 东乡 纳西 景颇 柯尔克孜 土 达斡尔 仫佬 羌 布朗 撒拉 毛南 仡佬 锡伯 阿昌 普米
		塔吉克 怒 乌孜别克 俄罗斯 鄂温克 德昂 保安 裕固 京 塔塔尔 独龙 鄂伦春 赫哲 门巴 珞巴 基诺`)
	if len(groups) != 56 {
		t.Fatalf("test list has %d groups", len(groups))
	}
	f, _ := validate.Lookup("ethnicity")
	for _, g := range groups {
		for _, in := range []string{g, g + "族"} {
			if got, rule, _ := f(in, validate.Options{}); rule != "" || got != g+"族" {
				t.Errorf("ethnicity(%q) = %q, %q, want %q", in, got, rule, g+"族")
			}
		}
	}
}

// TestCountryCount checks that exactly the 249 assigned codes pass among
// all 676 two-letter combinations.
func TestCountryCount(t *testing.T) {
	f, _ := validate.Lookup("country")
	n := 0
	for a := 'A'; a <= 'Z'; a++ {
		for b := 'A'; b <= 'Z'; b++ {
			if _, rule, _ := f(string([]rune{a, b}), validate.Options{}); rule == "" {
				n++
			}
		}
	}
	if n != 249 {
		t.Errorf("%d codes accepted, want 249", n)
	}
}

func TestResidentIDHelpers(t *testing.T) {
	tests := []struct {
		name   string
		id     string
		birth  string // "" when no date
		gender string
	}{
		{name: "RULES example X", id: "11010519491231002X", birth: "1949-12-31", gender: "female"},
		{name: "RULES example 1880", id: "440524188001015368", birth: "1880-01-01", gender: "female"},
		{name: "odd sequence", id: withCheck("11010519491231001"), birth: "1949-12-31", gender: "male"},
		{name: "legacy 15 digits", id: "110105491231001", birth: "1949-12-31", gender: "male"},
		{name: "february 30", id: withCheck("11010519990230123"), birth: "", gender: "male"},
		{name: "wrong length", id: "1101051949", birth: "", gender: ""},
		{name: "letter as sequence", id: "1101051949123100AX", birth: "1949-12-31", gender: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := validate.ResidentIDBirthDate(tc.id)
			got := ""
			if ok {
				got = d.Format("2006-01-02")
			}
			if got != tc.birth {
				t.Errorf("ResidentIDBirthDate = %q, %v, want %q", got, ok, tc.birth)
			}
			if g := validate.ResidentIDGender(tc.id); g != tc.gender {
				t.Errorf("ResidentIDGender = %q, want %q", g, tc.gender)
			}
		})
	}

	checks := []struct {
		name    string
		first17 string
		want    byte
	}{
		{name: "X", first17: "11010519491231002", want: 'X'},
		{name: "digit", first17: "44052418800101536", want: '8'},
		{name: "16 digits", first17: "1101051949123100", want: 0},
		{name: "letter", first17: "1101051949123100A", want: 0},
	}
	for _, tc := range checks {
		t.Run("check/"+tc.name, func(t *testing.T) {
			if got := validate.ResidentIDCheckChar(tc.first17); got != tc.want {
				t.Errorf("ResidentIDCheckChar = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLuhn(t *testing.T) {
	tests := []struct {
		name   string
		digits string
		valid  bool
	}{
		{name: "RULES card", digits: "6222021234567890128", valid: true},
		{name: "textbook", digits: "79927398713", valid: true},
		{name: "textbook changed", digits: "79927398710", valid: false},
		{name: "one digit", digits: "0", valid: false},
		{name: "empty", digits: "", valid: false},
		{name: "non-digit", digits: "7992739871a", valid: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validate.LuhnValid(tc.digits); got != tc.valid {
				t.Errorf("LuhnValid = %v, want %v", got, tc.valid)
			}
		})
	}
	checks := []struct {
		name    string
		payload string
		want    byte
	}{
		{name: "textbook", payload: "7992739871", want: '3'},
		{name: "RULES card", payload: "622202123456789012", want: '8'},
		{name: "zero check", payload: "0", want: '0'},
		{name: "empty", payload: "", want: 0},
		{name: "letter", payload: "12a", want: 0},
	}
	for _, tc := range checks {
		t.Run("check/"+tc.name, func(t *testing.T) {
			if got := validate.LuhnCheckDigit(tc.payload); got != tc.want {
				t.Errorf("LuhnCheckDigit = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUSCC(t *testing.T) {
	tests := []struct {
		name  string
		code  string
		valid bool
	}{
		{name: "RULES example", code: "91310110666007217T", valid: true},
		{name: "lower case", code: "91310110666007217t", valid: true},
		{name: "check changed", code: "91310110666007217U", valid: false},
		{name: "body changed", code: "91310110666007218T", valid: false},
		{name: "17 chars", code: "91310110666007217", valid: false},
		{name: "letter I not allowed", code: "9131011066600721IT", valid: false},
		{name: "empty", code: "", valid: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validate.USCCValid(tc.code); got != tc.valid {
				t.Errorf("USCCValid = %v, want %v", got, tc.valid)
			}
		})
	}
}
