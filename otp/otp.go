// Package otp issues and checks the one-time codes that verify a
// customer's identity before anything is disclosed or changed (R7).
//
// A code is 6 decimal digits from crypto/rand. Only an HMAC-SHA256 of it,
// bound to its challenge id, is stored, so a copy of the database reveals
// no code; checking uses a constant-time comparison. A challenge lives for
// Limits.TTL (10 minutes), allows Limits.MaxAttempts wrong codes (5) and
// then is dead, and is used once. Issuing is rate-limited per subject (5
// an hour) and per client address (20 an hour); the counts are rows in the
// store, read under a store lock (Tx.LockKey), so the limits hold across
// every node on one PostgreSQL. Client addresses are kept only as an HMAC.
//
// The Manager works inside the caller's store transaction, so that core
// can audit the issue or the check in the same transaction. Verify reports
// a wrong code as a Result, not an error, so that the caller commits the
// counted attempt; the caller returns Result.Err() after committing.
package otp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"time"

	"custos"
)

// Limits are the one-time code settings.
type Limits struct {
	TTL         time.Duration // a code's lifetime
	MaxAttempts int           // wrong codes before the challenge is dead
	PerSubject  int           // challenges per subject per Window
	PerClient   int           // challenges per client address per Window
	Window      time.Duration
}

// DefaultLimits: 10 minutes, 5 tries, 5 per subject and 20 per address
// an hour.
func DefaultLimits() Limits {
	return Limits{TTL: 10 * time.Minute, MaxAttempts: 5, PerSubject: 5, PerClient: 20, Window: time.Hour}
}

// Validate names the first bad setting.
func (l Limits) Validate() error {
	switch {
	case l.TTL < time.Minute || l.TTL > time.Hour:
		return fmt.Errorf("otp ttl %v: want 1m to 1h", l.TTL)
	case l.MaxAttempts < 1 || l.MaxAttempts > 10:
		return fmt.Errorf("otp max attempts %d: want 1 to 10", l.MaxAttempts)
	case l.PerSubject < 1 || l.PerClient < 1:
		return fmt.Errorf("otp rate limits %d/%d: want at least 1", l.PerSubject, l.PerClient)
	case l.Window < time.Minute:
		return fmt.Errorf("otp window %v: want at least 1m", l.Window)
	}
	return nil
}

// Digits is the length of a code.
const Digits = 6

// Manager issues and checks codes. Create it with New.
type Manager struct {
	key    []byte
	limits Limits
	// Rand is the randomness for codes and ids; nil is crypto/rand.
	Rand io.Reader
}

// New returns a Manager that HMACs codes and client addresses under key
// (at least 32 bytes; core derives it from the master keys). Zero limits
// fields take the defaults.
func New(key []byte, l Limits) (*Manager, error) {
	if len(key) < 32 {
		return nil, custos.Errorf(custos.EINTERNAL, "One-time code key too short.")
	}
	d := DefaultLimits()
	if l.TTL == 0 {
		l.TTL = d.TTL
	}
	if l.MaxAttempts == 0 {
		l.MaxAttempts = d.MaxAttempts
	}
	if l.PerSubject == 0 {
		l.PerSubject = d.PerSubject
	}
	if l.PerClient == 0 {
		l.PerClient = d.PerClient
	}
	if l.Window == 0 {
		l.Window = d.Window
	}
	if err := l.Validate(); err != nil {
		return nil, &custos.Error{Code: custos.EINVALID, Message: "One-time code limits are not valid.", Err: err}
	}
	return &Manager{key: append([]byte(nil), key...), limits: l}, nil
}

// Limits returns the limits in force.
func (m *Manager) Limits() Limits { return m.limits }

// Request asks for a code.
type Request struct {
	SubjectID custos.SubjectID
	Purpose   string // what the code verifies, e.g. "portal.signin"
	Channel   string // "sms" or "email"
	Client    string // the client address (IP) the request came from
}

func (m *Manager) rand() io.Reader {
	if m.Rand != nil {
		return m.Rand
	}
	return rand.Reader
}

// ClientHash is the HMAC under which a client address is stored.
func (m *Manager) ClientHash(client string) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("custos otp client v1|" + client))
	return h.Sum(nil)
}

func (m *Manager) codeHash(id, code string) []byte {
	h := hmac.New(sha256.New, m.key)
	h.Write([]byte("custos otp code v1|" + id + "|" + code))
	return h.Sum(nil)
}

// NewCode returns Digits uniformly random decimal digits.
func NewCode(r io.Reader) (string, error) {
	n, err := rand.Int(r, big.NewInt(1_000_000))
	if err != nil {
		return "", &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// Issue creates a challenge in tx and returns it with its code, which the
// caller sends (notify) after commit and never stores. It returns
// ERATELIMIT, naming "subject" or "client" in the violation, when the
// subject or the address has had its quota of codes in the window, and
// EINVALID for a request missing a field.
func (m *Manager) Issue(ctx context.Context, tx custos.Tx, req Request) (*custos.OTPChallenge, string, error) {
	var vs []custos.Violation
	if req.SubjectID == "" {
		vs = append(vs, custos.Violation{Field: "subject_id", Rule: "required"})
	}
	if req.Purpose == "" {
		vs = append(vs, custos.Violation{Field: "purpose", Rule: "required"})
	}
	if req.Channel != "sms" && req.Channel != "email" {
		vs = append(vs, custos.Violation{Field: "channel", Rule: "enum", Detail: "sms or email"})
	}
	if len(vs) > 0 {
		return nil, "", custos.Invalid("The code was not sent.", vs...)
	}
	client := m.ClientHash(req.Client)
	// Subject first, then client: one order everywhere, no deadlock.
	if err := tx.LockKey(ctx, "otp-subject|"+string(req.SubjectID)); err != nil {
		return nil, "", err
	}
	if err := tx.LockKey(ctx, "otp-client|"+hex.EncodeToString(client)); err != nil {
		return nil, "", err
	}
	now := tx.Now()
	since := now.Add(-m.limits.Window)
	n, err := tx.CountOTPChallenges(ctx, custos.OTPFilter{SubjectID: req.SubjectID, Since: since})
	if err != nil {
		return nil, "", err
	}
	if n >= m.limits.PerSubject {
		return nil, "", rateLimited("subject", m.limits.PerSubject, m.limits.Window)
	}
	n, err = tx.CountOTPChallenges(ctx, custos.OTPFilter{ClientHash: client, Since: since})
	if err != nil {
		return nil, "", err
	}
	if n >= m.limits.PerClient {
		return nil, "", rateLimited("client", m.limits.PerClient, m.limits.Window)
	}
	code, err := NewCode(m.rand())
	if err != nil {
		return nil, "", err
	}
	c := &custos.OTPChallenge{ID: custos.NewID("otp"), SubjectID: req.SubjectID, Purpose: req.Purpose, Channel: req.Channel,
		ClientHash: client, MaxAttempts: m.limits.MaxAttempts, Status: custos.OTPPending,
		CreatedAt: now, ExpiresAt: now.Add(m.limits.TTL)}
	c.CodeHash = m.codeHash(c.ID, code)
	if err := tx.InsertOTPChallenge(ctx, c); err != nil {
		return nil, "", err
	}
	return c, code, nil
}

func rateLimited(field string, n int, window time.Duration) error {
	return &custos.Error{Code: custos.ERATELIMIT, Message: "Too many codes requested; try again later.",
		Violations: []custos.Violation{{Field: field, Rule: "rate_limit", Detail: fmt.Sprintf("at most %d codes per %v", n, window)}}}
}

// Result is the outcome of Verify.
type Result int

const (
	Verified Result = iota + 1 // the code matched; the challenge is used up
	Wrong                      // the code did not match; attempts remain
	Dead                       // no attempts left (now or before)
	Expired                    // past its lifetime
	Used                       // verified before; a code works once
	Unknown                    // no such challenge
)

func (r Result) String() string {
	return [...]string{"", "verified", "wrong", "dead", "expired", "used", "unknown"}[r]
}

// Err returns nil for Verified and otherwise the error to give the
// customer, which is the same for a wrong, dead, expired, used or unknown
// challenge so that nothing is learnt from it (EFORBIDDEN, field "code").
func (r Result) Err() error {
	if r == Verified {
		return nil
	}
	return &custos.Error{Code: custos.EFORBIDDEN, Message: "The code is wrong or no longer valid; request a new one.",
		Violations: []custos.Violation{{Field: "code", Rule: "otp"}}}
}

// Verify checks code against challenge id in tx. A wrong code counts an
// attempt, and the last allowed wrong code kills the challenge; a right
// code marks it verified. The returned challenge is nil for Unknown. The
// error is only for store failures: the caller commits tx whatever the
// Result (so that attempts are counted), then returns Result.Err().
func (m *Manager) Verify(ctx context.Context, tx custos.Tx, id, code string) (*custos.OTPChallenge, Result, error) {
	if len(id) > 64 {
		return nil, Unknown, nil
	}
	// Serialise checks of one challenge so that concurrent guesses are
	// all counted (PostgreSQL; SQLite serialises writes anyway).
	if err := tx.LockKey(ctx, "otp-challenge|"+id); err != nil {
		return nil, 0, err
	}
	c, err := tx.GetOTPChallenge(ctx, id)
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, Unknown, nil
	} else if err != nil {
		return nil, 0, err
	}
	now := tx.Now()
	switch {
	case c.Status == custos.OTPVerified:
		return c, Used, nil
	case c.Status == custos.OTPDead:
		return c, Dead, nil
	case !now.Before(c.ExpiresAt):
		return c, Expired, nil
	}
	// Hash whatever was sent (length checked only after) so the time
	// taken does not depend on the input's shape.
	ok := hmac.Equal(m.codeHash(c.ID, code), c.CodeHash) && len(code) == Digits
	res := Verified
	if ok {
		c.Status, c.DoneAt = custos.OTPVerified, now
	} else {
		c.Attempts++
		res = Wrong
		if c.Attempts >= c.MaxAttempts {
			c.Status, c.DoneAt, res = custos.OTPDead, now, Dead
		}
	}
	if err := tx.UpdateOTPChallenge(ctx, c); err != nil {
		return nil, 0, err
	}
	return c, res, nil
}
