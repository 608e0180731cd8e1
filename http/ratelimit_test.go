package http_test

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"custos"
	"custos/core"
	custoshttp "custos/http"
	"custos/keys"
	"custos/sqlite"
)

// TestFailedAuthRateLimit: after AuthFailLimit wrong keys from one address
// within the window, even a right key is refused with 429 until the window
// ends, so keys cannot be guessed at speed.
func TestFailedAuthRateLimit(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		t.Fatal(err)
	}
	svc := core.New(db, custos.DefaultCatalog(), ring, nil, nil)
	token, err := svc.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(custoshttp.NewServer(svc, nil))
	t.Cleanup(ts.Close)
	get := func(key string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL+"/v1/catalog", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(token); got != http.StatusOK {
		t.Fatalf("right key: %d", got)
	}
	for i := range custoshttp.AuthFailLimit {
		if got := get("cst_wrong"); got != http.StatusUnauthorized {
			t.Fatalf("wrong key #%d: %d, want 401", i+1, got)
		}
	}
	if got := get("cst_wrong"); got != http.StatusTooManyRequests {
		t.Fatalf("after %d failures: %d, want 429", custoshttp.AuthFailLimit, got)
	}
	if got := get(token); got != http.StatusTooManyRequests {
		t.Fatalf("right key during lockout: %d, want 429", got)
	}
}
