package core

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"custos"
	"custos/keys"
	"custos/webhook"
)

// The transactional outbox (R4, R6): an event is written in the same store
// transaction as the change it reports (EmitTx), with one delivery row per
// subscribed recipient; a deliverer on the leader node POSTs it to each,
// signed (package webhook), and retries with backoff until a 2xx.

// eventTypeRE is what an event type (or subscription) looks like.
var eventTypeRE = regexp.MustCompile(`^(\*|[a-z][a-z0-9_.-]{0,62})$`)

// webhookSecretAAD binds a sealed secret to its recipient row.
func webhookSecretAAD(id string) []byte { return keys.AAD("webhook_recipients", "secret", id) }

// webhookKey is the key sealing recipients' signing secrets, derived from
// the master keys (stable across rotations).
func (s *Service) webhookKey() ([]byte, error) { return s.Keyring().DeriveKey("webhook-secret") }

// CreateWebhookRecipient registers a downstream endpoint (requires
// webhook.manage). A missing Secret is generated; the secret is returned in
// r.Secret this once and stored sealed. Returns EINVALID naming the field
// (name, url, events, secret) and ECONFLICT for a name in use.
func (s *Service) CreateWebhookRecipient(ctx context.Context, r *custos.WebhookRecipient) error {
	ev := event(ctx, custos.AuditWebhookCreate, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActWebhookManage); err != nil {
		return err
	}
	var vs []custos.Violation
	r.Name = strings.TrimSpace(r.Name)
	if n := utf8.RuneCountInString(r.Name); n == 0 || n > 100 {
		vs = append(vs, custos.Violation{Field: "name", Rule: "required", Detail: "1–100 characters"})
	}
	if len(r.URL) > 2000 {
		vs = append(vs, custos.Violation{Field: "url", Rule: "max_length", Detail: "at most 2000 characters"})
	} else if err := webhook.CheckURL(r.URL); err != nil {
		v := custos.Violation{Field: "url", Rule: "url"}
		if ue := (*webhook.URLError)(nil); errors.As(err, &ue) {
			v.Rule, v.Detail = ue.Rule, ue.Detail
		}
		vs = append(vs, v)
	}
	if len(r.Events) == 0 || len(r.Events) > 50 {
		vs = append(vs, custos.Violation{Field: "events", Rule: "required", Detail: "1–50 event types, or \"*\""})
	}
	for _, e := range r.Events {
		if !eventTypeRE.MatchString(e) {
			vs = append(vs, custos.Violation{Field: "events", Rule: "event_type", Detail: "lower-case letters, digits, '.', '_', '-', or \"*\""})
			break
		}
	}
	if r.Secret != "" && (len(r.Secret) < 32 || len(r.Secret) > 200) {
		vs = append(vs, custos.Violation{Field: "secret", Rule: "length", Detail: "32–200 characters, or empty to generate one"})
	}
	if len(vs) > 0 {
		return s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "The webhook recipient was not registered.", Violations: vs})
	}
	if r.Secret == "" {
		b := make([]byte, 32)
		if _, err := io.ReadFull(s.rand, b); err != nil {
			return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
		}
		r.Secret = "whsec_" + base64.RawURLEncoding.EncodeToString(b)
	}
	r.ID = custos.NewID("whk")
	key, err := s.webhookKey()
	if err != nil {
		return err
	}
	defer keys.Zero(key)
	r.SealedSecret, err = keys.Seal(key, []byte(r.Secret), webhookSecretAAD(r.ID), s.rand)
	if err != nil {
		return err
	}
	r.Events = slices.Compact(slices.Sorted(slices.Values(r.Events)))
	r.Disabled = false
	ev.Reason = "recipient " + r.ID
	return s.run(ctx, ev, func(tx custos.Tx) error {
		r.CreatedAt, r.UpdatedAt = tx.Now(), tx.Now()
		return tx.InsertWebhookRecipient(ctx, r)
	})
}

// FindWebhookRecipients lists the recipients, without secrets (requires
// webhook.manage).
func (s *Service) FindWebhookRecipients(ctx context.Context) ([]*custos.WebhookRecipient, error) {
	ev := event(ctx, custos.AuditWebhookList, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActWebhookManage); err != nil {
		return nil, err
	}
	var out []*custos.WebhookRecipient
	err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		out, err = tx.ListWebhookRecipients(ctx)
		return err
	})
	return out, err
}

// DisableWebhookRecipient stops new events going to a recipient (requires
// webhook.manage). Deliveries already queued are held, not sent, and raise
// the unacknowledged alert in time. Returns ENOTFOUND for an unknown id.
func (s *Service) DisableWebhookRecipient(ctx context.Context, id string) error {
	ev := event(ctx, custos.AuditWebhookDisable, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActWebhookManage); err != nil {
		return err
	}
	// Only a well-formed id goes into the audit log: the path is the
	// caller's to fill with anything.
	if !custos.ValidID("whk", id) {
		return custos.Errorf(custos.ENOTFOUND, "Recipient not found.")
	}
	ev.Reason = "recipient " + id
	return s.run(ctx, ev, func(tx custos.Tx) error {
		return tx.SetWebhookRecipientDisabled(ctx, id, true)
	})
}

// FindWebhookDeliveries returns each recipient's delivery status for an
// event (requires webhook.manage). Returns ENOTFOUND for an unknown event.
func (s *Service) FindWebhookDeliveries(ctx context.Context, eventID string) ([]*custos.WebhookDelivery, error) {
	ev := event(ctx, custos.AuditWebhookList, "", nil, nil)
	if err := s.requireAction(ctx, ev, custos.ActWebhookManage); err != nil {
		return nil, err
	}
	if !custos.ValidID("evt", eventID) {
		return nil, custos.Errorf(custos.ENOTFOUND, "Event not found.")
	}
	var out []*custos.WebhookDelivery
	err := s.store.View(ctx, func(tx custos.Tx) error {
		if _, err := tx.GetOutboxEvent(ctx, eventID); err != nil {
			return err
		}
		var err error
		out, err = tx.ListWebhookDeliveries(ctx, eventID)
		return err
	})
	return out, err
}

// EmitTx writes an outbox event in tx — the caller's transaction, so the
// event exists exactly when the change it reports does — with a pending
// delivery to every enabled recipient subscribed to typ (or to "*").
// data must hold ids and names only, never personal values: it is sent
// to every subscribed recipient. The event's id is in the returned event;
// keep it to show the deliveries' status (tx.ListWebhookDeliveries).
func (s *Service) EmitTx(ctx context.Context, tx custos.Tx, typ string, subject custos.SubjectID, data any) (*custos.OutboxEvent, error) {
	if !eventTypeRE.MatchString(typ) || typ == "*" {
		return nil, custos.Invalid("Bad event type.", custos.Violation{Field: "type", Rule: "event_type"})
	}
	payload, err := json.Marshal(data)
	if err != nil {
		return nil, &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: fmt.Errorf("outbox payload: %w", err)}
	}
	e := &custos.OutboxEvent{ID: custos.NewID("evt"), Type: typ, SubjectID: subject, Payload: payload, CreatedAt: tx.Now()}
	if err := tx.InsertOutboxEvent(ctx, e); err != nil {
		return nil, err
	}
	rs, err := tx.ListWebhookRecipients(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if r.Disabled || !(slices.Contains(r.Events, typ) || slices.Contains(r.Events, "*")) {
			continue
		}
		d := &custos.WebhookDelivery{EventID: e.ID, RecipientID: r.ID, Status: custos.DeliveryPending,
			NextAttemptAt: e.CreatedAt, CreatedAt: e.CreatedAt}
		if err := tx.InsertWebhookDelivery(ctx, d); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// WebhookBody is the JSON body POSTed to a recipient for an event.
type WebhookBody struct {
	ID        string           `json:"id"`
	Type      string           `json:"type"`
	SubjectID custos.SubjectID `json:"subject_id,omitempty"`
	CreatedAt time.Time        `json:"created_at"`
	Data      json.RawMessage  `json:"data"`
}

// Deliverer defaults.
const (
	DefaultDeliveryBatch      = 50
	DefaultDeliveryTimeout    = 15 * time.Second
	DefaultDeliveryBaseDelay  = 10 * time.Second
	DefaultDeliveryMaxDelay   = time.Hour
	DefaultDeliveryAlertAfter = time.Hour
)

// WebhookDeliverer sends outbox events to their recipients. Run RunOnce
// periodically on one node (the job leader); it is also safe on several,
// because deliveries are leased when claimed (Tx.ClaimWebhookDeliveries).
// A receiver may still see an event twice — after a crash between its 2xx
// and the store update — so receivers deduplicate on Custos-Event-Id.
type WebhookDeliverer struct {
	Service *Service
	Client  *http.Client // nil: DefaultDeliveryTimeout, no redirects
	Logger  *slog.Logger // nil: the service's logger
	// Zero durations and sizes take the Default* values.
	Batch int
	// Lease is how long claimed deliveries are reserved; it must cover a
	// whole batch sent one after another. Zero: Batch × the client
	// timeout + 1 minute.
	Lease      time.Duration
	BaseDelay  time.Duration // first retry delay; doubles per attempt
	MaxDelay   time.Duration
	AlertAfter time.Duration // unacknowledged this long after the event → alert
	// Jitter returns a number in [0, 1); nil is math/rand/v2.
	Jitter func() float64
	// Now is the clock for signature timestamps; nil is time.Now.
	Now func() time.Time

	delivered, failed, alerts atomic.Int64
}

func (d *WebhookDeliverer) defaults() {
	if d.Batch <= 0 {
		d.Batch = DefaultDeliveryBatch
	}
	if d.BaseDelay <= 0 {
		d.BaseDelay = DefaultDeliveryBaseDelay
	}
	if d.MaxDelay <= 0 {
		d.MaxDelay = DefaultDeliveryMaxDelay
	}
	if d.AlertAfter <= 0 {
		d.AlertAfter = DefaultDeliveryAlertAfter
	}
	if d.Jitter == nil {
		d.Jitter = rand.Float64
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = d.Service.logger
	}
	if d.Client == nil {
		d.Client = &http.Client{Timeout: DefaultDeliveryTimeout,
			// A redirect would send the signed event somewhere else.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if d.Lease <= 0 {
		timeout := d.Client.Timeout
		if timeout <= 0 {
			timeout = DefaultDeliveryTimeout
		}
		d.Lease = time.Duration(d.Batch)*timeout + time.Minute
	}
}

// Backoff returns the delay before retry number attempts (1 = after the
// first failure): BaseDelay·2^(attempts−1) capped at MaxDelay, with "equal
// jitter" — half fixed, half random — so retries of many events spread out.
func (d *WebhookDeliverer) Backoff(attempts int) time.Duration {
	d.defaults()
	delay := d.MaxDelay
	if attempts < 30 {
		if x := d.BaseDelay << (attempts - 1); x > 0 && x < d.MaxDelay {
			delay = x
		}
	}
	return delay/2 + time.Duration(d.Jitter()*float64(delay/2))
}

// RunOnce delivers the due deliveries (up to Batch) and raises the
// alerts that are due. It returns how many deliveries it attempted.
func (d *WebhookDeliverer) RunOnce(ctx context.Context) (int, error) {
	d.defaults()
	s := d.Service
	var claimed []*custos.WebhookDelivery
	if err := s.store.Update(ctx, func(tx custos.Tx) (err error) {
		claimed, err = tx.ClaimWebhookDeliveries(ctx, tx.Now(), tx.Now().Add(d.Lease), d.Batch)
		return err
	}); err != nil {
		return 0, err
	}
	var errs []error
	for _, dl := range claimed {
		if err := d.deliver(ctx, dl); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.alert(ctx); err != nil {
		errs = append(errs, err)
	}
	return len(claimed), errors.Join(errs...)
}

// deliver POSTs one delivery and records the outcome.
func (d *WebhookDeliverer) deliver(ctx context.Context, dl *custos.WebhookDelivery) error {
	s := d.Service
	var (
		ev  *custos.OutboxEvent
		rcp *custos.WebhookRecipient
	)
	if err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		if ev, err = tx.GetOutboxEvent(ctx, dl.EventID); err != nil {
			return err
		}
		rcp, err = tx.GetWebhookRecipient(ctx, dl.RecipientID)
		return err
	}); err != nil {
		return err
	}
	if rcp.Disabled {
		// Held, not sent and not counted as an attempt; the alert says
		// the recipient never acknowledged.
		return d.record(ctx, dl, func(dl *custos.WebhookDelivery, now time.Time) {
			dl.LastError, dl.NextAttemptAt = "recipient disabled", now.Add(d.MaxDelay)
		})
	}
	code, cause := d.post(ctx, ev, rcp)
	err := d.record(ctx, dl, func(dl *custos.WebhookDelivery, now time.Time) {
		dl.Attempts++
		dl.LastAttemptAt, dl.LastCode = now, code
		if cause == "" {
			dl.Status, dl.DeliveredAt, dl.LastError = custos.DeliveryDelivered, now, ""
			return
		}
		dl.Status, dl.LastError, dl.NextAttemptAt = custos.DeliveryRetrying, cause, now.Add(d.Backoff(dl.Attempts))
	})
	if cause == "" {
		d.delivered.Add(1)
		return err
	}
	d.failed.Add(1)
	d.Logger.Info("webhook delivery failed; will retry", "event_id", dl.EventID, "recipient_id", dl.RecipientID,
		"attempts", dl.Attempts, "reason", cause)
	return err
}

// post sends ev to rcp and returns the HTTP status and "" on a 2xx, or a
// short reason (no payload, no secret, no URL).
func (d *WebhookDeliverer) post(ctx context.Context, ev *custos.OutboxEvent, rcp *custos.WebhookRecipient) (int, string) {
	s := d.Service
	key, err := s.webhookKey()
	if err != nil {
		return 0, "keys unavailable"
	}
	secret, err := keys.Open(key, rcp.SealedSecret, webhookSecretAAD(rcp.ID))
	keys.Zero(key)
	if err != nil {
		return 0, "secret unreadable"
	}
	defer keys.Zero(secret)
	body, err := json.Marshal(WebhookBody{ID: ev.ID, Type: ev.Type, SubjectID: ev.SubjectID, CreatedAt: ev.CreatedAt, Data: ev.Payload})
	if err != nil {
		return 0, "payload not JSON"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rcp.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "bad URL"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "custos-webhook/1")
	webhook.SetHeaders(req.Header, secret, ev.ID, d.Now(), body)
	resp, err := d.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "cancelled"
		}
		return 0, "no response (connection or timeout)"
	}
	defer resp.Body.Close()
	// Drain for connection reuse; the body itself is not used, so a
	// failure here changes nothing about the acknowledgement.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		d.Logger.Debug("webhook response not drained", "recipient_id", rcp.ID, "err", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, ""
}

// record applies change to the delivery in a write transaction.
// The outcome is recorded even when ctx was cancelled meanwhile
// (shutdown): the POST happened, and the record says so.
func (d *WebhookDeliverer) record(ctx context.Context, dl *custos.WebhookDelivery, change func(*custos.WebhookDelivery, time.Time)) error {
	ctx = context.WithoutCancel(ctx)
	var out custos.WebhookDelivery
	err := d.Service.store.Update(ctx, func(tx custos.Tx) error {
		// The function may run again (custos.Store): change a fresh copy.
		out = *dl
		change(&out, tx.Now())
		return tx.UpdateWebhookDelivery(ctx, &out)
	})
	if err == nil {
		*dl = out
	}
	return err
}

// alert raises, once per delivery, the unacknowledged-recipient alert: an
// audit event, a log line and a metric, holding ids and counts only.
func (d *WebhookDeliverer) alert(ctx context.Context) error {
	s := d.Service
	// Look first in a read transaction: most passes have nothing to raise.
	var due []*custos.WebhookDelivery
	if err := s.store.View(ctx, func(tx custos.Tx) (err error) {
		due, err = tx.ListUnackedWebhookDeliveries(ctx, tx.Now().Add(-d.AlertAfter), 1)
		return err
	}); err != nil || len(due) == 0 {
		return err
	}
	var raised []*custos.WebhookDelivery
	err := s.store.Update(ctx, func(tx custos.Tx) error {
		due, err := tx.ListUnackedWebhookDeliveries(ctx, tx.Now().Add(-d.AlertAfter), 100)
		if err != nil {
			return err
		}
		for _, dl := range due {
			dl.AlertedAt = tx.Now()
			if err := tx.UpdateWebhookDelivery(ctx, dl); err != nil {
				return err
			}
			ev := event(ctx, custos.AuditWebhookUnacked, "", nil, nil)
			if ev.ActorID == "" {
				ev.ActorID = "system"
			}
			ev.Reason = fmt.Sprintf("recipient %s event %s attempts %d", dl.RecipientID, dl.EventID, dl.Attempts)
			if err := s.appendAudit(ctx, tx, ev); err != nil {
				return err
			}
		}
		raised = due
		return nil
	})
	if err != nil {
		return err
	}
	for _, dl := range raised {
		d.alerts.Add(1)
		d.Logger.Warn("webhook recipient has not acknowledged an event", "event_id", dl.EventID,
			"recipient_id", dl.RecipientID, "attempts", dl.Attempts, "alert_after", d.AlertAfter.String())
	}
	return nil
}

// Stats are the deliverer's counters since it started.
type Stats struct {
	Delivered, Failed, Alerts int64
}

// Stats returns the counters.
func (d *WebhookDeliverer) Stats() Stats {
	return Stats{Delivered: d.delivered.Load(), Failed: d.failed.Load(), Alerts: d.alerts.Load()}
}

// WriteMetrics writes the counters in the Prometheus text format.
func (d *WebhookDeliverer) WriteMetrics(w io.Writer) {
	st := d.Stats()
	fmt.Fprintf(w, "# HELP custos_webhook_deliveries_total Webhook delivery attempts by result (this node).\n# TYPE custos_webhook_deliveries_total counter\n")
	fmt.Fprintf(w, "custos_webhook_deliveries_total{result=\"delivered\"} %d\ncustos_webhook_deliveries_total{result=\"failed\"} %d\n", st.Delivered, st.Failed)
	fmt.Fprintf(w, "# HELP custos_webhook_unacknowledged_alerts_total Deliveries not acknowledged past the alert threshold (this node).\n# TYPE custos_webhook_unacknowledged_alerts_total counter\n")
	fmt.Fprintf(w, "custos_webhook_unacknowledged_alerts_total %d\n", st.Alerts)
}
