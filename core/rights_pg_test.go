package core_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"

	"custos"
	"custos/core"
	"custos/otp"
)

// TestPostgresOTPRateLimitAcrossNodes: codes requested for one subject on
// two nodes at once are limited in total, not per node (R7): the counts
// live in the store and are read under Tx.LockKey.
func TestPostgresOTPRateLimitAcrossNodes(t *testing.T) {
	a, b, _ := newPGNodes(t)
	key := bytes.Repeat([]byte{9}, 32)
	m, err := otp.New(key, otp.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var ok, limited atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		n := []pgNode{a, b}[i%2]
		wg.Go(func() {
			err := n.db.Update(t.Context(), func(tx custos.Tx) error {
				_, _, err := m.Issue(t.Context(), tx, otp.Request{SubjectID: "sub_pg", Purpose: "portal.signin", Channel: "sms", Client: "203.0.113.7"})
				return err
			})
			switch custos.ErrorCode(err) {
			case "":
				ok.Add(1)
			case custos.ERATELIMIT:
				limited.Add(1)
			default:
				t.Errorf("Issue: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || limited.Load() != 7 {
		t.Errorf("issued %d, limited %d; want 5 and 7", ok.Load(), limited.Load())
	}
}

// TestPostgresDeliverersDoNotDoubleDeliver: two nodes' deliverers running
// at the same moment on one PostgreSQL deliver each event exactly once
// (R4; DESIGN.md "Scale-out": background jobs never run twice).
func TestPostgresDeliverersDoNotDoubleDeliver(t *testing.T) {
	a, b, admin := newPGNodes(t)
	r := newReceiver(t)
	rc := &custos.WebhookRecipient{Name: "crm", URL: r.srv.URL, Events: []string{"*"}}
	if err := a.svc.CreateWebhookRecipient(admin, rc); err != nil {
		t.Fatal(err)
	}
	r.secret = []byte(rc.Secret)
	const events = 40
	want := map[string]bool{}
	for range events {
		ev := emit(t, a.svc, a.db, "subject.erased", "sub_pg")
		want[ev.ID] = true
	}
	var wg sync.WaitGroup
	for _, n := range []pgNode{a, b} {
		d := &core.WebhookDeliverer{Service: n.svc, Batch: 3}
		wg.Go(func() {
			for {
				k, err := d.RunOnce(t.Context())
				if err != nil {
					t.Errorf("RunOnce: %v", err)
					return
				}
				if k == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]int{}
	for _, c := range r.Calls() {
		if c.verr != nil {
			t.Errorf("bad signature: %v", c.verr)
		}
		seen[c.eventID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, seen[id])
		}
	}
	if len(seen) != events {
		t.Errorf("%d distinct events delivered, want %d", len(seen), events)
	}
}
