package otp_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/otp"
	"custos/sqlite"
)

var key = bytes.Repeat([]byte{7}, 32)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(t *testing.T) (*sqlite.DB, *clock, string) {
	t.Helper()
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "custos.db")
	db, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, c, path
}

func issue(t *testing.T, st custos.Store, m *otp.Manager, sub custos.SubjectID, client string) (*custos.OTPChallenge, string, error) {
	t.Helper()
	var (
		c    *custos.OTPChallenge
		code string
	)
	err := st.Update(t.Context(), func(tx custos.Tx) (err error) {
		c, code, err = m.Issue(t.Context(), tx, otp.Request{SubjectID: sub, Purpose: "portal.signin", Channel: "sms", Client: client})
		return err
	})
	return c, code, err
}

// verify runs Verify the way a caller must: commit whatever the result,
// then report it.
func verify(t *testing.T, st custos.Store, m *otp.Manager, id, code string) otp.Result {
	t.Helper()
	var res otp.Result
	if err := st.Update(t.Context(), func(tx custos.Tx) (err error) {
		_, res, err = m.Verify(t.Context(), tx, id, code)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

func wrong(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

// TestIssueVerify (R7): a 6-digit code, stored only as an HMAC, works once.
func TestIssueVerify(t *testing.T) {
	st, _, path := open(t)
	m, err := otp.New(key, otp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	c, code, err := issue(t, st, m, "sub_1", "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d{6}$`).MatchString(code) {
		t.Fatalf("code %q: want 6 digits", code)
	}
	if !c.ExpiresAt.Equal(c.CreatedAt.Add(10*time.Minute)) || c.MaxAttempts != 5 {
		t.Errorf("challenge %+v: want 10 min and 5 attempts", c)
	}
	if bytes.Contains(c.CodeHash, []byte(code)) || bytes.Contains(c.ClientHash, []byte("203.0.113.9")) {
		t.Error("hashes contain the code or the address")
	}
	// Neither the code nor the client address is anywhere in the database.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(code)) || bytes.Contains(b, []byte("203.0.113.9")) {
			t.Errorf("database file%s holds the code or the address", suffix)
		}
	}
	if r := verify(t, st, m, c.ID, wrong(code)); r != otp.Wrong {
		t.Errorf("wrong code: %v", r)
	}
	if r := verify(t, st, m, c.ID, code); r != otp.Verified {
		t.Errorf("right code: %v", r)
	}
	if r := verify(t, st, m, c.ID, code); r != otp.Used {
		t.Errorf("second use: %v, want used", r)
	}
	if r := verify(t, st, m, "otp_nope", code); r != otp.Unknown {
		t.Errorf("unknown id: %v", r)
	}
	for _, r := range []otp.Result{otp.Wrong, otp.Dead, otp.Used, otp.Unknown, otp.Expired} {
		if custos.ErrorCode(r.Err()) != custos.EFORBIDDEN || r.Err().Error() != otp.Wrong.Err().Error() {
			t.Errorf("%v: error %v, want the same EFORBIDDEN for every failure", r, r.Err())
		}
	}
	if otp.Verified.Err() != nil {
		t.Error("Verified.Err() != nil")
	}
}

// TestAttemptLimit: the 5th wrong code kills the challenge; the right code
// no longer works after that.
func TestAttemptLimit(t *testing.T) {
	st, _, _ := open(t)
	m, _ := otp.New(key, otp.Limits{})
	c, code, err := issue(t, st, m, "sub_1", "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		want := otp.Wrong
		if i == 5 {
			want = otp.Dead
		}
		if r := verify(t, st, m, c.ID, wrong(code)); r != want {
			t.Fatalf("wrong code %d: %v, want %v", i, r, want)
		}
	}
	if r := verify(t, st, m, c.ID, code); r != otp.Dead {
		t.Errorf("right code after 5 wrong: %v, want dead", r)
	}
	if err := st.View(t.Context(), func(tx custos.Tx) error {
		got, err := tx.GetOTPChallenge(t.Context(), c.ID)
		if err == nil && (got.Attempts != 5 || got.Status != custos.OTPDead) {
			t.Errorf("stored: attempts %d status %s", got.Attempts, got.Status)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestExpiry(t *testing.T) {
	st, clk, _ := open(t)
	m, _ := otp.New(key, otp.Limits{})
	c, code, err := issue(t, st, m, "sub_1", "203.0.113.9")
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Minute)
	if r := verify(t, st, m, c.ID, code); r != otp.Expired {
		t.Errorf("after 10 min: %v, want expired", r)
	}
}

// TestRateLimits: 5 codes per subject and 20 per client address an hour.
func TestRateLimits(t *testing.T) {
	st, clk, _ := open(t)
	m, _ := otp.New(key, otp.Limits{})
	for i := range 5 {
		if _, _, err := issue(t, st, m, "sub_1", "198.51.100.1"); err != nil {
			t.Fatalf("issue %d: %v", i+1, err)
		}
	}
	_, _, err := issue(t, st, m, "sub_1", "198.51.100.2")
	var e *custos.Error
	if !errors.As(err, &e) || e.Code != custos.ERATELIMIT || e.Violations[0].Field != "subject" {
		t.Fatalf("6th code for one subject: got %v, want ERATELIMIT on subject", err)
	}
	// Another subject from the same address is still served …
	for i := range 15 {
		if _, _, err := issue(t, st, m, custos.SubjectID("sub_x"+string(rune('a'+i))), "198.51.100.1"); err != nil {
			t.Fatalf("other subject %d: %v", i, err)
		}
	}
	// … until the address has had 20.
	_, _, err = issue(t, st, m, "sub_new", "198.51.100.1")
	if !errors.As(err, &e) || e.Code != custos.ERATELIMIT || e.Violations[0].Field != "client" {
		t.Fatalf("21st code from one address: got %v, want ERATELIMIT on client", err)
	}
	clk.Add(time.Hour + time.Second)
	if _, _, err := issue(t, st, m, "sub_1", "198.51.100.1"); err != nil {
		t.Errorf("after the window: %v", err)
	}
	if _, _, err := issue(t, st, m, "", "x"); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("no subject: %v", err)
	}
}

func TestNewCodeUniform(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c, err := otp.NewCode(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if len(c) != 6 {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 1990 {
		t.Errorf("only %d distinct codes of 2000", len(seen))
	}
	if _, err := otp.New(key[:16], otp.Limits{}); err == nil {
		t.Error("short key accepted")
	}
	if _, err := otp.New(key, otp.Limits{MaxAttempts: 50}); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("bad limits: %v", err)
	}
}

// BenchmarkIssueVerify: one issue and one right verify, each its own
// SQLite transaction.
func BenchmarkIssueVerify(b *testing.B) {
	c := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "custos.db"), sqlite.Options{Migrate: true, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	m, _ := otp.New(key, otp.Limits{PerSubject: 1 << 30, PerClient: 1 << 30})
	i := 0
	for b.Loop() {
		i++
		var ch *custos.OTPChallenge
		var code string
		if err := db.Update(b.Context(), func(tx custos.Tx) (err error) {
			ch, code, err = m.Issue(b.Context(), tx, otp.Request{SubjectID: custos.SubjectID("sub_" + strconv.Itoa(i%1000)), Purpose: "p", Channel: "sms", Client: "203.0.113.1"})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		var res otp.Result
		if err := db.Update(b.Context(), func(tx custos.Tx) (err error) {
			_, res, err = m.Verify(b.Context(), tx, ch.ID, code)
			return err
		}); err != nil || res != otp.Verified {
			b.Fatal(err, res)
		}
	}
}
