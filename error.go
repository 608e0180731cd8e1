// Package custos holds the domain types and service interfaces of custos, a
// customer-data protection vault. It imports only the standard library.
//
// Adapters (sqlite/, http/, keys/ …) implement or consume these interfaces;
// business rules live in core/ and policy/.
package custos

import (
	"errors"
	"fmt"
)

// Error codes. Each maps to one HTTP status in http/ and to one problem type.
const (
	EINVALID      = "invalid"      // bad input; Violations name the fields and rules
	ENOTFOUND     = "not_found"    // no such object (or erased)
	ECONFLICT     = "conflict"     // duplicate; ConflictID names the existing object
	EUNAUTHORIZED = "unauthorized" // no or unknown credentials
	EFORBIDDEN    = "forbidden"    // known principal, action not allowed
	ENOCONSENT    = "no_consent"   // the subject's consent does not cover the purpose
	ESEALED       = "sealed"       // keys are not available
	EINTERNAL     = "internal"     // anything else; never shown in detail
	ETOOLARGE     = "too_large"    // request body or batch too large
	ERATELIMIT    = "rate_limited" // too many attempts; retry later
	EUNAVAILABLE  = "unavailable"  // a dependency (notifier, …) is not configured or failed; retry later
)

// Violation is one reason a value was refused. It never carries the value.
type Violation struct {
	Field  string `json:"field"`
	Rule   string `json:"rule"`
	Detail string `json:"detail,omitempty"`
}

// Error is the one error type custos returns across package boundaries.
// Message is safe to show to users and never contains personal data or
// secrets; Err holds the cause for logs and is never rendered.
type Error struct {
	Code       string
	Message    string
	Violations []Violation
	ConflictID string // for ECONFLICT: the id of the existing object
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a user-safe message.
// Never format personal data into it.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error listing violations.
func Invalid(msg string, vs ...Violation) *Error {
	return &Error{Code: EINVALID, Message: msg, Violations: vs}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err, or "Internal error.".
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}

// AsError returns the first *Error in err's chain, or nil.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
