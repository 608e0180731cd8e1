package http_test

import (
	"context"
	"strings"
	"testing"

	"custos"
	custoshttp "custos/http"
)

// TestWebhookClient drives the webhook admin API through the Go client:
// register (secret shown once), list (no secrets), per-event delivery
// status, disable; bad input comes back as a problem naming the field.
func TestWebhookClient(t *testing.T) {
	e := newMatrixEnv(t)
	c := custoshttp.NewClient(e.srv.URL, e.tokens["admin"])
	ctx := context.Background()

	r, err := c.CreateWebhookRecipient(ctx, custoshttp.WebhookRecipientRequest{Name: "crm", URL: "https://crm.example.com/hooks", Events: []string{"subject.erased"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(r.Secret, "whsec_") || r.ID == "" || r.Disabled {
		t.Fatalf("registered %+v", r)
	}
	list, err := c.FindWebhookRecipients(ctx)
	if err != nil || len(list) != 1 || list[0].ID != r.ID || list[0].Secret != "" {
		t.Fatalf("list %+v %v", list, err)
	}
	ev := e.outboxEvent()
	ds, err := c.FindWebhookDeliveries(ctx, ev)
	if err != nil || len(ds) != 1 || ds[0].RecipientID != r.ID || ds[0].Status != custos.DeliveryPending {
		t.Fatalf("deliveries %+v %v", ds, err)
	}
	if err := c.DisableWebhookRecipient(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	list, _ = c.FindWebhookRecipients(ctx)
	if !list[0].Disabled {
		t.Error("not disabled")
	}
	if ds, _ := c.FindWebhookDeliveries(ctx, e.outboxEvent()); len(ds) != 0 {
		t.Errorf("a disabled recipient got a new delivery: %+v", ds)
	}

	_, err = c.CreateWebhookRecipient(ctx, custoshttp.WebhookRecipientRequest{Name: "x", URL: "http://crm.example.com/h", Events: []string{"*"}})
	ce := custos.AsError(err)
	if ce == nil || ce.Code != custos.EINVALID || len(ce.Violations) == 0 || ce.Violations[0].Field != "url" {
		t.Errorf("plain http: %v, want EINVALID on url", err)
	}
	if err := c.DisableWebhookRecipient(ctx, "whk_nope"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("disable unknown: %v", err)
	}
	if _, err := c.FindWebhookDeliveries(ctx, "evt_nope"); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("unknown event: %v", err)
	}
}
