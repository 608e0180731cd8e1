package http

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"custos"
)

// codes maps custos error codes to HTTP statuses, once.
var codes = map[string]int{
	custos.EINVALID:      http.StatusUnprocessableEntity,
	custos.ENOTFOUND:     http.StatusNotFound,
	custos.ECONFLICT:     http.StatusConflict,
	custos.EUNAUTHORIZED: http.StatusUnauthorized,
	custos.EFORBIDDEN:    http.StatusForbidden,
	custos.ENOCONSENT:    http.StatusForbidden,
	custos.ESEALED:       http.StatusServiceUnavailable,
	custos.ETOOLARGE:     http.StatusRequestEntityTooLarge,
	custos.ERATELIMIT:    http.StatusTooManyRequests,
	custos.EUNAVAILABLE:  http.StatusServiceUnavailable,
	custos.EINTERNAL:     http.StatusInternalServerError,
}

// TimeUpMessage answers a request whose time ran out inside custos.
const TimeUpMessage = "The request's time ran out while custos was busy. Retry later."

// RetryAfterUnavailable is the Retry-After (seconds) sent with an
// EUNAVAILABLE answer.
const RetryAfterUnavailable = "5"

// ProblemTypeBase prefixes every problem type URI (RFC 9457 §3.1.1).
const ProblemTypeBase = "https://custos.dev/problems/"

// Problem is an RFC 9457 problem document. It never carries a submitted
// value: only field names, rule names and safe messages.
type Problem struct {
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Status     int                `json:"status"`
	Detail     string             `json:"detail,omitempty"`
	Instance   string             `json:"instance,omitempty"`
	Code       string             `json:"code"`
	Errors     []custos.Violation `json:"errors,omitempty"`
	ExistingID string             `json:"existing_id,omitempty"`
	RequestID  string             `json:"request_id,omitempty"`
}

// Error writes err as a problem document. Only EINTERNAL is logged at
// error level, with its cause; its message is never shown to the client.
func Error(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	code := custos.ErrorCode(err)
	if code == custos.EINTERNAL && errors.Is(err, context.DeadlineExceeded) && errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		// The request's own time (RequestTimeout) ran out inside custos:
		// the node is overloaded, which the client may retry, not a fault.
		err = &custos.Error{Code: custos.EUNAVAILABLE, Message: TimeUpMessage, Err: err}
		code = custos.EUNAVAILABLE
	}
	p := problem(r, err)
	status := p.Status
	switch {
	case code == custos.EINTERNAL && errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away (or gave up waiting) before the answer:
		// nothing failed in custos, and nobody reads this answer.
		logger.Info("client went away before the answer", "request_id", p.RequestID, "method", r.Method, "path", r.URL.Path)
	case code == custos.EINTERNAL || code == custos.ESEALED:
		// The cause may name internals but never personal data: values
		// are never formatted into errors anywhere in custos.
		logger.Error("request failed", "request_id", p.RequestID, "code", code, "err", err)
	case code == custos.EUNAVAILABLE:
		// Refused for now (a busy store, a missing dependency): worth an
		// operator's look when it repeats, and the client may retry.
		logger.Warn("request refused for now", "request_id", p.RequestID, "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", RetryAfterUnavailable)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(p); err != nil {
		logger.Debug("writing problem failed", "request_id", p.RequestID, "err", err)
	}
}

// problem is err as a problem document: its status, stable code, safe
// message and violations, never a value.
func problem(r *http.Request, err error) Problem {
	code := custos.ErrorCode(err)
	status, ok := codes[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	p := Problem{Type: ProblemTypeBase + code, Title: http.StatusText(status), Status: status, Code: code,
		Detail: custos.ErrorMessage(err), RequestID: custos.RequestIDFromContext(r.Context())}
	if e := custos.AsError(err); e != nil {
		p.Errors, p.ExistingID = e.Violations, e.ConflictID
	}
	return p
}
