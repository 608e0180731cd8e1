package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/core"
	"custos/keys"
	"custos/notify"
	"custos/otp"
	"custos/webhook"
	"custos/workday"
)

// RightsConfig configures the customer-rights infrastructure (R7, R4):
// which notifier sends one-time codes and messages, the working-day
// calendar, the one-time code limits and the webhook alert threshold.
// Zero values mean the defaults. It is embedded in Config, so its keys
// sit at the top level of the config file. Secrets (SMTP password,
// gateway secret) come from the file or CUSTOS_* variables (or
// CUSTOS_*_FILE), never from flags, and custos config hides them.
type RightsConfig struct {
	Notifier            string `json:"notifier,omitempty"`              // file (default), smtp or webhook
	NotifyFile          string `json:"notify_file,omitempty"`           // file notifier: default DIR/notifications.jsonl
	SMTPAddr            string `json:"smtp_addr,omitempty"`             // host:port (587, STARTTLS)
	SMTPFrom            string `json:"smtp_from,omitempty"`             // sender address
	SMTPUsername        string `json:"smtp_username,omitempty"`         //
	SMTPPassword        string `json:"smtp_password,omitempty"`         // secret
	NotifyWebhookURL    string `json:"notify_webhook_url,omitempty"`    // SMS/e-mail gateway
	NotifyWebhookSecret string `json:"notify_webhook_secret,omitempty"` // secret, at least 32 characters
	Calendar            string `json:"calendar,omitempty"`              // company calendar JSON laid over the shipped one
	OTPTTL              string `json:"otp_ttl,omitempty"`               // duration; default 10m
	OTPMaxAttempts      int    `json:"otp_max_attempts,omitempty"`      // default 5
	OTPPerSubject       int    `json:"otp_per_subject_per_hour,omitempty"`
	OTPPerClient        int    `json:"otp_per_client_per_hour,omitempty"`
	WebhookAlertAfter   string `json:"webhook_alert_after,omitempty"` // duration; default 1h
	WebhookRetryBase    string `json:"webhook_retry_base,omitempty"`  // first retry delay, doubling; default 10s
	WebhookInterval     string `json:"webhook_interval,omitempty"`    // how often the leader delivers; default 5s
}

// rightsFlags are the rights flags (no secrets among them).
type rightsFlags struct {
	notifier, notifyFile, smtpAddr, smtpFrom, smtpUsername, notifyWebhookURL, calendar string
	webhookRetryBase, webhookInterval                                                  string
}

func (f *rightsFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.notifier, "notifier", "", "one-time codes and customer messages: file, smtp or webhook (env CUSTOS_NOTIFIER; default file)")
	fs.StringVar(&f.notifyFile, "notify-file", "", "file notifier's file (env CUSTOS_NOTIFY_FILE; default DIR/notifications.jsonl)")
	fs.StringVar(&f.smtpAddr, "smtp-addr", "", "SMTP server host:port, STARTTLS required (env CUSTOS_SMTP_ADDR)")
	fs.StringVar(&f.smtpFrom, "smtp-from", "", "SMTP sender address (env CUSTOS_SMTP_FROM)")
	fs.StringVar(&f.smtpUsername, "smtp-username", "", "SMTP user; password from CUSTOS_SMTP_PASSWORD(_FILE) (env CUSTOS_SMTP_USERNAME)")
	fs.StringVar(&f.notifyWebhookURL, "notify-webhook-url", "", "SMS/e-mail gateway URL; secret from CUSTOS_NOTIFY_WEBHOOK_SECRET(_FILE) (env CUSTOS_NOTIFY_WEBHOOK_URL)")
	fs.StringVar(&f.webhookRetryBase, "webhook-retry-base", "", "first webhook retry delay, doubling per attempt (env CUSTOS_WEBHOOK_RETRY_BASE; default 10s)")
	fs.StringVar(&f.webhookInterval, "webhook-interval", "", "how often the job leader delivers webhooks (env CUSTOS_WEBHOOK_INTERVAL; default 5s)")
	fs.StringVar(&f.calendar, "calendar", "", "working-day calendar JSON laid over the shipped China calendar (env CUSTOS_CALENDAR)")
}

// apply sets c from flags, then the environment (flags win), leaving
// what neither sets as the file gave it.
func (f *rightsFlags) apply(c *RightsConfig, getenv func(string) string) error {
	set := func(dst *string, flagV, env string) {
		if flagV != "" {
			*dst = flagV
		} else if v := getenv(env); v != "" {
			*dst = v
		}
	}
	set(&c.Notifier, f.notifier, "CUSTOS_NOTIFIER")
	set(&c.NotifyFile, f.notifyFile, "CUSTOS_NOTIFY_FILE")
	set(&c.SMTPAddr, f.smtpAddr, "CUSTOS_SMTP_ADDR")
	set(&c.SMTPFrom, f.smtpFrom, "CUSTOS_SMTP_FROM")
	set(&c.SMTPUsername, f.smtpUsername, "CUSTOS_SMTP_USERNAME")
	set(&c.NotifyWebhookURL, f.notifyWebhookURL, "CUSTOS_NOTIFY_WEBHOOK_URL")
	set(&c.Calendar, f.calendar, "CUSTOS_CALENDAR")
	set(&c.OTPTTL, "", "CUSTOS_OTP_TTL")
	set(&c.WebhookAlertAfter, "", "CUSTOS_WEBHOOK_ALERT_AFTER")
	set(&c.WebhookRetryBase, f.webhookRetryBase, "CUSTOS_WEBHOOK_RETRY_BASE")
	set(&c.WebhookInterval, f.webhookInterval, "CUSTOS_WEBHOOK_INTERVAL")
	for _, s := range []struct {
		dst  *string
		name string
	}{{&c.SMTPPassword, "CUSTOS_SMTP_PASSWORD"}, {&c.NotifyWebhookSecret, "CUSTOS_NOTIFY_WEBHOOK_SECRET"}} {
		if v := getenv(s.name); v != "" {
			*s.dst = v
		} else if p := getenv(s.name + "_FILE"); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				return fmt.Errorf("%s_FILE: %w", s.name, err)
			}
			*s.dst = strings.TrimRight(string(b), "\r\n")
		}
	}
	for _, n := range []struct {
		dst  *int
		name string
	}{{&c.OTPMaxAttempts, "CUSTOS_OTP_MAX_ATTEMPTS"}, {&c.OTPPerSubject, "CUSTOS_OTP_PER_SUBJECT_PER_HOUR"}, {&c.OTPPerClient, "CUSTOS_OTP_PER_CLIENT_PER_HOUR"}} {
		if v := getenv(n.name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 1 {
				return fmt.Errorf("%s %q: want a positive integer", n.name, v)
			}
			*n.dst = x
		}
	}
	return nil
}

// otpLimits returns the configured one-time code limits.
func (c RightsConfig) otpLimits() (otp.Limits, error) {
	l := otp.Limits{MaxAttempts: c.OTPMaxAttempts, PerSubject: c.OTPPerSubject, PerClient: c.OTPPerClient}
	if c.OTPTTL != "" {
		d, err := time.ParseDuration(c.OTPTTL)
		if err != nil {
			return l, fmt.Errorf("otp_ttl %q: want a duration such as 10m", c.OTPTTL)
		}
		l.TTL = d
	}
	d := otp.DefaultLimits()
	full := l
	if full.TTL == 0 {
		full.TTL = d.TTL
	}
	if full.MaxAttempts == 0 {
		full.MaxAttempts = d.MaxAttempts
	}
	if full.PerSubject == 0 {
		full.PerSubject = d.PerSubject
	}
	if full.PerClient == 0 {
		full.PerClient = d.PerClient
	}
	full.Window = d.Window
	if err := full.Validate(); err != nil {
		return l, err
	}
	return full, nil
}

// validate names the first bad rights setting; it never echoes a secret.
func (c RightsConfig) validate() error {
	switch c.Notifier {
	case "", "file":
	case "smtp":
		if c.SMTPAddr == "" || !strings.Contains(c.SMTPAddr, ":") {
			return fmt.Errorf("smtp_addr %q: want HOST:PORT for notifier smtp", c.SMTPAddr)
		}
		if !strings.Contains(c.SMTPFrom, "@") {
			return errors.New("smtp_from: a sender address is required for notifier smtp")
		}
	case "webhook":
		if err := webhook.CheckURL(c.NotifyWebhookURL); err != nil {
			return fmt.Errorf("notify_webhook_url: %w", err)
		}
		if len(c.NotifyWebhookSecret) < 32 {
			return errors.New("notify_webhook_secret: at least 32 characters are required for notifier webhook (CUSTOS_NOTIFY_WEBHOOK_SECRET or _FILE)")
		}
	default:
		return fmt.Errorf("notifier %q: want file, smtp or webhook", c.Notifier)
	}
	if _, err := c.otpLimits(); err != nil {
		return err
	}
	for _, d := range []struct{ key, v string }{{"webhook_retry_base", c.WebhookRetryBase}, {"webhook_interval", c.WebhookInterval}} {
		if d.v == "" {
			continue
		}
		if v, err := time.ParseDuration(d.v); err != nil || v < 10*time.Millisecond || v > time.Hour {
			return fmt.Errorf("%s %q: want a duration between 10ms and 1h", d.key, d.v)
		}
	}
	if c.WebhookAlertAfter != "" {
		if d, err := time.ParseDuration(c.WebhookAlertAfter); err != nil || d < time.Minute {
			return fmt.Errorf("webhook_alert_after %q: want a duration of at least 1m", c.WebhookAlertAfter)
		}
	}
	return nil
}

// redacted hides the secrets, for custos config.
func (c RightsConfig) redacted() RightsConfig {
	if c.SMTPPassword != "" {
		c.SMTPPassword = "***"
	}
	if c.NotifyWebhookSecret != "" {
		c.NotifyWebhookSecret = "***"
	}
	return c
}

// rights is the constructed rights infrastructure of a node. The request
// flows and the portal use it; serve only builds it and runs the
// deliverer.
type rights struct {
	notifier  notify.Notifier
	calendar  *workday.Calendar
	otp       *otp.Manager
	deliverer *core.WebhookDeliverer
	interval  time.Duration // between delivery passes
}

// newRights builds the notifier, calendar, one-time code manager and
// webhook deliverer from cfg for node n.
func newRights(cfg Config, n *node, logger *slog.Logger) (*rights, error) {
	rc := cfg.RightsConfig
	r := &rights{}
	switch rc.Notifier {
	case "", "file":
		path := rc.NotifyFile
		if path == "" {
			path = filepath.Join(cfg.Data, notify.FileName)
		}
		r.notifier = notify.NewFile(path)
		if logger != nil {
			logger.Warn("one-time codes go to a file, not to customers: set notifier to smtp or webhook for real use", "file", path)
		}
	case "smtp":
		r.notifier = notify.Multi{notify.Email: &notify.SMTP{Addr: rc.SMTPAddr, From: rc.SMTPFrom,
			Username: rc.SMTPUsername, Password: rc.SMTPPassword}}
	case "webhook":
		r.notifier = &notify.Webhook{URL: rc.NotifyWebhookURL, Secret: []byte(rc.NotifyWebhookSecret)}
	}
	cal := workday.Default()
	if rc.Calendar != "" {
		var err error
		if cal, err = workday.LoadFile(rc.Calendar); err != nil {
			return nil, fmt.Errorf("calendar %s: %w", rc.Calendar, err)
		}
	}
	cal.Logger = logger
	r.calendar = cal
	limits, err := rc.otpLimits()
	if err != nil {
		return nil, err
	}
	key, err := n.ring.DeriveKey("otp")
	if err != nil {
		return nil, fmt.Errorf("one-time code key: %w", err)
	}
	defer keys.Zero(key)
	if r.otp, err = otp.New(key, limits); err != nil {
		return nil, err
	}
	r.deliverer = &core.WebhookDeliverer{Service: n.svc, Logger: logger}
	if rc.WebhookAlertAfter != "" {
		r.deliverer.AlertAfter, _ = time.ParseDuration(rc.WebhookAlertAfter) // checked by validate
	}
	if rc.WebhookRetryBase != "" {
		r.deliverer.BaseDelay, _ = time.ParseDuration(rc.WebhookRetryBase) // checked by validate
	}
	r.interval = WebhookDeliveryInterval
	if rc.WebhookInterval != "" {
		r.interval, _ = time.ParseDuration(rc.WebhookInterval) // checked by validate
	}
	return r, nil
}

// OTPRetention is how long a challenge is kept after it expires: far
// longer than the rate-limit window (which counts the last hour's rows),
// short enough that the store does not collect a history of sign-ins.
const OTPRetention = 24 * time.Hour

// purgeOTP deletes one-time code challenges that expired more than
// OTPRetention ago; it runs with the other jobs on the job leader.
func (j *jobRunner) purgeOTP(ctx context.Context) {
	var n int
	err := j.n.store.Update(ctx, func(tx custos.Tx) (err error) {
		n, err = tx.DeleteOTPChallenges(ctx, tx.Now().Add(-OTPRetention))
		return err
	})
	if err != nil {
		j.logger.Warn("purging one-time code challenges failed", "err", err)
	} else if n > 0 {
		j.logger.Debug("one-time code challenges purged", "count", n)
	}
}
