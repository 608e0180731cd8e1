package http

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"custos"
	"custos/internal/queue"
)

// TestErrorClientGone checks how an internal error is logged: at error
// level with its cause, except when it is only the cancellation of a
// request whose client went away, which is logged at info as such (a
// bench client that gave up after its timeout made PostgreSQL nodes log
// every abandoned request as an internal error).
func TestErrorClientGone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		cancelled bool
		want      string
		notWant   string
	}{
		{"internal error", custos.Errorf(custos.EINTERNAL, "boom"), false, "level=ERROR", "client went away"},
		{"client went away", &custos.Error{Code: custos.EINTERNAL, Err: context.Canceled}, true, "client went away", "level=ERROR"},
		// custos's own cancellation while the client still waits is a
		// failure of custos.
		{"cancelled inside custos", &custos.Error{Code: custos.EINTERNAL, Err: context.Canceled}, false, "level=ERROR", "client went away"},
		{"timeout with the client gone", &custos.Error{Code: custos.EINTERNAL, Err: context.DeadlineExceeded}, true, "level=ERROR", "client went away"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancelled {
				cancel()
			}
			r := httptest.NewRequest(http.MethodGet, "/v1/subjects/x", nil).WithContext(ctx)
			w := httptest.NewRecorder()
			Error(w, r, logger, tc.err)
			if w.Code != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", w.Code)
			}
			if log := buf.String(); !strings.Contains(log, tc.want) || strings.Contains(log, tc.notWant) {
				t.Errorf("log %q: want %q and not %q", log, tc.want, tc.notWant)
			}
		})
	}
	if !errors.Is(&custos.Error{Code: custos.EINTERNAL, Err: context.Canceled}, context.Canceled) {
		t.Fatal("custos.Error does not unwrap to its cause")
	}
}

// TestBusyAnswer checks what a client gets when its write waited for the
// store's writer until its request's deadline (issue #7: contention is
// queued while the answer can still be delivered): the request carries a
// deadline before the connection's write timeout, and the refusal is a
// 503 with Retry-After and the busy message, logged at warn level.
func TestBusyAnswer(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	s := &Server{Logger: logger, mux: http.NewServeMux(), metrics: newMetrics()}
	var deadline time.Time
	var hasDeadline bool
	s.mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		deadline, hasDeadline = r.Context().Deadline()
		// The request's time runs out (sooner here) while the write
		// waits for a writer that never takes it.
		ctx, cancel := context.WithTimeout(r.Context(), 10*time.Millisecond)
		defer cancel()
		Error(w, r, logger, queue.Hand(ctx, make(chan int), 1, time.Minute, nil, nil))
	})
	start := time.Now()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/busy", nil))
	end := time.Now()
	if set := deadline.Add(-RequestTimeout); !hasDeadline || set.Before(start) || set.After(end) || RequestTimeout >= writeTimeout {
		t.Errorf("request deadline %v after the start (set: %v), want %v, before the write timeout %v", deadline.Sub(start), hasDeadline, RequestTimeout, writeTimeout)
	}
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != RetryAfterUnavailable {
		t.Errorf("status %d, Retry-After %q; want 503 and %q", rec.Code, rec.Header().Get("Retry-After"), RetryAfterUnavailable)
	}
	if !strings.Contains(rec.Body.String(), `"code":"unavailable"`) || !strings.Contains(rec.Body.String(), "busy") {
		t.Errorf("body %s, want the unavailable code and the busy message", rec.Body)
	}
	if !strings.Contains(buf.String(), "level=WARN") {
		t.Errorf("log %q, want a warning", buf.String())
	}
}

// TestTimeUpAnswer: an internal error caused by the request's own deadline
// (RequestTimeout ran out inside custos) is answered as a retry-later 503,
// while the same cause without the request's deadline passed stays an
// internal error.
func TestTimeUpAnswer(t *testing.T) {
	cause := &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		name    string
		expired bool
		status  int
	}{
		{"request time up", true, http.StatusServiceUnavailable},
		{"a deadline of custos's own", false, http.StatusInternalServerError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
			if tc.expired {
				ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			}
			defer cancel()
			rec := httptest.NewRecorder()
			Error(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx), slog.New(slog.DiscardHandler), cause)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if tc.expired && (!strings.Contains(rec.Body.String(), TimeUpMessage) || rec.Header().Get("Retry-After") == "") {
				t.Errorf("body %s, Retry-After %q; want the time-up message and a Retry-After", rec.Body, rec.Header().Get("Retry-After"))
			}
		})
	}
}

// TestRequestBudget: an import batch gets ImportRequestTimeout (its
// connection's write deadline moved past it: without that the budget
// falls back to RequestTimeout), any other request RequestTimeout.
func TestRequestBudget(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler), mux: http.NewServeMux(), metrics: newMetrics()}
	got := map[string]time.Duration{}
	record := func(w http.ResponseWriter, r *http.Request) {
		d, _ := r.Context().Deadline()
		got[r.Method+" "+r.URL.Path] = time.Until(d)
	}
	s.mux.HandleFunc("POST /v1/imports/{job}/rows", record)
	s.mux.HandleFunc("GET /v1/subjects/{id}", record)
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, c := range []struct{ method, path string }{{http.MethodPost, "/v1/imports/j1/rows"}, {http.MethodGet, "/v1/subjects/sub_1"}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if d := got["POST /v1/imports/j1/rows"]; d <= RequestTimeout || d > ImportRequestTimeout {
		t.Errorf("import batch: %v left, want about %v", d, ImportRequestTimeout)
	}
	if d := got["GET /v1/subjects/sub_1"]; d <= 0 || d > RequestTimeout {
		t.Errorf("read: %v left, want about %v", d, RequestTimeout)
	}
	if ClientTimeout <= ImportRequestTimeout {
		t.Errorf("client timeout %v, want past the longest request deadline %v", ClientTimeout, ImportRequestTimeout)
	}
}

// TestAnswerHeaders: every answer carries its request's id, nosniff,
// no-store and, from encode, its JSON type. Their values are shared by
// every answer (not made for each), so a handler adding to one must
// change only its own answer: the next answer carries the shared values
// as they were.
func TestAnswerHeaders(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler), mux: http.NewServeMux(), metrics: newMetrics()}
	s.mux.HandleFunc("GET /v1/one", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Cache-Control", "private")
		w.Header().Add("X-Content-Type-Options", "extra")
		s.encode(w, r, http.StatusOK, map[string]string{"ok": "1"})
	})
	s.mux.HandleFunc("GET /v1/other", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Cache-Control", "public")
		s.encode(w, r, http.StatusOK, map[string]string{"ok": "3"})
	})
	s.mux.HandleFunc("GET /v1/two", func(w http.ResponseWriter, r *http.Request) {
		s.encode(w, r, http.StatusOK, map[string]string{"ok": "2"})
	})
	serve := func(path, id string) http.Header {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("X-Request-ID", id)
		s.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d, body %s", path, rec.Code, rec.Body)
		}
		return rec.Header()
	}
	one := serve("/v1/one", "req_one")
	// Another answer adding to the same header after it (were the shared
	// slice to have room, both would append into its one array).
	other := serve("/v1/other", "req_other")
	if got := one.Values("Cache-Control"); !slices.Equal(got, []string{"no-store", "private"}) {
		t.Errorf("first answer's Cache-Control %q, want no-store and its handler's private", got)
	}
	if got := other.Values("Cache-Control"); !slices.Equal(got, []string{"no-store", "public"}) {
		t.Errorf("other answer's Cache-Control %q, want no-store and its handler's public", got)
	}
	two := serve("/v1/two", "req_two")
	for k, want := range map[string][]string{
		"X-Request-Id":           {"req_two"},
		"X-Content-Type-Options": {"nosniff"},
		"Cache-Control":          {"no-store"},
		"Content-Type":           {"application/json"},
	} {
		if got := two.Values(k); !slices.Equal(got, want) {
			t.Errorf("second answer's %s: %q, want %q", k, got, want)
		}
	}
	if !slices.Equal(headerNoStore, []string{"no-store"}) || !slices.Equal(headerNosniff, []string{"nosniff"}) {
		t.Errorf("shared values changed: %q, %q", headerNoStore, headerNosniff)
	}
}
