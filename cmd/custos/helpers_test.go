package main

// Helpers shared by the end-to-end, canary, CLI and benchmark tests: a real
// custos server started in-process through run(), exactly as main starts
// it, on a loopback port in a temporary data directory.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
)

// startTimeout bounds how long a server may take to start or stop.
const startTimeout = 30 * time.Second

// syncBuffer is an io.Writer safe for concurrent use that wakes waiters on
// every write, so a test can wait for output with a deadline instead of
// sleeping.
type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on each write
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{changed: make(chan struct{})} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

// Bytes returns a copy of everything written so far.
func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

// snapshot returns the content and a channel closed at the next write.
func (b *syncBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// noEnv is a getenv that sees no environment at all, so that a CUSTOS_*
// variable of the machine running the tests cannot change what they do.
func noEnv(string) string { return "" }

// envOf returns a getenv backed by m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// testServer is a custos node serving on a loopback port inside the test
// process.
type testServer struct {
	URL      string // http://127.0.0.1:PORT
	AdminKey string // "" when this start printed none (an existing data dir)
	Dir      string
	Stdout   *syncBuffer
	Stderr   *syncBuffer
	// Plans holds, per purpose, the collection plan filed and approved at
	// a fresh start (see fileDefaultPlans); nil for a bare server.
	Plans map[string]custos.PlanID

	cancel  context.CancelFunc
	done    chan int
	stopped bool
}

var listeningRE = listeningLineRE
var adminKeyRE = regexp.MustCompile(`(?m)^admin key: (cst_\S+)$`)

// startServer runs `custos serve --data dir --addr 127.0.0.1:0 extra…` in a
// goroutine and waits until it prints its address. The server is stopped at
// cleanup if the test has not stopped it.
func startServer(tb testing.TB, dir string, extra ...string) *testServer {
	tb.Helper()
	return startServerOut(tb, dir, newSyncBuffer(), extra...)
}

// startServerOut is startServer with the server's stderr (its logs) going
// to stderr.
func startServerOut(tb testing.TB, dir string, stderr *syncBuffer, extra ...string) *testServer {
	tb.Helper()
	s := startBareServerOut(tb, dir, stderr, extra...)
	if s.AdminKey != "" {
		s.fileDefaultPlans(tb)
	}
	return s
}

// startBareServer is startServer without the default collection plans:
// on a fresh store no write is accepted until a plan is approved.
func startBareServer(tb testing.TB, dir string, extra ...string) *testServer {
	tb.Helper()
	return startBareServerOut(tb, dir, newSyncBuffer(), extra...)
}

// fileDefaultPlans files, as the bootstrap admin, one collection plan per
// catalog purpose listing every field and record type the purpose allows,
// and has a "committee" principal approve each (approver ≠ filer), so that
// tests written before collection plans keep writing with serve's default
// RequirePlan on (C2).
func (s *testServer) fileDefaultPlans(tb testing.TB) {
	tb.Helper()
	if strings.HasPrefix(s.URL, "https://") {
		return // the TLS test brings its own client; it writes no data
	}
	s.Plans = setupPlans(tb, s.URL, s.AdminKey)
}

// setupPlans prepares a freshly initialised store behind url for tests
// written before collection plans and staff prerequisites: it records the
// staff principals' prerequisites and files and approves the default plans
// (see fileDefaultPlans). It returns the plan of each purpose.
func setupPlans(tb testing.TB, url, adminKey string) map[string]custos.PlanID {
	tb.Helper()
	ctx := context.Background()
	admin := custoshttp.NewClient(url, adminKey)
	cat, err := admin.Catalog(ctx)
	if err != nil {
		tb.Fatalf("catalog: %v", err)
	}
	if cat.Role("committee") == nil {
		return nil // a custom catalog without the committee role
	}
	committee := &custos.Principal{Name: "data management committee", Kind: custos.KindService, Roles: []string{"committee"}}
	if err := admin.CreatePrincipal(ctx, committee); err != nil {
		tb.Fatalf("create committee: %v", err)
	}
	k, err := admin.CreateAPIKey(ctx, committee.ID)
	if err != nil {
		tb.Fatalf("committee key: %v", err)
	}
	approver := custoshttp.NewClient(url, k.Token)
	// The bootstrap admin is staff: record its prerequisites (S4) so that
	// tests may use its key for data, as before prerequisites existed.
	ps, err := admin.FindPrincipals(ctx)
	if err != nil {
		tb.Fatalf("principals: %v", err)
	}
	signed, until := time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)
	for _, p := range ps {
		if p.Kind == custos.KindStaff && p.Prerequisites == nil {
			if _, err := admin.SetPrerequisites(ctx, p.ID, custos.Prerequisites{NDASignedAt: &signed, TrainingValidUntil: &until, BackgroundCheckAt: &signed}); err != nil {
				tb.Fatalf("prerequisites of %s: %v", p.ID, err)
			}
		}
	}
	plans := map[string]custos.PlanID{}
	for _, pu := range cat.Purposes {
		p := &custos.Plan{Department: "test", Purpose: pu.Name, Description: "every field the purpose allows (test default)",
			Sources: []string{"the customer", "systems"}, Method: "online_form", Frequency: "continuous", Format: "structured",
			ValidUntil: time.Now().Add(7 * 24 * time.Hour)}
		for _, f := range pu.Fields {
			p.Fields = append(p.Fields, custos.PlanItem{Name: f, Necessity: "test default"})
		}
		for _, r := range pu.Records {
			p.Records = append(p.Records, custos.PlanItem{Name: r, Necessity: "test default"})
		}
		if len(p.Fields)+len(p.Records) == 0 {
			continue
		}
		if err := admin.FilePlan(ctx, p); err != nil {
			tb.Fatalf("file plan for %s: %v", pu.Name, err)
		}
		if _, err := approver.ReviewPlan(ctx, p.ID, custos.Review{Approve: true, Reason: "test default"}); err != nil {
			tb.Fatalf("approve plan for %s: %v", pu.Name, err)
		}
		plans[pu.Name] = p.ID
	}
	return plans
}

// startBareServerOut is startBareServer with the server's stderr going to
// stderr.
func startBareServerOut(tb testing.TB, dir string, stderr *syncBuffer, extra ...string) *testServer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{Dir: dir, Stdout: newSyncBuffer(), Stderr: stderr, cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"serve", "--data", dir, "--addr", "127.0.0.1:0"}, extra...)
	go func() { s.done <- run(ctx, args, s.Stdout, s.Stderr, noEnv) }()
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		out, changed := s.Stdout.snapshot()
		if m := listeningRE.FindStringSubmatch(out); m != nil {
			s.URL = m[1]
			if k := adminKeyRE.FindStringSubmatch(out); k != nil {
				s.AdminKey = k[1]
			}
			break
		}
		select {
		case <-changed:
		case code := <-s.done:
			cancel()
			s.stopped = true
			tb.Fatalf("serve exited with code %d before listening\nstdout:\n%s\nstderr:\n%s", code, s.Stdout, s.Stderr)
		case <-deadline.C:
			cancel()
			tb.Fatalf("serve did not print its address within %v\nstdout:\n%s\nstderr:\n%s", startTimeout, s.Stdout, s.Stderr)
		}
	}
	tb.Cleanup(func() {
		if !s.stopped {
			s.stop(tb)
		}
	})
	return s
}

// stop cancels the server's context, as SIGTERM does, and requires run to
// return 0 within startTimeout.
func (s *testServer) stop(tb testing.TB) {
	tb.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case code := <-s.done:
		if code != 0 {
			tb.Errorf("serve returned %d at shutdown, want 0\nstderr:\n%s", code, s.Stderr)
		}
	case <-time.After(startTimeout):
		tb.Fatalf("serve did not stop within %v", startTimeout)
	}
	if !strings.Contains(s.Stdout.String(), "custos stopped") {
		tb.Errorf("serve stdout lacks %q:\n%s", "custos stopped", s.Stdout)
	}
}

// client returns a custoshttp.Client for token.
func (s *testServer) client(token string) *custoshttp.Client {
	return custoshttp.NewClient(s.URL, token)
}

// runCLI runs one custos command in-process and returns its exit code and
// output.
func runCLI(tb testing.TB, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	var out, errOut bytes.Buffer
	code = run(ctx, args, &out, &errOut, noEnv)
	return code, out.String(), errOut.String()
}

// principals are the API keys of the principals createPrincipals makes.
type principals struct {
	AppID, CSID, MarketingID    custos.PrincipalID
	AppKey, CSKey, MarketingKey string
	App, CS, Marketing          *custoshttp.Client
}

// createPrincipals uses the admin key to make an "app" service, a
// "customer-service" staff member and a "marketing" service, each with an
// API key.
func createPrincipals(tb testing.TB, s *testServer, admin *custoshttp.Client) *principals {
	tb.Helper()
	ctx := context.Background()
	signed, until := time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour)
	make1 := func(name, kind, role string) (*custos.Principal, string) {
		p := &custos.Principal{Name: name, Kind: kind, Roles: []string{role}}
		if kind == custos.KindStaff { // staff need current prerequisites (S4)
			p.Prerequisites = &custos.Prerequisites{NDASignedAt: &signed, TrainingValidUntil: &until, BackgroundCheckAt: &signed}
		}
		if err := admin.CreatePrincipal(ctx, p); err != nil {
			tb.Fatalf("create principal %s: %v", name, err)
		}
		if !custos.ValidID("prn", string(p.ID)) {
			tb.Fatalf("principal %s: got id %q, want a prn_ id", name, p.ID)
		}
		k, err := admin.CreateAPIKey(ctx, p.ID)
		if err != nil {
			tb.Fatalf("create API key for %s: %v", name, err)
		}
		if k.Token == "" || k.PrincipalID != p.ID {
			tb.Fatalf("API key for %s: got token %q principal %q", name, k.Token, k.PrincipalID)
		}
		return p, k.Token
	}
	ps := &principals{}
	app, appKey := make1("shop app", custos.KindService, "app")
	cs, csKey := make1("客服 小林", custos.KindStaff, "customer-service")
	mk, mkKey := make1("campaign service", custos.KindService, "marketing")
	ps.AppID, ps.CSID, ps.MarketingID = app.ID, cs.ID, mk.ID
	ps.AppKey, ps.CSKey, ps.MarketingKey = appKey, csKey, mkKey
	ps.App, ps.CS, ps.Marketing = s.client(ps.AppKey), s.client(ps.CSKey), s.client(ps.MarketingKey)
	return ps
}

// wantCode fails unless err is a *custos.Error with code and returns it.
func wantCode(tb testing.TB, err error, code string) *custos.Error {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", code)
	}
	e := custos.AsError(err)
	if e == nil || e.Code != code {
		tb.Fatalf("got error %v (code %q), want code %s", err, custos.ErrorCode(err), code)
	}
	return e
}

// violationSet renders violations as sorted "field:rule" strings.
func violationSet(vs []custos.Violation) []string {
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		out = append(out, v.Field+":"+v.Rule)
	}
	slices.Sort(out)
	return out
}

// rawResponse is an HTTP response read whole.
type rawResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// rawRequest sends one HTTP request without the client, so that a test can
// look at the exact bytes the server answers with.
func rawRequest(tb testing.TB, method, url, token, purpose string, body any) rawResponse {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, url, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if purpose != "" {
		req.Header.Set("Custos-Purpose", purpose)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// recordingTransport keeps a copy of every error response body (status ≥
// 400) passing through it.
type recordingTransport struct {
	base   http.RoundTripper
	mu     sync.Mutex
	bodies [][]byte
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.base.RoundTrip(req)
	if err != nil || resp.StatusCode < 400 {
		return resp, err
	}
	b, rerr := io.ReadAll(resp.Body)
	if cerr := resp.Body.Close(); rerr == nil {
		rerr = cerr
	}
	if rerr != nil {
		return nil, rerr
	}
	rt.mu.Lock()
	rt.bodies = append(rt.bodies, b)
	rt.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func (rt *recordingTransport) all() [][]byte {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.bodies)
}

// allAuditEvents pages through the whole audit log as admin.
func allAuditEvents(tb testing.TB, admin *custoshttp.Client, f custos.AuditFilter) []*custos.AuditEvent {
	tb.Helper()
	var out []*custos.AuditEvent
	f.Limit = 1000
	for {
		page, err := admin.FindAuditEvents(context.Background(), f)
		if err != nil {
			tb.Fatalf("FindAuditEvents: %v", err)
		}
		out = append(out, page...)
		if len(page) < f.Limit {
			return out
		}
		f.AfterSeq = page[len(page)-1].Seq
	}
}

// copyDir copies the regular files of src (not recursive: a data directory
// is flat) into a new directory dst.
func copyDir(tb testing.TB, src, dst string) {
	tb.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		tb.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}

// readTree returns every regular file under dir as raw bytes, by path.
func readTree(tb testing.TB, dir string) map[string][]byte {
	tb.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a -shm or temporary file vanished meanwhile
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		out[path] = b
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// residentID returns first17 with its GB 11643 (ISO 7064 MOD 11-2) check
// character, computed here independently of the validate and seed packages.
func residentID(first17 string) string {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, w := range weights {
		sum += int(first17[i]-'0') * w
	}
	return first17 + string("10X98765432"[sum%11])
}

// badResidentID returns id with a wrong check character.
func badResidentID(id string) string {
	c := id[17]
	for _, alt := range "0123456789X" {
		if byte(alt) != c {
			return id[:17] + string(alt)
		}
	}
	panic("unreachable")
}

// luhn returns body with its Luhn check digit appended.
func luhn(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 { // doubled: the digit left of the check digit, and every second one
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + string(byte('0'+(10-sum%10)%10))
}

func ptr[T any](v T) *T { return &v }

// importAudit counts the import audit events: subjects stored (by id, how
// often) and rows refused.
func importAudit(tb testing.TB, admin *custoshttp.Client) (stored map[custos.SubjectID]int, denied int) {
	tb.Helper()
	action := custos.AuditSubjectImport
	stored = map[custos.SubjectID]int{}
	for _, ev := range allAuditEvents(tb, admin, custos.AuditFilter{Action: &action}) {
		if ev.Decision != custos.DecisionAllow {
			denied++
			continue
		}
		stored[ev.SubjectID]++
	}
	return stored, denied
}
