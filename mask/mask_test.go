package mask_test

import (
	"slices"
	"strings"
	"testing"

	"custos"
	"custos/mask"
)

var cases = []struct {
	name string
	rule string
	in   string
	want string
}{
	{name: "none", rule: "none", in: "13812345678", want: "13812345678"},
	{name: "full", rule: "full", in: "correct horse battery staple", want: "******"},
	{name: "full short", rule: "full", in: "a", want: "******"},
	{name: "unknown rule", rule: "nope", in: "13812345678", want: "******"},

	{name: "RULES chinese name", rule: "name", in: "张三丰", want: "张**"},
	{name: "two-character name", rule: "name", in: "张三", want: "张*"},
	{name: "latin name", rule: "name", in: "Li Lei", want: "L*****"},
	{name: "one rune", rule: "name", in: "张", want: "******"},

	{name: "RULES mobile", rule: "mobile", in: "13812341234", want: "138****1234"},
	{name: "normalised mobile", rule: "mobile", in: "+8613812345678", want: "138****5678"},
	{name: "mobile spaced", rule: "mobile", in: "+86 138 1234 5678", want: "138****5678"},
	{name: "3-digit mobile", rule: "mobile", in: "138", want: "******"},
	{name: "10-digit mobile", rule: "mobile", in: "1381234567", want: "******"},
	{name: "letters", rule: "mobile", in: "1381234567a", want: "******"},

	{name: "RULES resident id", rule: "resident_id", in: "11010519491231002X", want: "110105********002X"},
	{name: "resident id 17", rule: "resident_id", in: "11010519491231002", want: "******"},
	{name: "resident id non-ascii", rule: "resident_id", in: "１１０１０５１９４９１２３１", want: "******"},
	{name: "resident id short", rule: "resident_id_short", in: "11010519491231002X", want: "1****************X"},
	{name: "resident id short wrong length", rule: "resident_id_short", in: "1101051949", want: "******"},

	{name: "passport", rule: "first1_last1", in: "E12345678", want: "E****8"},
	{name: "first1_last1 4 runes", rule: "first1_last1", in: "abcd", want: "a****d"},
	{name: "first1_last1 3 runes", rule: "first1_last1", in: "abc", want: "******"},
	{name: "payment account mobile", rule: "first1_last1", in: "+8613812345678", want: "+****8"},

	{name: "device id", rule: "first4", in: "A1B2C3D4E5F6", want: "A1B2****"},
	{name: "first4 7 runes", rule: "first4", in: "A1B2C3D", want: "******"},
	{name: "landline", rule: "last4", in: "010-62345678", want: "****5678"},
	{name: "last4 7 runes", rule: "last4", in: "2345678", want: "******"},

	{name: "RULES bank card", rule: "bank_card", in: "6222021234567890128", want: "**** **** **** 0128"},
	{name: "grouped card", rule: "bank_card", in: "6222 0212 3456 7890 128", want: "**** **** **** 0128"},
	{name: "card too short", rule: "bank_card", in: "12345678901", want: "******"},
	{name: "card with letters", rule: "bank_card", in: "6222a21234567890128", want: "******"},

	{name: "RULES address", rule: "address", in: "北京市朝阳区建国路88号", want: "北京市朝阳区******"},
	{name: "province city district", rule: "address", in: "广东省深圳市南山区科技园", want: "广东省深圳市南山区******"},
	{name: "new district", rule: "address", in: "上海市浦东新区世纪大道100号", want: "上海市浦东新区******"},
	{name: "county-level city", rule: "address", in: "江苏省苏州市昆山市玉山镇1号", want: "江苏省苏州市昆山市******"},
	{name: "autonomous region and prefecture", rule: "address", in: "新疆维吾尔自治区阿克苏地区库车县新城路5号", want: "新疆维吾尔自治区阿克苏地区库车县******"},
	{name: "autonomous prefecture", rule: "address", in: "湖北省恩施土家族苗族自治州恩施市舞阳大道", want: "湖北省恩施土家族苗族自治州恩施市******"},
	{name: "banner", rule: "address", in: "内蒙古自治区阿拉善盟阿拉善左旗巴彦浩特镇", want: "内蒙古自治区阿拉善盟阿拉善左旗******"},
	{name: "city without districts", rule: "address", in: "广东省东莞市长安镇振安路", want: "广东省东莞市******"},
	{name: "no province", rule: "address", in: "深圳市南山区科技园", want: "深圳市南山区******"},
	{name: "district only", rule: "address", in: "朝阳区建国路88号", want: "朝阳区******"},
	{name: "nothing after district", rule: "address", in: "北京市朝阳区", want: "北京市******"},
	{name: "no marker", rule: "address", in: "123 Main Street", want: "123******"},
	{name: "short no marker", rule: "address", in: "建国路8", want: "******"},
	{name: "hong kong", rule: "address", in: "香港特别行政区中西区皇后大道中1号", want: "香港特别行政区中西区******"},

	{name: "RULES email", rule: "email", in: "zhangsan@example.com", want: "z***@example.com"},
	{name: "one-rune local part", rule: "email", in: "z@example.com", want: "***@example.com"},
	{name: "no @", rule: "email", in: "zhangsan.example.com", want: "******"},
	{name: "two @", rule: "email", in: "a@b@example.com", want: "******"},
	{name: "empty local part", rule: "email", in: "@example.com", want: "******"},

	{name: "RULES ipv4", rule: "ip", in: "192.168.1.20", want: "192.*.*.*"},
	{name: "ipv6", rule: "ip", in: "2001:db8::1", want: "2001:*"},
	{name: "mapped ipv4", rule: "ip", in: "::ffff:10.1.2.3", want: "10.*.*.*"},
	{name: "not an ip", rule: "ip", in: "localhost", want: "******"},

	{name: "birth date", rule: "date_year", in: "1990-05-17", want: "1990-**-**"},
	{name: "not a date", rule: "date_year", in: "19900517", want: "******"},

	{name: "invalid UTF-8", rule: "name", in: "张\xff三丰", want: "******"},
	{name: "invalid UTF-8 none", rule: "none", in: "\xff", want: "\xff"},
}

func TestApply(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.rule+"/"+tc.name, func(t *testing.T) {
			if got := mask.Apply(tc.rule, tc.in); got != tc.want {
				t.Errorf("Apply(%q, %q) = %q, want %q", tc.rule, tc.in, got, tc.want)
			}
		})
	}
}

// TestRulesCoverCatalog checks that every mask the default catalog names
// exists and has table cases.
func TestRulesCoverCatalog(t *testing.T) {
	tested := map[string]bool{}
	for _, tc := range cases {
		tested[tc.rule] = true
	}
	for _, r := range mask.Rules() {
		if !tested[r] {
			t.Errorf("rule %q has no table case", r)
		}
	}
	rules := mask.Rules()
	for _, f := range custos.DefaultCatalog().Fields {
		if !slices.Contains(rules, f.Mask) {
			t.Errorf("field %s: mask %q unknown", f.Name, f.Mask)
		}
	}
	if !slices.IsSorted(rules) || len(rules) != 14 {
		t.Errorf("Rules() = %v", rules)
	}
}

// FuzzMask applies every rule: none may panic, and none but "none" may
// return an input of 6 or more runes whole. Inputs containing '*' are not
// checked for containment: a value that already looks masked is its own
// masked form.
func FuzzMask(f *testing.F) {
	for _, tc := range cases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, rule := range mask.Rules() {
			got := mask.Apply(rule, in)
			if rule == "none" {
				if got != in {
					t.Errorf("none(%q) = %q", in, got)
				}
				continue
			}
			if len([]rune(in)) >= 6 && !strings.Contains(in, "*") && strings.Contains(got, in) {
				t.Errorf("%s(%q) = %q reveals the whole input", rule, in, got)
			}
		}
	})
}
