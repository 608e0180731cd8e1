package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
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
	custoshttp "custos/http"
	"custos/keys"
	"custos/notify"
	"custos/sqlite"
	"custos/webhook"
	"custos/workday"
)

// TestRightsConfig: the notifier, calendar and limits come from flags,
// environment or file; bad settings name the key; secrets are read from
// CUSTOS_*_FILE and hidden by custos config.
func TestRightsConfig(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "gw.secret")
	const secret = "gw-secret-0123456789-0123456789-abcdef"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		check   func(t *testing.T, c Config)
		wantErr string
	}{
		{name: "defaults", check: func(t *testing.T, c Config) {
			if c.Notifier != "" || c.Calendar != "" {
				t.Errorf("%+v", c.RightsConfig)
			}
			l, err := c.otpLimits()
			if err != nil || l.TTL.Minutes() != 10 || l.MaxAttempts != 5 || l.PerSubject != 5 || l.PerClient != 20 {
				t.Errorf("limits %+v %v", l, err)
			}
		}},
		{name: "webhook notifier from env with secret file", env: map[string]string{"CUSTOS_NOTIFIER": "webhook",
			"CUSTOS_NOTIFY_WEBHOOK_URL": "https://sms.example.com/send", "CUSTOS_NOTIFY_WEBHOOK_SECRET_FILE": secretFile},
			check: func(t *testing.T, c Config) {
				if c.NotifyWebhookSecret != secret || c.Notifier != "webhook" {
					t.Errorf("%+v", c.RightsConfig)
				}
			}},
		{name: "flag beats env", args: []string{"-notifier", "file", "-calendar", "/x/cal.json"}, env: map[string]string{"CUSTOS_NOTIFIER": "smtp"},
			check: func(t *testing.T, c Config) {
				if c.Notifier != "file" || c.Calendar != "/x/cal.json" {
					t.Errorf("%+v", c.RightsConfig)
				}
			}},
		{name: "file keys", file: `{"notifier": "smtp", "smtp_addr": "mail.example.com:587", "smtp_from": "privacy@shop.example", "otp_ttl": "5m", "otp_per_subject_per_hour": 3}`,
			check: func(t *testing.T, c Config) {
				l, _ := c.otpLimits()
				if c.Notifier != "smtp" || l.TTL.Minutes() != 5 || l.PerSubject != 3 {
					t.Errorf("%+v %+v", c.RightsConfig, l)
				}
			}},
		{name: "unknown notifier", args: []string{"-notifier", "pigeon"}, wantErr: "notifier"},
		{name: "smtp without addr", args: []string{"-notifier", "smtp"}, wantErr: "smtp_addr"},
		{name: "webhook over plain http", env: map[string]string{"CUSTOS_NOTIFIER": "webhook", "CUSTOS_NOTIFY_WEBHOOK_URL": "http://sms.example.com/send",
			"CUSTOS_NOTIFY_WEBHOOK_SECRET": secret}, wantErr: "notify_webhook_url"},
		{name: "webhook short secret", env: map[string]string{"CUSTOS_NOTIFIER": "webhook", "CUSTOS_NOTIFY_WEBHOOK_URL": "https://sms.example.com/send",
			"CUSTOS_NOTIFY_WEBHOOK_SECRET": "short"}, wantErr: "notify_webhook_secret"},
		{name: "bad otp ttl", env: map[string]string{"CUSTOS_OTP_TTL": "3h"}, wantErr: "otp ttl"},
		{name: "bad attempts", env: map[string]string{"CUSTOS_OTP_MAX_ATTEMPTS": "x"}, wantErr: "CUSTOS_OTP_MAX_ATTEMPTS"},
		{name: "bad alert threshold", file: `{"webhook_alert_after": "5s"}`, wantErr: "webhook_alert_after"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			if tt.file != "" {
				if err := os.WriteFile(filepath.Join(d, "custos.json"), []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			fs, cf := newFlags("test", &bytes.Buffer{})
			env := map[string]string{"CUSTOS_DATA": d}
			for k, v := range tt.env {
				env[k] = v
			}
			c, err := cf.parse(fs, tt.args, envOf(env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an error naming %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}

	// custos config hides the secrets.
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"config", "-data", dir}, &out, &errOut, envOf(map[string]string{
		"CUSTOS_NOTIFIER": "webhook", "CUSTOS_NOTIFY_WEBHOOK_URL": "https://sms.example.com/send",
		"CUSTOS_NOTIFY_WEBHOOK_SECRET_FILE": secretFile, "CUSTOS_SMTP_PASSWORD": "smtp-pass-value"}))
	if code != 0 {
		t.Fatalf("config: %d %s", code, errOut.String())
	}
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "smtp-pass-value") {
		t.Errorf("custos config shows a secret:\n%s", out.String())
	}
	var shown map[string]any
	if err := json.Unmarshal(out.Bytes(), &shown); err != nil || shown["notify_webhook_secret"] != "***" || shown["notifier"] != "webhook" {
		t.Errorf("config output %s (%v)", out.String(), err)
	}
}

// TestNewRights: serve builds the default file notifier in the data
// directory, a company calendar laid over the shipped one, the one-time
// code manager and the deliverer; a broken calendar file stops it.
func TestNewRights(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Data = dir
	n, err := openNode(context.Background(), cfg, noEnv, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	cal := filepath.Join(dir, "calendar.json")
	if err := os.WriteFile(cal, []byte(`{"version":1,"years":[{"year":2026,"holidays":[{"name":"年会","from":"2026-12-31","to":"2026-12-31"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Calendar = cal
	r, err := newRights(cfg, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := r.notifier.(*notify.File)
	if !ok || f.Path != filepath.Join(dir, notify.FileName) {
		t.Errorf("notifier %#v, want the file notifier in the data directory", r.notifier)
	}
	if r.calendar.IsWorkingDay(mustDay("2026-12-31")) || !r.calendar.IsWorkingDay(mustDay("2026-02-14")) {
		t.Error("company calendar not laid over the shipped one")
	}
	if r.otp == nil || r.deliverer == nil || r.otp.Limits().TTL.Minutes() != 10 {
		t.Error("otp manager or deliverer missing")
	}
	if err := os.WriteFile(cal, []byte(`{"version":1,"years":[{"year":2026,"holidays":[{"name":"x","from":"2026-02-30","to":"2026-03-01"}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newRights(cfg, n, nil); err == nil || !strings.Contains(err.Error(), "calendar") {
		t.Errorf("broken calendar: %v", err)
	}
}

func mustDay(s string) time.Time {
	t, err := time.ParseInLocation(time.DateOnly, s, workday.Shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

// TestServeDeliversWebhooks (R4, end to end): a recipient registered
// through the API of a running server receives, signed, an outbox event
// written to the server's store, and the API shows it delivered; /metrics
// carries the deliverer's counters.
func TestServeDeliversWebhooks(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	ctx := context.Background()

	var (
		mu     sync.Mutex
		secret []byte
		got    []string
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header, b, time.Now(), 0); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got = append(got, r.Header.Get(webhook.HeaderEventID))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	rc, err := admin.CreateWebhookRecipient(ctx, custoshttp.WebhookRecipientRequest{Name: "crm", URL: recv.URL, Events: []string{"subject.erased"}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = []byte(rc.Secret)
	mu.Unlock()

	// Write an event as a core flow would, through a second handle on the
	// server's store.
	db, err := sqlite.Open(ctx, filepath.Join(dir, "custos.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ring, err := keys.LoadKeyringFile(filepath.Join(dir, "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	svc := core.New(db, custos.DefaultCatalog(), ring, nil, nil)
	var ev *custos.OutboxEvent
	if err := db.Update(ctx, func(tx custos.Tx) (err error) {
		ev, err = svc.EmitTx(ctx, tx, "subject.erased", "sub_e2e", map[string]string{"subject_id": "sub_e2e"})
		return err
	}); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		ds, err := admin.FindWebhookDeliveries(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && ds[0].Status == custos.DeliveryDelivered {
			if ds[0].Attempts != 1 || ds[0].LastCode != http.StatusNoContent {
				t.Errorf("delivery %+v", ds[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v\nlogs:\n%s", ds, srv.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	if len(got) != 1 || got[0] != ev.ID {
		t.Errorf("receiver got %v, want [%s]", got, ev.ID)
	}
	mu.Unlock()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `custos_webhook_deliveries_total{result="delivered"} 1`) {
		t.Errorf("metrics lack the delivery counter:\n%s", m)
	}
}

// TestServeRefusesBadRightsConfig: a broken notifier setting stops serve
// before it listens, naming the key.
func TestServeRefusesBadRightsConfig(t *testing.T) {
	code, _, stderr := runCLI(t, context.Background(), "serve", "--data", t.TempDir(), "--addr", "127.0.0.1:0", "--notifier", "pigeon")
	if code == 0 || !strings.Contains(stderr, "notifier") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestPurgeOTP: the job deletes challenges expired more than a day ago and
// keeps the recent ones the rate limits count.
func TestPurgeOTP(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Data = t.TempDir()
	ctx := context.Background()
	n, err := openNode(ctx, cfg, noEnv, nil, true)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	now := time.Now()
	for id, exp := range map[string]time.Time{"otp_old": now.Add(-25 * time.Hour), "otp_recent": now.Add(-time.Hour)} {
		c := &custos.OTPChallenge{ID: id, SubjectID: "sub_1", Purpose: "p", Channel: "sms", CodeHash: []byte{1}, ClientHash: []byte{2},
			MaxAttempts: 5, Status: custos.OTPPending, CreatedAt: exp.Add(-10 * time.Minute), ExpiresAt: exp}
		if err := n.store.Update(ctx, func(tx custos.Tx) error { return tx.InsertOTPChallenge(ctx, c) }); err != nil {
			t.Fatal(err)
		}
	}
	j := &jobRunner{n: n, logger: newLogger(cfg, io.Discard)}
	j.purgeOTP(ctx)
	if err := n.store.View(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetOTPChallenge(ctx, "otp_old"); custos.ErrorCode(err) != custos.ENOTFOUND {
			t.Errorf("old challenge: %v, want purged", err)
		}
		_, err := tx.GetOTPChallenge(ctx, "otp_recent")
		return err
	}); err != nil {
		t.Errorf("recent challenge: %v", err)
	}
}
