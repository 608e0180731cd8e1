package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"custos"
	"custos/webhook"
)

// Webhook hands messages to an SMS or e-mail gateway: a JSON POST
//
//	{"subject_id":"sub_…","channel":"sms","to":"+8613800001234","kind":"code",
//	 "title":"…","text":"…","code":"123456"}
//
// signed with HMAC-SHA256 under Secret (package webhook: Custos-Timestamp
// and Custos-Signature headers). The gateway needs the address to deliver,
// so it is in the body: URL must be https (http only to a loopback host).
// Any 2xx is success.
type Webhook struct {
	URL    string
	Secret []byte
	Client *http.Client // nil: a client with a 15 s timeout
	Now    func() time.Time
}

// gatewayBody is what the gateway receives.
type gatewayBody struct {
	SubjectID custos.SubjectID `json:"subject_id"`
	Channel   string           `json:"channel"`
	To        string           `json:"to"`
	Kind      string           `json:"kind"`
	Title     string           `json:"title,omitempty"`
	Text      string           `json:"text,omitempty"`
	Code      string           `json:"code,omitempty"`
}

// Send implements Notifier for both channels.
func (w *Webhook) Send(ctx context.Context, m *Message) error {
	if err := check(m, SMS, Email); err != nil {
		return err
	}
	if err := webhook.CheckURL(w.URL); err != nil {
		return &custos.Error{Code: custos.EINVALID, Message: "The gateway URL is not valid.",
			Violations: []custos.Violation{{Field: "url", Rule: err.(*webhook.URLError).Rule}}}
	}
	body, err := json.Marshal(gatewayBody{SubjectID: m.SubjectID, Channel: m.Channel, To: m.To, Kind: m.Kind,
		Title: m.Title, Text: m.Text, Code: m.Code})
	if err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	webhook.SetHeaders(req.Header, w.Secret, "", now(), body)
	client := w.Client
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "The message could not be handed to the gateway.", Err: fmt.Errorf("notify webhook: %w", err)}
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "The message could not be handed to the gateway.", Err: err}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &custos.Error{Code: custos.EINTERNAL, Message: "The message could not be handed to the gateway.",
			Err: fmt.Errorf("notify webhook: gateway answered HTTP %d", resp.StatusCode)}
	}
	return nil
}
