package webhook_test

import (
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"custos/webhook"
)

func TestSignVerify(t *testing.T) {
	secret := []byte("s3cret-for-test")
	now := time.Unix(1767225600, 0)
	body := []byte(`{"id":"evt_1","type":"subject.erased","subject_id":"sub_1"}`)
	h := http.Header{}
	webhook.SetHeaders(h, secret, "evt_1", now, body)
	if h.Get(webhook.HeaderEventID) != "evt_1" || h.Get(webhook.HeaderTimestamp) != "1767225600" {
		t.Fatalf("headers %v", h)
	}
	if err := webhook.Verify(secret, h, body, now.Add(time.Minute), 0); err != nil {
		t.Fatalf("genuine request: %v", err)
	}

	tampered := append([]byte{}, body...)
	tampered[len(tampered)-3] = '2'
	tests := []struct {
		name   string
		secret []byte
		h      func() http.Header
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, func() http.Header { return h }, tampered, now, webhook.ErrBadSignature},
		{"wrong secret", []byte("other"), func() http.Header { return h }, body, now, webhook.ErrBadSignature},
		{"too old (replay)", secret, func() http.Header { return h }, body, now.Add(6 * time.Minute), webhook.ErrBadTimestamp},
		{"from the future", secret, func() http.Header { return h }, body, now.Add(-6 * time.Minute), webhook.ErrBadTimestamp},
		{"timestamp changed", secret, func() http.Header {
			c := h.Clone()
			c.Set(webhook.HeaderTimestamp, strconv.FormatInt(now.Unix()+1, 10))
			return c
		}, body, now, webhook.ErrBadSignature},
		{"no signature", secret, func() http.Header {
			c := h.Clone()
			c.Del(webhook.HeaderSignature)
			return c
		}, body, now, webhook.ErrNoSignature},
		{"garbage signature", secret, func() http.Header {
			c := h.Clone()
			c.Set(webhook.HeaderSignature, "v1=zz, v0=abc")
			return c
		}, body, now, webhook.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := webhook.Verify(tt.secret, tt.h(), tt.body, tt.now, 0); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// During a secret rotation the header carries both signatures.
	c := h.Clone()
	c.Set(webhook.HeaderSignature, webhook.Sign([]byte("new"), now, body)+", "+h.Get(webhook.HeaderSignature))
	if err := webhook.Verify(secret, c, body, now, 0); err != nil {
		t.Errorf("rotation: old secret should still verify: %v", err)
	}
}
