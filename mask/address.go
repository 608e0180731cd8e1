package mask

import "strings"

// Chinese addresses run from the largest unit to the smallest: province
// (省, 自治区, or a municipality 北京/天津/上海/重庆), prefecture (市, 地区,
// 盟, 自治州), district or county (区, 县, 市, 旗), then street and number.
// The address rule keeps everything down to the district and hides the rest.
// The search windows keep a 市 in a street name (…路市场) far from the
// start out of the kept part.
const (
	provinceWindow = 12 // 新疆维吾尔自治区 is 8 runes
	cityWindow     = 12 // 克孜勒苏柯尔克孜自治州 is 11
	districtWindow = 16 // 积石山保安族东乡族撒拉族自治县 is 15
)

var (
	municipalities = []string{"北京", "天津", "上海", "重庆", "香港", "澳门"}
	provinceEnds   = []string{"特别行政区", "自治区", "省"}
	cityEnds       = []string{"自治州", "地区", "市", "盟"}
	districtEnds   = []string{"区", "县", "市", "旗"}
)

// maskAddress keeps the address down to the district (广东省深圳市南山区******).
// Without a recognisable district it keeps the province and city part, and
// without that the first 3 runes. The kept part is always shorter than the
// value; a value under 6 runes with no shorter prefix is fully masked.
func maskAddress(v string) string {
	r := []rune(v)
	if keep := addressPrefix(r); keep > 0 && keep < len(r) {
		return string(r[:keep]) + FullMask
	}
	if len(r) >= 6 {
		return string(r[:3]) + FullMask
	}
	return FullMask
}

// addressPrefix returns how many runes of r name the district or, failing
// that, the province and city; 0 if none is recognised.
func addressPrefix(r []rune) int {
	i := provinceEnd(r)
	if j := findEnd(r, i, cityWindow, cityEnds); j > 0 {
		i = j
	}
	if j := findEnd(r, i, districtWindow, districtEnds); j > 0 {
		return j
	}
	return i
}

// provinceEnd returns the index just after the province-level part of r, or
// 0. A municipality also ends the city level, so its 市 is consumed here.
func provinceEnd(r []rune) int {
	s := string(r)
	for _, m := range municipalities {
		if strings.HasPrefix(s, m) {
			n := 2
			if rest := r[2:]; len(rest) > 0 && rest[0] == '市' {
				n = 3
			} else if strings.HasPrefix(string(rest), "特别行政区") {
				n += 5
			}
			return n
		}
	}
	if j := findEnd(r, 0, provinceWindow, provinceEnds); j > 0 {
		return j
	}
	return 0
}

// findEnd returns the index just after the earliest occurrence in r[from:]
// of any of ends that finishes within window runes of from, or 0 if none
// does. The unit's name must have at least one rune before the marker.
func findEnd(r []rune, from, window int, ends []string) int {
	best := 0
	limit := min(len(r), from+window)
	for _, e := range ends {
		er := []rune(e)
		for k := from + 1; k+len(er) <= limit; k++ {
			if string(r[k:k+len(er)]) == e {
				if end := k + len(er); best == 0 || end < best {
					best = end
				}
				break
			}
		}
	}
	return best
}
