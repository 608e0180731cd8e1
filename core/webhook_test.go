package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/sqlite"
	"custos/webhook"
)

// testClock is a settable store clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// receiver is a downstream system: it verifies each request and answers
// with the next status of its script (then 200 for ever).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	secret []byte
	script []int
	calls  []webhookCall
}

type webhookCall struct {
	eventID string
	body    core.WebhookBody
	verr    error
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{t: t, script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		c := webhookCall{eventID: req.Header.Get(webhook.HeaderEventID)}
		c.verr = webhook.Verify(r.secret, req.Header, b, time.Now(), 0)
		_ = json.Unmarshal(b, &c.body)
		r.calls = append(r.calls, c)
		status := http.StatusOK
		if len(r.script) > 0 {
			status, r.script = r.script[0], r.script[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) Calls() []webhookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]webhookCall(nil), r.calls...)
}

type whEnv struct {
	*env
	clock *testClock
	path  string
}

func newWebhookEnv(t *testing.T) *whEnv {
	t.Helper()
	clk := &testClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "custos.db")
	return &whEnv{env: newEnvOn(t, openSQLite(t, path, clk.Now)), clock: clk, path: path}
}

func (e *whEnv) register(t *testing.T, r *receiver, name string, events ...string) *custos.WebhookRecipient {
	t.Helper()
	rc := &custos.WebhookRecipient{Name: name, URL: r.srv.URL + "/hooks", Events: events}
	if err := e.svc.CreateWebhookRecipient(e.admin, rc); err != nil {
		t.Fatalf("register: %v", err)
	}
	r.mu.Lock()
	r.secret = []byte(rc.Secret)
	r.mu.Unlock()
	return rc
}

// emit writes an outbox event in a store transaction, as core flows do.
func emit(t *testing.T, svc *core.Service, st custos.Store, typ string, sub custos.SubjectID) *custos.OutboxEvent {
	t.Helper()
	var ev *custos.OutboxEvent
	if err := st.Update(t.Context(), func(tx custos.Tx) (err error) {
		ev, err = svc.EmitTx(t.Context(), tx, typ, sub, map[string]any{"subject_id": sub, "reason": "erasure"})
		return err
	}); err != nil {
		t.Fatalf("emit: %v", err)
	}
	return ev
}

func (e *whEnv) status(t *testing.T, eventID string) []*custos.WebhookDelivery {
	t.Helper()
	ds, err := e.svc.FindWebhookDeliveries(e.admin, eventID)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// TestWebhookRetriedUntilAcknowledged (R4): a receiver that fails twice
// and then acknowledges gets the same signed event three times; the
// delivery goes pending → retrying → delivered with 3 attempts.
func TestWebhookRetriedUntilAcknowledged(t *testing.T) {
	e := newWebhookEnv(t)
	r := newReceiver(t, 500, 503)
	rc := e.register(t, r, "crm", "subject.erased")
	ev := emit(t, e.svc, e.db, "subject.erased", "sub_1")

	d := &core.WebhookDeliverer{Service: e.svc, Jitter: func() float64 { return 0 }}
	want := []struct {
		status   string
		attempts int
		code     int
	}{{custos.DeliveryRetrying, 1, 500}, {custos.DeliveryRetrying, 2, 503}, {custos.DeliveryDelivered, 3, 200}}
	if ds := e.status(t, ev.ID); len(ds) != 1 || ds[0].Status != custos.DeliveryPending || ds[0].RecipientID != rc.ID {
		t.Fatalf("before delivery: %+v, want one pending delivery to %s", ds, rc.ID)
	}
	for i, w := range want {
		n, err := d.RunOnce(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("run %d: attempted %d, err %v", i+1, n, err)
		}
		ds := e.status(t, ev.ID)
		if ds[0].Status != w.status || ds[0].Attempts != w.attempts || ds[0].LastCode != w.code {
			t.Fatalf("after run %d: %+v, want %s, %d attempts, code %d", i+1, ds[0], w.status, w.attempts, w.code)
		}
		if w.status == custos.DeliveryRetrying {
			// Not due again until its backoff has passed.
			if n, _ := d.RunOnce(t.Context()); n != 0 {
				t.Fatalf("retried %d before the backoff", n)
			}
			if !ds[0].NextAttemptAt.After(e.clock.Now()) {
				t.Errorf("next attempt %v not after now", ds[0].NextAttemptAt)
			}
			e.clock.Add(2 * time.Hour)
		}
	}
	calls := r.Calls()
	if len(calls) != 3 {
		t.Fatalf("receiver saw %d requests, want 3", len(calls))
	}
	for i, c := range calls {
		if c.verr != nil || c.eventID != ev.ID || c.body.ID != ev.ID || c.body.Type != "subject.erased" || c.body.SubjectID != "sub_1" {
			t.Errorf("request %d: %+v (verify %v)", i+1, c, c.verr)
		}
	}
	if st := d.Stats(); st.Delivered != 1 || st.Failed != 2 {
		t.Errorf("stats %+v", st)
	}
	// Delivered: never sent again.
	e.clock.Add(24 * time.Hour)
	if n, _ := d.RunOnce(t.Context()); n != 0 || len(r.Calls()) != 3 {
		t.Errorf("delivered event sent again")
	}
}

// TestWebhookSubscriptions: only enabled recipients subscribed to the
// event's type (or "*") get a delivery.
func TestWebhookSubscriptions(t *testing.T) {
	e := newWebhookEnv(t)
	r := newReceiver(t)
	a := e.register(t, r, "crm", "subject.erased")
	b := e.register(t, r, "all", "*")
	e.register(t, r, "other", "account.closed")
	off := e.register(t, r, "off", "*")
	if err := e.svc.DisableWebhookRecipient(e.admin, off.ID); err != nil {
		t.Fatal(err)
	}
	ev := emit(t, e.svc, e.db, "subject.erased", "sub_1")
	ds := e.status(t, ev.ID)
	var got []string
	for _, d := range ds {
		got = append(got, d.RecipientID)
	}
	want := []string{a.ID, b.ID}
	if strings.Join(got, ",") != strings.Join(sortedIDs(want), ",") {
		t.Errorf("deliveries to %v, want %v", got, sortedIDs(want))
	}
	rs, err := e.svc.FindWebhookRecipients(e.admin)
	if err != nil || len(rs) != 4 {
		t.Fatalf("list: %d %v", len(rs), err)
	}
	for _, x := range rs {
		if x.Secret != "" || len(x.SealedSecret) == 0 {
			t.Errorf("listed recipient %s: secret %q sealed %d bytes", x.Name, x.Secret, len(x.SealedSecret))
		}
	}
	if _, err := e.svc.FindWebhookDeliveries(e.admin, "evt_unknown"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("unknown event: %v", err)
	}
}

func sortedIDs(ids []string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestWebhookRecipientValidation: bad input names the field; only roles
// with webhook.manage may register; names are unique; the secret is stored
// sealed (S3).
func TestWebhookRecipientValidation(t *testing.T) {
	e := newWebhookEnv(t)
	tests := []struct {
		name  string
		r     custos.WebhookRecipient
		field string
		rule  string
	}{
		{"no name", custos.WebhookRecipient{URL: "https://crm.example.com/h", Events: []string{"*"}}, "name", "required"},
		{"plain http remote", custos.WebhookRecipient{Name: "x", URL: "http://crm.example.com/h", Events: []string{"*"}}, "url", "https"},
		{"not a URL", custos.WebhookRecipient{Name: "x", URL: "crm", Events: []string{"*"}}, "url", "url"},
		{"credentials in URL", custos.WebhookRecipient{Name: "x", URL: "https://u:p@crm.example.com/h", Events: []string{"*"}}, "url", "url"},
		{"no events", custos.WebhookRecipient{Name: "x", URL: "https://crm.example.com/h"}, "events", "required"},
		{"bad event", custos.WebhookRecipient{Name: "x", URL: "https://crm.example.com/h", Events: []string{"Subject Erased"}}, "events", "event_type"},
		{"short secret", custos.WebhookRecipient{Name: "x", URL: "https://crm.example.com/h", Events: []string{"*"}, Secret: "short"}, "secret", "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.svc.CreateWebhookRecipient(e.admin, &tt.r)
			ce := custos.AsError(err)
			if ce == nil || ce.Code != custos.EINVALID || len(ce.Violations) == 0 || ce.Violations[0].Field != tt.field || ce.Violations[0].Rule != tt.rule {
				t.Errorf("got %v, want EINVALID %s/%s", err, tt.field, tt.rule)
			}
		})
	}
	ok := &custos.WebhookRecipient{Name: "crm", URL: "https://crm.example.com/h", Events: []string{"subject.erased"}}
	if err := e.svc.CreateWebhookRecipient(e.admin, ok); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ok.Secret, "whsec_") || len(ok.Secret) < 40 {
		t.Errorf("generated secret %q", ok.Secret)
	}
	dup := &custos.WebhookRecipient{Name: "crm", URL: "https://crm.example.com/h", Events: []string{"*"}}
	if err := e.svc.CreateWebhookRecipient(e.admin, dup); custos.ErrorCode(err) != custos.ECONFLICT {
		t.Errorf("duplicate name: %v", err)
	}
	cs := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_cs", Roles: []string{"customer_service"}})
	if err := e.svc.CreateWebhookRecipient(cs, &custos.WebhookRecipient{Name: "y", URL: "https://a.example/h", Events: []string{"*"}}); custos.ErrorCode(err) != custos.EFORBIDDEN {
		t.Errorf("customer service registering: %v, want EFORBIDDEN", err)
	}
	if err := e.svc.DisableWebhookRecipient(e.admin, "whk_nope"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("disable unknown: %v", err)
	}
	if err := e.db.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal"} {
		b, _ := os.ReadFile(e.path + suffix)
		if bytes.Contains(b, []byte(ok.Secret)) {
			t.Errorf("database file%s holds the webhook secret in clear", suffix)
		}
	}
}

// TestWebhookSurvivesRestart: an event written before a restart is
// delivered by the new process (the outbox rows persist).
func TestWebhookSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "custos.db")
	ring, _ := keys.NewKeyring(nil)
	signer, _ := keys.NewSigner(nil)
	admin := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})
	r := newReceiver(t)

	db1, err := sqlite.Open(t.Context(), path, sqlite.Options{Migrate: true})
	if err != nil {
		t.Fatal(err)
	}
	svc1 := core.New(db1, custos.DefaultCatalog(), ring, signer, nil)
	rc := &custos.WebhookRecipient{Name: "crm", URL: r.srv.URL, Events: []string{"*"}}
	if err := svc1.CreateWebhookRecipient(admin, rc); err != nil {
		t.Fatal(err)
	}
	r.secret = []byte(rc.Secret)
	ev := emit(t, svc1, db1, "account.closed", "sub_9")
	if err := db1.Close(); err != nil { // the process stops before delivering
		t.Fatal(err)
	}

	db2, err := sqlite.Open(t.Context(), path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	svc2 := core.New(db2, custos.DefaultCatalog(), ring, signer, nil)
	d := &core.WebhookDeliverer{Service: svc2}
	if n, err := d.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("after restart: attempted %d, err %v", n, err)
	}
	calls := r.Calls()
	if len(calls) != 1 || calls[0].eventID != ev.ID || calls[0].verr != nil {
		t.Fatalf("receiver calls %+v", calls)
	}
	ds, err := svc2.FindWebhookDeliveries(admin, ev.ID)
	if err != nil || len(ds) != 1 || ds[0].Status != custos.DeliveryDelivered {
		t.Fatalf("status after restart: %+v %v", ds, err)
	}
}

// TestWebhookUnacknowledgedAlert: a recipient still not acknowledging
// past the threshold raises one alert: an audit event, a log line and a
// metric, holding ids only (S6; nothing personal).
func TestWebhookUnacknowledgedAlert(t *testing.T) {
	e := newWebhookEnv(t)
	r := newReceiver(t, 500, 500, 500, 500, 500, 500)
	rc := e.register(t, r, "crm", "*")
	ev := emit(t, e.svc, e.db, "subject.erased", "sub_1")
	var logs bytes.Buffer
	d := &core.WebhookDeliverer{Service: e.svc, AlertAfter: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Alerts != 0 {
		t.Fatal("alert before the threshold")
	}
	e.clock.Add(61 * time.Minute)
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.clock.Add(2 * time.Hour)
	if _, err := d.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if st := d.Stats(); st.Alerts != 1 {
		t.Errorf("alerts %d, want exactly 1", st.Alerts)
	}
	action := custos.AuditWebhookUnacked
	evs, err := e.svc.FindAuditEvents(e.admin, custos.AuditFilter{Action: &action})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || !strings.Contains(evs[0].Reason, rc.ID) || !strings.Contains(evs[0].Reason, ev.ID) || evs[0].ActorID != "system" {
		t.Fatalf("audit %+v", evs)
	}
	if !strings.Contains(logs.String(), "has not acknowledged") || !strings.Contains(logs.String(), ev.ID) {
		t.Errorf("log: %s", logs.String())
	}
	for _, leak := range []string{rc.Secret, "erasure", r.srv.URL} {
		if strings.Contains(logs.String(), leak) || strings.Contains(evs[0].Reason, leak) {
			t.Errorf("alert holds %q", leak)
		}
	}
	var m strings.Builder
	d.WriteMetrics(&m)
	if !strings.Contains(m.String(), "custos_webhook_unacknowledged_alerts_total 1") {
		t.Errorf("metrics:\n%s", m.String())
	}
}

// TestBackoff: the delay doubles from BaseDelay, is capped at MaxDelay,
// and jitter stays within [delay/2, delay).
func TestBackoff(t *testing.T) {
	for _, j := range []float64{0, 0.5, 0.999} {
		d := &core.WebhookDeliverer{BaseDelay: 10 * time.Second, MaxDelay: time.Hour, Jitter: func() float64 { return j }, Service: core.New(nil, nil, nil, nil, nil)}
		prev := time.Duration(0)
		for n := 1; n <= 40; n++ {
			got := d.Backoff(n)
			full := min(10*time.Second<<(min(n, 30)-1), time.Hour)
			if n > 30 {
				full = time.Hour
			}
			if got < full/2 || got >= full {
				t.Fatalf("jitter %v attempt %d: %v outside [%v, %v)", j, n, got, full/2, full)
			}
			if got < prev {
				t.Fatalf("jitter %v: backoff shrank at attempt %d", j, n)
			}
			prev = got
		}
	}
}

// BenchmarkWebhookDelivery: signed deliveries to a loopback receiver that
// acknowledges at once, on SQLite; each op is one event delivered.
func BenchmarkWebhookDelivery(b *testing.B) {
	db, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	ring, _ := keys.NewKeyring(nil)
	svc := core.New(db, custos.DefaultCatalog(), ring, nil, nil)
	admin := custos.NewContextWithActor(context.Background(), &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	if err := svc.CreateWebhookRecipient(admin, &custos.WebhookRecipient{Name: "crm", URL: recv.URL, Events: []string{"*"}}); err != nil {
		b.Fatal(err)
	}
	d := &core.WebhookDeliverer{Service: svc}
	for b.Loop() {
		if err := db.Update(b.Context(), func(tx custos.Tx) error {
			_, err := svc.EmitTx(b.Context(), tx, "subject.erased", "sub_1", map[string]string{"subject_id": "sub_1"})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		if n, err := d.RunOnce(b.Context()); err != nil || n != 1 {
			b.Fatal(n, err)
		}
	}
}
