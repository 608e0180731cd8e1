package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"custos/notify"
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
