package portal_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/portal"
	"custos/sqlite"
)

func newPortal(t *testing.T) *httptest.Server {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := core.New(db, custos.DefaultCatalog(), ring, nil, nil)
	srv := httptest.NewServer(portal.New(svc, nil))
	t.Cleanup(srv.Close)
	return srv
}

// TestSignInRateLimit: a client address gets SignInLimit sign-in attempts
// per window, then 429 with Retry-After (hardening, issue 8).
func TestSignInRateLimit(t *testing.T) {
	srv := newPortal(t)
	post := func() *http.Response {
		resp, err := srv.Client().PostForm(srv.URL+"/portal/signin", url.Values{"id": {"13900000000"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	for i := range portal.SignInLimit {
		if resp := post(); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("attempt %d refused already", i+1)
		}
	}
	resp := post()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("attempt %d: status %d Retry-After %q, want 429 with Retry-After", portal.SignInLimit+1, resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// TestSecurityHeaders: every portal page carries a strict CSP, refuses
// framing and caching, and a cross-origin form post is refused.
func TestSecurityHeaders(t *testing.T) {
	srv := newPortal(t)
	resp, err := srv.Client().Get(srv.URL + "/portal/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
		"X-Content-Type-Options":  "nosniff",
	} {
		if got := resp.Header.Get(h); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want it to contain %q", h, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/portal/signin", strings.NewReader("id=13900000000"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: status %d, want 403", resp.StatusCode)
	}
	// A forged session cookie is not a session.
	req, _ = http.NewRequest(http.MethodGet, srv.URL+"/portal/home", nil)
	req.AddCookie(&http.Cookie{Name: "custos_portal", Value: "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa|99999999999.AAAA"})
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/portal/") {
		t.Errorf("forged session: status %d location %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
}
