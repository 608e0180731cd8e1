package validate

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// Decoded size limits of the "base64" validator (biometric templates).
const (
	base64MinBytes = 16
	base64MaxBytes = 16384
)

// validBase64 accepts standard base64, padded or not (line breaks are
// ignored), of 16–16384 decoded bytes, normalised to padded standard form.
func validBase64(v string, _ Options) result {
	// 4 characters per 3 bytes, plus generous room for line breaks.
	if len(v) > base64MaxBytes*4/3*2 {
		return fail(RuleMaxLength, "must decode to at most 16384 bytes")
	}
	b, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(v)
	}
	switch {
	case err != nil:
		return fail(RuleBase64Format, "must be standard base64")
	case len(b) < base64MinBytes:
		return fail(RuleMinLength, "must decode to at least 16 bytes")
	case len(b) > base64MaxBytes:
		return fail(RuleMaxLength, "must decode to at most 16384 bytes")
	}
	return ok(base64.StdEncoding.EncodeToString(b))
}

// textMaxLen is the default maximum length of free text in runes.
const textMaxLen = 1000

// validText accepts free text of 1..Options.MaxLen runes (default 1000):
// newlines (CRLF is normalised to LF) and tabs are allowed, other control
// characters are not.
func validText(v string, o Options) result {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	if hasBadRune(v, true) {
		return fail(RuleControlChar, "must not contain control characters other than newline and tab")
	}
	limit := o.MaxLen
	if limit <= 0 {
		limit = textMaxLen
	}
	if runeLen(v) > limit {
		return fail(RuleMaxLength, fmt.Sprintf("must be at most %d characters", limit))
	}
	return ok(v)
}

func validDeviceID(v string, _ Options) result {
	if len(v) < 8 || len(v) > 128 || !allIn(v, "-:_.") {
		return fail(RuleDeviceIDFormat, "must be 8 to 128 letters, digits, - : _ and .")
	}
	return ok(v)
}

// validIP accepts an IPv4 or IPv6 address without zone. IPv4-mapped IPv6
// addresses are unmapped, so ::ffff:192.0.2.1 and 192.0.2.1 are one value.
func validIP(v string, _ Options) result {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return fail(RuleIPFormat, "must be an IPv4 or IPv6 address")
	}
	return ok(a.Unmap().String())
}

// validGeo accepts "lat,lng" in decimal degrees and normalises it to six
// decimal places (about 0.1 m).
func validGeo(v string, _ Options) result {
	bad := fail(RuleGeoFormat, "must be latitude,longitude in decimal degrees")
	latS, lngS, found := strings.Cut(v, ",")
	if !found {
		return bad
	}
	lat, ok1 := parseDegrees(strings.TrimSpace(latS))
	lng, ok2 := parseDegrees(strings.TrimSpace(lngS))
	if !ok1 || !ok2 {
		return bad
	}
	if lat < -90 || lat > 90 || lng < -180 || lng > 180 {
		return fail(RuleGeoRange, "latitude must be within ±90 and longitude within ±180")
	}
	return ok(formatDegrees(lat) + "," + formatDegrees(lng))
}

// parseDegrees parses [+-]D{1,3}[.D{1,15}]: plain decimals only, so no
// exponents, hex floats, NaN or infinities.
func parseDegrees(s string) (float64, bool) {
	t := strings.TrimLeft(s, "+-")
	if len(s)-len(t) > 1 {
		return 0, false
	}
	intPart, frac, hasFrac := strings.Cut(t, ".")
	if len(intPart) < 1 || len(intPart) > 3 || !isDigits(intPart) ||
		hasFrac && (len(frac) < 1 || len(frac) > 15 || !isDigits(frac)) {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func formatDegrees(f float64) string {
	f = math.Round(f*1e6) / 1e6
	if f == 0 {
		f = 0 // no "-0.000000"
	}
	return strconv.FormatFloat(f, 'f', 6, 64)
}
