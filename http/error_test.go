package http

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"custos"
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
