// Package validate checks and normalises the raw values of catalog fields
// (names, resident ID numbers, mobiles, bank cards …) before they are sealed
// and blind-indexed.
//
// Every validator is a Func, found by the validator name a catalog field
// declares (see catalog_default.json). A validator trims surrounding white
// space, refuses an empty value with RuleRequired and returns the normalised
// form that is stored and indexed, so two spellings of one value (a mobile
// with or without +86, a resident ID with a lower-case x) index alike.
//
// On failure a validator returns a stable snake_case rule name and a short
// English detail. Neither ever contains the value: both end up in API error
// bodies, logs and audit entries, where the value must not appear.
//
// The package is pure: no I/O and no clock except Options.Now.
package validate

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"custos"
)

// Func validates and normalises one raw value. On success it returns the
// normalised value and empty rule and detail. On failure it returns an
// empty normalised value, a rule name (one of the Rule constants) and a
// short English detail; neither contains the value.
type Func func(value string, def Options) (normalized string, rule string, detail string)

// Options carries the per-field settings a validator may use.
type Options struct {
	// Enum lists the allowed values for the "enum" validator. Matching is
	// exact (case-sensitive) after trimming.
	Enum []string
	// MaxLen is the maximum length in runes for free text ("text");
	// 0 means the validator's default.
	MaxLen int
	// Now is the reference time for "not in the future" checks on dates;
	// the zero value means time.Now().
	Now time.Time
}

func (o Options) now() time.Time {
	if o.Now.IsZero() {
		return time.Now()
	}
	return o.Now
}

// Rule names returned by validators. They are stable: API clients and the
// console translate them.
const (
	RuleRequired           = "required"             // empty after trimming
	RuleEncoding           = "encoding"             // not valid UTF-8
	RuleMinLength          = "min_length"           // too short
	RuleMaxLength          = "max_length"           // too long
	RuleControlChar        = "control_char"         // control or bidi-override characters
	RuleEnum               = "enum"                 // not one of Options.Enum
	RuleNameFormat         = "name_format"          // digits, symbols … in a personal name
	RuleDateFormat         = "date_format"          // not YYYY-MM-DD
	RuleDateNotExist       = "date_not_exist"       // e.g. February 30
	RuleDateInFuture       = "date_in_future"       // after Options.Now
	RuleDateTooEarly       = "date_too_early"       // before 1900
	RuleEthnicity          = "ethnicity"            // not one of the 56 ethnic groups or 其他
	RuleCountryCode        = "country_code"         // not an ISO 3166-1 alpha-2 code
	RuleResidentIDFormat   = "resident_id_format"   // not 17 digits + digit or X
	RuleResidentIDArea     = "resident_id_area"     // unknown province code
	RuleResidentIDChecksum = "resident_id_checksum" // ISO 7064 MOD 11-2 check failed
	RulePassportFormat     = "passport_format"
	RuleMobileFormat       = "mobile_format"
	RuleLandlineFormat     = "landline_format"
	RuleEmailFormat        = "email_format"
	RulePostalCodeFormat   = "postal_code_format"
	RuleMemberNoFormat     = "member_no_format"
	RuleUsernameFormat     = "username_format"
	RulePasswordStrength   = "password_strength" // fewer than 2 character classes
	RuleBankCardFormat     = "bank_card_format"
	RuleLuhn               = "luhn" // bank card check digit wrong
	RulePaymentAccount     = "payment_account_format"
	RuleBase64Format       = "base64_format"
	RuleDeviceIDFormat     = "device_id_format"
	RuleIPFormat           = "ip_format"
	RuleGeoFormat          = "geo_format"
	RuleGeoRange           = "geo_range"         // latitude or longitude out of range
	RuleUnknownValidator   = "unknown_validator" // the catalog names no known validator
)

// result is what an inner validator returns.
type result struct{ value, rule, detail string }

func ok(v string) result              { return result{value: v} }
func fail(rule, detail string) result { return result{rule: rule, detail: detail} }
func (r result) triple() (string, string, string) {
	if r.rule != "" {
		return "", r.rule, r.detail
	}
	return r.value, "", ""
}

// trimmed wraps an inner validator that receives a valid-UTF-8, trimmed,
// non-empty value.
func trimmed(f func(v string, o Options) result) Func {
	return func(value string, o Options) (string, string, string) {
		if !utf8.ValidString(value) {
			return "", RuleEncoding, "must be valid UTF-8"
		}
		v := strings.TrimSpace(value)
		if v == "" {
			return "", RuleRequired, "must not be empty"
		}
		return f(v, o).triple()
	}
}

// untrimmed wraps an inner validator that must see the value exactly as
// given (passwords): only emptiness is judged on the trimmed form.
func untrimmed(f func(v string, o Options) result) Func {
	return func(value string, o Options) (string, string, string) {
		if !utf8.ValidString(value) {
			return "", RuleEncoding, "must be valid UTF-8"
		}
		if strings.TrimSpace(value) == "" {
			return "", RuleRequired, "must not be empty"
		}
		return f(value, o).triple()
	}
}

var registry = map[string]Func{
	"name":            trimmed(validName),
	"enum":            trimmed(validEnum),
	"birth_date":      trimmed(validBirthDate),
	"ethnicity":       trimmed(validEthnicity),
	"country":         trimmed(validCountry),
	"resident_id":     trimmed(validResidentID),
	"passport":        trimmed(validPassport),
	"mobile":          trimmed(validMobile),
	"landline":        trimmed(validLandline),
	"email":           trimmed(validEmail),
	"address":         trimmed(validAddress),
	"postal_code":     trimmed(validPostalCode),
	"member_no":       trimmed(validMemberNo),
	"username":        trimmed(validUsername),
	"password":        untrimmed(validPassword),
	"security_answer": trimmed(validSecurityAnswer),
	"bank_card":       trimmed(validBankCard),
	"payment_account": trimmed(validPaymentAccount),
	"base64":          trimmed(validBase64),
	"text":            trimmed(validText),
	"device_id":       trimmed(validDeviceID),
	"ip":              trimmed(validIP),
	"geo":             trimmed(validGeo),
}

// Lookup returns the validator with the given name, as named by a catalog
// field's "validator".
func Lookup(name string) (Func, bool) {
	f, ok := registry[name]
	return f, ok
}

// Names returns the names of all validators, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Field validates value for the catalog field def at time now (the zero
// time means time.Now()). It returns the normalised value, or a Violation
// naming the field and the rule; the Violation never carries the value.
// A field whose validator is unknown is refused with RuleUnknownValidator.
func Field(def *custos.FieldDef, value string, now time.Time) (string, *custos.Violation) {
	f, found := Lookup(def.Validator)
	if !found {
		return "", &custos.Violation{Field: def.Name, Rule: RuleUnknownValidator, Detail: "the field has no known validator"}
	}
	norm, rule, detail := f(value, Options{Enum: def.Enum, MaxLen: def.MaxLen, Now: now})
	if rule != "" {
		return "", &custos.Violation{Field: def.Name, Rule: rule, Detail: detail}
	}
	return norm, nil
}

// CheckCatalog returns an EINVALID error naming the first field of c whose
// validator is unknown, or an "enum" field without allowed values. Call it
// once when a catalog is loaded.
func CheckCatalog(c *custos.Catalog) error {
	for _, f := range c.Fields {
		if _, found := Lookup(f.Validator); !found {
			return custos.Errorf(custos.EINVALID, "catalog: field %s: unknown validator %q", f.Name, f.Validator)
		}
		if f.Validator == "enum" && len(f.Enum) == 0 {
			return custos.Errorf(custos.EINVALID, "catalog: field %s: enum validator without allowed values", f.Name)
		}
	}
	return nil
}
