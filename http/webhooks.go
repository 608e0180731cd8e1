package http

import (
	"context"
	"net/http"
	"net/url"

	"custos"
)

// Webhook recipients (admin, webhook.manage) and per-event delivery
// status: see http/openapi/webhooks.json.

// WebhookRecipientRequest registers a downstream endpoint. An empty
// Secret has one generated; the response shows it once.
type WebhookRecipientRequest struct {
	Name   string   `json:"name"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret,omitempty"`
}

func (s *Server) handleWebhookCreate(w http.ResponseWriter, r *http.Request) {
	var in WebhookRecipientRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	rc := &custos.WebhookRecipient{Name: in.Name, URL: in.URL, Events: in.Events, Secret: in.Secret}
	err := s.Service.CreateWebhookRecipient(r.Context(), rc)
	s.reply(w, r, http.StatusCreated, rc, err)
}

func (s *Server) handleWebhookList(w http.ResponseWriter, r *http.Request) {
	rs, err := s.Service.FindWebhookRecipients(r.Context())
	s.reply(w, r, http.StatusOK, map[string]any{"recipients": rs}, err)
}

func (s *Server) handleWebhookDisable(w http.ResponseWriter, r *http.Request) {
	if err := s.Service.DisableWebhookRecipient(r.Context(), r.PathValue("id")); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleEventDeliveries(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Service.FindWebhookDeliveries(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, map[string]any{"deliveries": ds}, err)
}

// CreateWebhookRecipient registers a recipient; the returned Secret is
// shown this once.
func (c *Client) CreateWebhookRecipient(ctx context.Context, in WebhookRecipientRequest) (*custos.WebhookRecipient, error) {
	var out custos.WebhookRecipient
	if err := c.do(ctx, http.MethodPost, "/v1/webhooks", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindWebhookRecipients lists the recipients (no secrets).
func (c *Client) FindWebhookRecipients(ctx context.Context) ([]*custos.WebhookRecipient, error) {
	var out struct {
		Recipients []*custos.WebhookRecipient `json:"recipients"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/webhooks", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Recipients, nil
}

// DisableWebhookRecipient stops sending to a recipient.
func (c *Client) DisableWebhookRecipient(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/webhooks/"+url.PathEscape(id)+"/disable", nil, nil, nil)
}

// FindWebhookDeliveries returns each recipient's delivery status for an
// outbox event.
func (c *Client) FindWebhookDeliveries(ctx context.Context, eventID string) ([]*custos.WebhookDelivery, error) {
	var out struct {
		Deliveries []*custos.WebhookDelivery `json:"deliveries"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(eventID)+"/deliveries", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Deliveries, nil
}
