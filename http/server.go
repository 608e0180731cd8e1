// Package http serves custos's REST API under /v1 (JSON, RFC 9457 problem
// documents, OpenAPI at /v1/openapi.json), health and Prometheus metrics,
// and holds a Go client for that API. Handlers decode, call one service
// method and encode; they hold no SQL, crypto or policy.
package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"custos"
	"custos/core"
	"custos/portal"
)

// MaxBody is the largest request body accepted (batch imports included).
const MaxBody = 8 << 20

// RequestTimeout is each request's deadline, set on its context. It ends
// before the connection's write timeout (writeTimeout), so that work still
// queued then (a write waiting for the store's writer, queue.Hand) is
// refused with a retry-later answer the client can still read, instead of
// being done for an answer the connection can no longer carry.
const RequestTimeout = 55 * time.Second

// ImportRequestTimeout is the deadline of an import batch (POST
// /v1/imports/{job}/rows), whose connection may also write its answer
// that much later. A batch is large and bulk loads send many at once: up
// to ImportConcurrency are in work per node and the rest wait their turn
// (a PostgreSQL node on two cores stored 1,600–2,000 rows a second with
// 256 batches of 500 in flight on a grown store, and the last was answered
// after 80 s). Waiting is what the client wants then; the answer still
// comes within this bound.
const ImportRequestTimeout = 5 * time.Minute

// ClientTimeout is how long a client of this server (custos import,
// Client) waits for an answer: past the longest request deadline, so
// that it gets the server's answer, a retry-later one included.
const ClientTimeout = ImportRequestTimeout + 15*time.Second

// writeTimeout bounds writing an answer, counted from the request's
// headers; writeMargin is how much later than its request's deadline an
// answer may still be written.
const (
	writeMargin  = 5 * time.Second
	writeTimeout = RequestTimeout + writeMargin
)

// requestTimeout is r's deadline (RequestTimeout, or ImportRequestTimeout
// for an import batch).
func requestTimeout(r *http.Request) time.Duration {
	if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/imports/") && strings.HasSuffix(r.URL.Path, "/rows") {
		return ImportRequestTimeout
	}
	return RequestTimeout
}

// Server is the HTTP front of a custos node.
type Server struct {
	Service *core.Service
	Logger  *slog.Logger
	// Ready reports whether the node can serve (store reachable, keys loaded).
	Ready func(ctx context.Context) error

	mux     *http.ServeMux
	srv     *http.Server
	ln      net.Listener
	metrics *metrics
	routes  []route

	authFails failLimiter

	// TLSCert and TLSKey name PEM files; when set, Serve speaks HTTPS.
	TLSCert, TLSKey string

	// ExtraMetrics, when set, appends Prometheus text to /metrics (the
	// webhook deliverer's counters).
	ExtraMetrics func(w io.Writer)
}

// Failed-authentication limits: a client address with AuthFailLimit
// failures within AuthFailWindow is refused (429) until the window ends,
// so API keys cannot be guessed at speed.
const (
	AuthFailLimit  = 20
	AuthFailWindow = time.Minute
)

// failLimiter counts failed authentications per client address.
type failLimiter struct {
	mu sync.Mutex
	m  map[string]failWindow
}

type failWindow struct {
	start time.Time
	n     int
}

func (l *failLimiter) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	w, ok := l.m[client]
	return !ok || now.Sub(w.start) >= AuthFailWindow || w.n < AuthFailLimit
}

func (l *failLimiter) fail(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) > 100000 {
		l.m = map[string]failWindow{} // bounded: forget rather than grow
	}
	w := l.m[client]
	if now.Sub(w.start) >= AuthFailWindow {
		w = failWindow{start: now}
	}
	w.n++
	l.m[client] = w
}

// clientIP is the peer address without its port (proxies are not trusted:
// X-Forwarded-For is the client's to forge).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type route struct {
	pattern string
	handler http.HandlerFunc
	auth    bool
}

// NewServer builds the route table.
func NewServer(svc *core.Service, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{Service: svc, Logger: logger, mux: http.NewServeMux(), metrics: newMetrics()}
	s.routes = []route{
		{"GET /healthz", s.handleHealth, false},
		{"GET /readyz", s.handleReady, false},
		{"GET /metrics", s.handleMetrics, false},
		{"GET /v1/openapi.json", s.handleOpenAPI, false},
		{"GET /v1/catalog", s.handleCatalog, true},
		{"POST /v1/principals", s.handlePrincipalCreate, true},
		{"GET /v1/principals", s.handlePrincipalList, true},
		{"POST /v1/principals/{id}/keys", s.handleAPIKeyCreate, true},
		{"POST /v1/subjects", s.handleSubjectCreate, true},
		{"POST /v1/subjects/lookup", s.handleSubjectLookup, true},
		{"POST /v1/subjects/read", s.handleSubjectRead, true},
		{"GET /v1/subjects/{id}", s.handleSubjectGet, true},
		{"PATCH /v1/subjects/{id}", s.handleSubjectUpdate, true},
		{"DELETE /v1/subjects/{id}", s.handleSubjectErase, true},
		{"POST /v1/subjects/{id}/records", s.handleRecordCreate, true},
		{"GET /v1/subjects/{id}/records", s.handleRecordList, true},
		{"POST /v1/imports/{job}/rows", s.handleImportRows, true},
		{"GET /v1/audit", s.handleAuditList, true},
		{"POST /v1/notices", s.handleNoticePublish, true},
		{"GET /v1/notices", s.handleNoticeList, false},
		{"GET /v1/notices/current", s.handleNoticeCurrent, false},
		{"GET /v1/notices/{version}", s.handleNoticeGet, false},
		{"POST /v1/subjects/{id}/consents", s.handleConsentCapture, true},
		{"GET /v1/subjects/{id}/consents", s.handleConsentState, true},
		{"DELETE /v1/subjects/{id}/consents/{purpose}", s.handleConsentWithdraw, true},
		{"POST /v1/consent-receipts/verify", s.handleReceiptVerify, false},
		{"POST /v1/rights-requests", s.handleRightsFile, true},
		{"GET /v1/rights-requests", s.handleRightsList, true},
		{"GET /v1/rights-requests/{id}", s.handleRightsGet, true},
		{"POST /v1/rights-requests/{id}/code", s.handleRightsCode, true},
		{"POST /v1/rights-requests/{id}/verify", s.handleRightsVerify, true},
		{"POST /v1/rights-requests/{id}/decision", s.handleRightsDecide, true},
		{"GET /v1/rights-requests/{id}/report", s.handleRightsReport, true},
		{"GET /v1/rights-requests/{id}/export", s.handleRightsExport, true},
		{"POST /v1/subjects/{id}/restriction/lift", s.handleLiftRestriction, true},
		{"GET /v1/retention/rules", s.handleRetentionRules, true},
		{"POST /v1/retention/runs", s.handleRetentionRun, true},
		{"GET /v1/retention/holds", s.handleHoldList, true},
		{"POST /v1/retention/holds", s.handleHoldCreate, true},
		{"POST /v1/retention/holds/{id}/release", s.handleHoldRelease, true},
		{"GET /v1/retention/certificates", s.handleCertificateList, true},
		{"GET /v1/retention/certificates/{id}", s.handleCertificateGet, true},
		{"GET /v1/retention/certificates/{id}/verify", s.handleCertificateVerify, true},
		{"POST /v1/webhooks", s.handleWebhookCreate, true},
		{"GET /v1/webhooks", s.handleWebhookList, true},
		{"POST /v1/webhooks/{id}/disable", s.handleWebhookDisable, true},
		{"GET /v1/events/{id}/deliveries", s.handleEventDeliveries, true},
		// Collection plans, data-use requests and principal status (plans.go).
		{"POST /v1/plans", s.handlePlanCreate, true},
		{"GET /v1/plans", s.handlePlanList, true},
		{"GET /v1/plans/{id}", s.handlePlanGet, true},
		{"POST /v1/plans/{id}/review", s.handlePlanReview, true},
		{"POST /v1/grants", s.handleGrantCreate, true},
		{"GET /v1/grants", s.handleGrantList, true},
		{"POST /v1/grants/{id}/review", s.handleGrantReview, true},
		{"POST /v1/principals/{id}/block", s.handlePrincipalBlock, true},
		{"POST /v1/principals/{id}/unblock", s.handlePrincipalUnblock, true},
		{"PUT /v1/principals/{id}/prerequisites", s.handlePrincipalPrerequisites, true},
	}
	for _, rt := range s.routes {
		h := rt.handler
		if rt.auth {
			h = s.authenticate(h)
		}
		s.mux.Handle(rt.pattern, h)
	}
	// The self-service privacy portal: server-rendered pages for customers.
	s.mux.Handle("/portal/", portal.New(svc, logger))
	// Anything else gets a problem document too, not a plain-text 404.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		Error(w, r, s.Logger, custos.Errorf(custos.ENOTFOUND, "No such endpoint; see /v1/openapi.json."))
	})
	return s
}

// Patterns returns the route table's patterns (for the OpenAPI sync test).
func (s *Server) Patterns() []string {
	out := make([]string, len(s.routes))
	for i, r := range s.routes {
		out[i] = r.pattern
	}
	return out
}

// ServeHTTP runs the middleware chain: request id, recovery, body limit,
// metrics and access log (pattern only — URLs and bodies may hold
// personal data and are never logged).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-ID")
	if !validRequestID(id) {
		b := make([]byte, 8)
		if _, err := rand.Read(b); err == nil {
			id = "req_" + hex.EncodeToString(b)
		}
	}
	budget := requestTimeout(r)
	if budget > RequestTimeout {
		// The connection's write deadline was set from writeTimeout when
		// the request was read; move it past this request's own.
		if err := http.NewResponseController(w).SetWriteDeadline(start.Add(budget + writeMargin)); err != nil {
			budget = RequestTimeout
		}
	}
	ctx, cancel := context.WithTimeout(custos.NewContextWithRequestID(r.Context(), id), budget)
	defer cancel()
	r = r.WithContext(ctx)
	h := w.Header()
	h["X-Request-Id"] = []string{id}
	h["X-Content-Type-Options"] = headerNosniff
	h["Cache-Control"] = headerNoStore
	r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	defer func() {
		if v := recover(); v != nil {
			s.Logger.Error("panic", "request_id", id, "panic_type", typeName(v))
			Error(sw, r, s.Logger, errors.New("panic"))
		}
		pattern := r.Pattern // set by the mux while routing; no second lookup
		if pattern == "" || pattern == "/" {
			pattern = "unmatched"
		}
		d := time.Since(start)
		s.metrics.observe(pattern, sw.status, d)
		attrs := []any{"request_id", id, "route", pattern, "status", sw.status, "duration_ms", float64(d.Microseconds()) / 1000}
		if sw.actor != nil {
			attrs = append(attrs, "actor_id", string(sw.actor.ID))
		}
		s.Logger.Info("request", attrs...)
	}()
	s.mux.ServeHTTP(sw, r)
}

func typeName(v any) string {
	switch v.(type) {
	case error:
		return "error"
	case string:
		return "string"
	}
	return "other"
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
	actor  *custos.Principal
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// authenticate resolves the API key (Authorization: Bearer, or X-API-Key)
// to a principal in the request context.
func (s *Server) authenticate(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = r.Header.Get("X-API-Key")
		}
		if token == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="custos"`)
			Error(w, r, s.Logger, custos.Errorf(custos.EUNAUTHORIZED, "An API key is required (Authorization: Bearer …)."))
			return
		}
		client := clientIP(r)
		if !s.authFails.allow(client, time.Now()) {
			w.Header().Set("Retry-After", strconv.Itoa(int(AuthFailWindow.Seconds())))
			Error(w, r, s.Logger, custos.Errorf(custos.ERATELIMIT, "Too many failed authentication attempts; retry later."))
			return
		}
		p, err := s.Service.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			if custos.ErrorCode(err) == custos.EUNAUTHORIZED {
				s.authFails.fail(client, time.Now())
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="custos"`)
			Error(w, r, s.Logger, err)
			return
		}
		if sw, ok := w.(*statusWriter); ok {
			sw.actor = p
		}
		next(w, r.WithContext(custos.NewContextWithActor(r.Context(), p)))
	}
}

// purposes returns the declared purposes: the Custos-Purpose header or the
// purpose query parameter, comma-separated. Every data request needs one.
func purposes(r *http.Request) ([]string, error) {
	v := r.Header.Get("Custos-Purpose")
	if v == "" {
		v = r.URL.Query().Get("purpose")
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, custos.Invalid("Every data request declares its purpose (Custos-Purpose header or purpose parameter).",
			custos.Violation{Field: "purpose", Rule: "required"})
	}
	return out, nil
}

// decode reads a JSON body strictly: unknown fields and trailing data are
// refused, and the error names the field, never the value.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &mbe):
			return custos.Errorf(custos.ETOOLARGE, "The request body is larger than %d bytes.", mbe.Limit)
		case errors.As(err, &ute):
			return custos.Invalid("The request body has a value of the wrong type.", custos.Violation{Field: ute.Field, Rule: "type", Detail: "expected " + ute.Type.String()})
		case errors.As(err, &se):
			return custos.Invalid("The request body is not valid JSON.", custos.Violation{Field: "body", Rule: "json_syntax"})
		case errors.Is(err, io.EOF):
			return custos.Invalid("The request body is empty.", custos.Violation{Field: "body", Rule: "required"})
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return custos.Invalid("The request body has an unknown member.", custos.Violation{Field: name, Rule: "unknown_member"})
		}
		return custos.Invalid("The request body could not be read.", custos.Violation{Field: "body", Rule: "json"})
	}
	if dec.More() {
		return custos.Invalid("The request body holds more than one JSON value.", custos.Violation{Field: "body", Rule: "single_value"})
	}
	return nil
}

// encodeBufs holds the buffers encode appends answers to: a masked
// subject's answer is about 2.2 KB, and growing a fresh buffer to that
// size on every read was a tenth of the bytes a masked read allocated,
// client included (BenchmarkReadMaskedHTTP).
var encodeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledEncode = 64 << 10

// The values of headers every answer carries, shared by all of them
// rather than made for each (Header.Set makes a slice a value, and
// canonicalises a key not written canonically, as "X-Request-ID" was:
// four allocations an answer, BENCHMARKS.md, sixtieth session). Each
// slice's capacity is its length, so that a Header.Add after them
// appends to a copy, never to the shared array; nothing sets an element
// of a header's slice in place.
var (
	headerNosniff = []string{"nosniff"}[:1:1]
	headerNoStore = []string{"no-store"}[:1:1]
	headerJSON    = []string{"application/json"}[:1:1]
)

func (s *Server) encode(w http.ResponseWriter, r *http.Request, status int, v any) {
	w.Header()["Content-Type"] = headerJSON
	bp := encodeBufs.Get().(*[]byte)
	b, ok := (*bp)[:0], false
	// Once written, the answer is copied (or failed); a buffer a batch
	// read grew past maxPooledEncode goes to the collector.
	defer func() {
		if cap(b) <= maxPooledEncode {
			*bp = b
			encodeBufs.Put(bp)
		}
	}()
	switch v := v.(type) {
	case *custos.Subject:
		b, ok = appendSubject(b, v)
	case *ReadResponse:
		b, ok = appendReadResponse(b, v)
	}
	if !ok {
		buf := bytes.NewBuffer(b[:0])
		if err := json.NewEncoder(buf).Encode(v); err != nil {
			// Nothing is sent yet: the client gets a problem document,
			// not a status line followed by half an answer.
			Error(w, r, s.Logger, fmt.Errorf("encoding the answer: %w", err))
			return
		}
		b = buf.Bytes()
	}
	// The answer's length, known before the first byte is sent, goes in
	// Content-Length. Without it net/http sends any answer longer than
	// its 2,048-byte buffer chunked, which a masked read's (about 2.2 KB)
	// is, and the client has to take the chunks apart again.
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		s.Logger.Debug("writing response failed", "request_id", custos.RequestIDFromContext(r.Context()), "err", err)
	}
}

// Listen binds addr ("127.0.0.1:0" for a free port).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn),
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	return nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until Shutdown; it returns nil after a graceful shutdown.
func (s *Server) Serve() error {
	var err error
	if s.TLSCert != "" {
		err = s.srv.ServeTLS(s.ln, s.TLSCert, s.TLSKey)
	} else {
		err = s.srv.Serve(s.ln)
	}
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for those in flight.
func (s *Server) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }
