// Package webhook signs and verifies custos webhook requests. custos signs
// every event it POSTs to a registered recipient (and every message it
// hands to an SMS or e-mail gateway) with HMAC-SHA256 under the
// recipient's secret; a receiver verifies with Verify before acting.
//
// The scheme follows Stripe's: the signed message is the decimal Unix
// timestamp, a ".", and the exact request body, so a captured request
// cannot be replayed later (the timestamp is checked against a tolerance)
// nor altered (the body is covered). Headers:
//
//	Custos-Event-Id:  evt_…           (the same on every retry: deduplicate on it)
//	Custos-Timestamp: 1767225600      (seconds since the Unix epoch)
//	Custos-Signature: v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>
//
// Custos-Signature may carry several comma-separated v1= values (one per
// secret while a secret is being rotated); a request is genuine if any
// matches. The package imports only the standard library so that
// receivers can vendor it.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderEventID   = "Custos-Event-Id"
	HeaderTimestamp = "Custos-Timestamp"
	HeaderSignature = "Custos-Signature"
)

// DefaultTolerance is how far a request's timestamp may be from the
// receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify.
var (
	ErrNoSignature  = errors.New("webhook: missing timestamp or signature header")
	ErrBadTimestamp = errors.New("webhook: timestamp outside the tolerance")
	ErrBadSignature = errors.New("webhook: signature does not match")
)

// Sign returns the Custos-Signature value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, strconv.FormatInt(ts.Unix(), 10), body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// SetHeaders sets the id, timestamp and signature headers on h.
func SetHeaders(h http.Header, secret []byte, eventID string, ts time.Time, body []byte) {
	if eventID != "" {
		h.Set(HeaderEventID, eventID)
	}
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
}

// Verify checks that body with headers h was signed with secret at a time
// within tolerance of now (DefaultTolerance when tolerance <= 0). The
// comparison is constant-time. It returns nil, ErrNoSignature,
// ErrBadTimestamp or ErrBadSignature.
func Verify(secret []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	tsText, sigs := h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if tsText == "" || sigs == "" {
		return ErrNoSignature
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return ErrBadTimestamp
	}
	want := mac(secret, tsText, body)
	for _, s := range strings.Split(sigs, ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(s), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}

// URLError is returned by CheckURL; Rule is "url" or "https".
type URLError struct{ Rule, Detail string }

func (e *URLError) Error() string { return "webhook: " + e.Rule + ": " + e.Detail }

// CheckURL accepts an absolute https URL, or http to a loopback host (for
// a gateway or receiver on the same machine, and tests): anything sent
// elsewhere crosses a network and must be encrypted.
func CheckURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || (p.Scheme != "https" && p.Scheme != "http") || p.User != nil {
		return &URLError{Rule: "url", Detail: "an absolute https URL without credentials"}
	}
	if p.Scheme == "http" {
		ip := net.ParseIP(p.Hostname())
		if p.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return &URLError{Rule: "https", Detail: "plain http only to a loopback host"}
		}
	}
	return nil
}
