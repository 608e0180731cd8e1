package storetest

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"custos"
)

// Contract tests for the rights infrastructure (R7, R4): one-time code
// challenges, the key lock, the outbox, webhook recipients and deliveries.

func otpChallenge(id string, sub custos.SubjectID, client string, created time.Time) *custos.OTPChallenge {
	return &custos.OTPChallenge{ID: id, SubjectID: sub, Purpose: "portal.signin", Channel: "sms",
		CodeHash: []byte("hash-" + id), ClientHash: []byte(client), MaxAttempts: 5, Status: custos.OTPPending,
		CreatedAt: created, ExpiresAt: created.Add(10 * time.Minute)}
}

func testOTP(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	a := otpChallenge("otp_a", "sub_1", "client-x", at(0))
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertOTPChallenge", tx.InsertOTPChallenge(ctx, a))
		must(t, "InsertOTPChallenge b", tx.InsertOTPChallenge(ctx, otpChallenge("otp_b", "sub_1", "client-y", at(30*time.Minute))))
		must(t, "InsertOTPChallenge c", tx.InsertOTPChallenge(ctx, otpChallenge("otp_c", "sub_2", "client-x", at(50*time.Minute))))
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.InsertOTPChallenge(t.Context(), otpChallenge("otp_a", "sub_9", "z", at(0)))
	})
	wantCode(t, "InsertOTPChallenge duplicate", err, custos.ECONFLICT)

	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetOTPChallenge(ctx, "otp_a")
		must(t, "GetOTPChallenge", err)
		diff(t, "challenge", a, got)
		wantUTC(t, "CreatedAt", got.CreatedAt)
		_, err = tx.GetOTPChallenge(ctx, "otp_none")
		wantCode(t, "GetOTPChallenge unknown", err, custos.ENOTFOUND)

		counts := []struct {
			name string
			f    custos.OTPFilter
			want int
		}{
			{"subject all", custos.OTPFilter{SubjectID: "sub_1", Since: at(0)}, 2},
			{"subject since (inclusive)", custos.OTPFilter{SubjectID: "sub_1", Since: at(30 * time.Minute)}, 1},
			{"subject none", custos.OTPFilter{SubjectID: "sub_3", Since: at(0)}, 0},
			{"client", custos.OTPFilter{ClientHash: []byte("client-x"), Since: at(0)}, 2},
			{"client since", custos.OTPFilter{ClientHash: []byte("client-x"), Since: at(time.Minute)}, 1},
		}
		for _, c := range counts {
			n, err := tx.CountOTPChallenges(ctx, c.f)
			must(t, "CountOTPChallenges "+c.name, err)
			if n != c.want {
				t.Errorf("CountOTPChallenges %s: got %d, want %d", c.name, n, c.want)
			}
		}
		return nil
	})

	a.Attempts, a.Status, a.DoneAt = 5, custos.OTPDead, at(time.Minute)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.UpdateOTPChallenge(ctx, a)
	})
	err = s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.UpdateOTPChallenge(t.Context(), otpChallenge("otp_none", "sub_1", "x", at(0)))
	})
	wantCode(t, "UpdateOTPChallenge unknown", err, custos.ENOTFOUND)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetOTPChallenge(ctx, "otp_a")
		must(t, "GetOTPChallenge", err)
		diff(t, "updated challenge", a, got)
		return nil
	})

	// Expiry: a expires at t0+10m, b at +40m, c at +60m.
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		n, err := tx.DeleteOTPChallenges(ctx, at(45*time.Minute))
		must(t, "DeleteOTPChallenges", err)
		if n != 2 {
			t.Errorf("DeleteOTPChallenges: got %d, want 2", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetOTPChallenge(ctx, "otp_c")
		must(t, "GetOTPChallenge kept", err)
		_, err = tx.GetOTPChallenge(ctx, "otp_b")
		wantCode(t, "GetOTPChallenge deleted", err, custos.ENOTFOUND)
		return nil
	})
}

// testLockKey: read-modify-write under LockKey loses no update, across
// the connections of one store (as across nodes on PostgreSQL).
func testLockKey(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	const workers, per = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for range workers {
		wg.Go(func() {
			for range per {
				errs <- s.Update(t.Context(), func(tx custos.Tx) error {
					ctx := t.Context()
					if err := tx.LockKey(ctx, "counter"); err != nil {
						return err
					}
					v, err := tx.GetMeta(ctx, "counter")
					if custos.ErrorCode(err) == custos.ENOTFOUND {
						v, err = "0", nil
					}
					if err != nil {
						return err
					}
					n, err := strconv.Atoi(v)
					if err != nil {
						return err
					}
					return tx.SetMeta(ctx, "counter", strconv.Itoa(n+1))
				})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		v, err := tx.GetMeta(ctx, "counter")
		must(t, "GetMeta", err)
		if v != strconv.Itoa(workers*per) {
			t.Errorf("counter: got %s, want %d (lost updates)", v, workers*per)
		}
		return nil
	})
}

func recipient(id, name string, created time.Time) *custos.WebhookRecipient {
	return &custos.WebhookRecipient{ID: id, Name: name, URL: "https://crm.example.com/hooks/" + id,
		Events: []string{"subject.erased"}, SealedSecret: []byte("sealed-" + id), CreatedAt: created, UpdatedAt: created}
}

func testOutbox(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	r1, r2 := recipient("whk_1", "crm", at(0)), recipient("whk_2", "warehouse", at(time.Second))
	r2.Events = []string{"*"}
	e1 := &custos.OutboxEvent{ID: "evt_1", Type: "subject.erased", SubjectID: "sub_1", Payload: []byte(`{"subject_id":"sub_1"}`), CreatedAt: at(0)}
	e2 := &custos.OutboxEvent{ID: "evt_2", Type: "account.closed", SubjectID: "sub_2", Payload: []byte(`{"b":1,  "a":2}`), CreatedAt: at(time.Minute)}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertWebhookRecipient 1", tx.InsertWebhookRecipient(ctx, r1))
		must(t, "InsertWebhookRecipient 2", tx.InsertWebhookRecipient(ctx, r2))
		must(t, "InsertOutboxEvent 1", tx.InsertOutboxEvent(ctx, e1))
		must(t, "InsertOutboxEvent 2", tx.InsertOutboxEvent(ctx, e2))
		return nil
	})
	if e1.Seq <= 0 || e2.Seq <= e1.Seq {
		t.Errorf("outbox seqs %d, %d: want increasing and positive", e1.Seq, e2.Seq)
	}
	for _, fn := range []func(ctx context.Context, tx custos.Tx) error{
		func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertWebhookRecipient(ctx, recipient("whk_3", "crm", at(0)))
		},
		func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertWebhookRecipient(ctx, recipient("whk_1", "other", at(0)))
		},
		func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertOutboxEvent(ctx, &custos.OutboxEvent{ID: "evt_1", Type: "x", SubjectID: "s", Payload: []byte(`{}`), CreatedAt: at(0)})
		},
	} {
		wantCode(t, "duplicate", s.Update(t.Context(), func(tx custos.Tx) error { return fn(t.Context(), tx) }), custos.ECONFLICT)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetOutboxEvent(ctx, "evt_2")
		must(t, "GetOutboxEvent", err)
		diff(t, "event (payload bytes kept exactly)", e2, got)
		_, err = tx.GetOutboxEvent(ctx, "evt_9")
		wantCode(t, "GetOutboxEvent unknown", err, custos.ENOTFOUND)
		gr, err := tx.GetWebhookRecipient(ctx, "whk_1")
		must(t, "GetWebhookRecipient", err)
		diff(t, "recipient", r1, gr)
		_, err = tx.GetWebhookRecipient(ctx, "whk_9")
		wantCode(t, "GetWebhookRecipient unknown", err, custos.ENOTFOUND)
		all, err := tx.ListWebhookRecipients(ctx)
		must(t, "ListWebhookRecipients", err)
		diff(t, "recipients", []*custos.WebhookRecipient{r1, r2}, all)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.SetWebhookRecipientDisabled(ctx, "whk_2", true)
	})
	wantCode(t, "SetWebhookRecipientDisabled unknown", s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.SetWebhookRecipientDisabled(t.Context(), "whk_9", true)
	}), custos.ENOTFOUND)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		gr, err := tx.GetWebhookRecipient(ctx, "whk_2")
		must(t, "GetWebhookRecipient", err)
		if !gr.Disabled || !gr.UpdatedAt.Equal(t0) {
			t.Errorf("disabled recipient: disabled %v updated %v, want true and the tx time", gr.Disabled, gr.UpdatedAt)
		}
		return nil
	})
}

func delivery(ev, rcp string, created time.Time) *custos.WebhookDelivery {
	return &custos.WebhookDelivery{EventID: ev, RecipientID: rcp, Status: custos.DeliveryPending,
		NextAttemptAt: created, CreatedAt: created}
}

// seedDeliveries stores n events, each with a delivery to one recipient.
func seedDeliveries(t *testing.T, s custos.Store, n int) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertWebhookRecipient", tx.InsertWebhookRecipient(ctx, recipient("whk_1", "crm", at(0))))
		for i := range n {
			id := fmt.Sprintf("evt_%03d", i)
			must(t, "InsertOutboxEvent", tx.InsertOutboxEvent(ctx, &custos.OutboxEvent{ID: id, Type: "subject.erased",
				SubjectID: "sub_1", Payload: []byte(`{}`), CreatedAt: at(time.Duration(i) * time.Second)}))
			must(t, "InsertWebhookDelivery", tx.InsertWebhookDelivery(ctx, delivery(id, "whk_1", at(time.Duration(i)*time.Second))))
		}
		return nil
	})
}

func testWebhookDelivery(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	seedDeliveries(t, s, 3) // due at t0, t0+1s, t0+2s
	wantCode(t, "InsertWebhookDelivery duplicate", s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.InsertWebhookDelivery(t.Context(), delivery("evt_000", "whk_1", at(0)))
	}), custos.ECONFLICT)

	var claimed []*custos.WebhookDelivery
	update(t, s, func(ctx context.Context, tx custos.Tx) (err error) {
		claimed, err = tx.ClaimWebhookDeliveries(ctx, at(time.Second), at(time.Minute), 10)
		return err
	})
	if len(claimed) != 2 || claimed[0].EventID != "evt_000" || claimed[1].EventID != "evt_001" {
		t.Fatalf("claim at t0+1s: got %d deliveries %v, want evt_000 and evt_001", len(claimed), claimed)
	}
	for _, d := range claimed {
		if !d.NextAttemptAt.Equal(at(time.Minute)) {
			t.Errorf("claimed %s: next attempt %v, want the lease end", d.EventID, d.NextAttemptAt)
		}
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		again, err := tx.ClaimWebhookDeliveries(ctx, at(30*time.Second), at(2*time.Minute), 10)
		must(t, "ClaimWebhookDeliveries", err)
		if len(again) != 1 || again[0].EventID != "evt_002" {
			t.Errorf("second claim within the lease: got %v, want only evt_002", again)
		}
		return nil
	})

	d := claimed[0]
	d.Status, d.Attempts, d.LastAttemptAt, d.DeliveredAt, d.LastCode = custos.DeliveryDelivered, 3, at(time.Second), at(time.Second), 204
	e := claimed[1]
	e.Status, e.Attempts, e.LastAttemptAt, e.NextAttemptAt, e.LastCode, e.LastError = custos.DeliveryRetrying, 1, at(time.Second), at(90*time.Second), 500, "HTTP 500"
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "UpdateWebhookDelivery", tx.UpdateWebhookDelivery(ctx, d))
		return tx.UpdateWebhookDelivery(ctx, e)
	})
	wantCode(t, "UpdateWebhookDelivery unknown", s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.UpdateWebhookDelivery(t.Context(), delivery("evt_9", "whk_1", at(0)))
	}), custos.ENOTFOUND)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListWebhookDeliveries(ctx, "evt_000")
		must(t, "ListWebhookDeliveries", err)
		diff(t, "delivered", []*custos.WebhookDelivery{d}, got)
		got, err = tx.ListWebhookDeliveries(ctx, "evt_001")
		must(t, "ListWebhookDeliveries", err)
		diff(t, "retrying", []*custos.WebhookDelivery{e}, got)
		got, err = tx.ListWebhookDeliveries(ctx, "evt_none")
		must(t, "ListWebhookDeliveries none", err)
		diff(t, "no deliveries", []*custos.WebhookDelivery{}, got)

		// Delivered deliveries are never claimed nor reported unacknowledged.
		un, err := tx.ListUnackedWebhookDeliveries(ctx, at(time.Hour), 10)
		must(t, "ListUnackedWebhookDeliveries", err)
		if len(un) != 2 || un[0].EventID != "evt_001" || un[1].EventID != "evt_002" {
			t.Errorf("unacked: got %v, want evt_001, evt_002", un)
		}
		un, err = tx.ListUnackedWebhookDeliveries(ctx, at(1500*time.Millisecond), 10)
		must(t, "ListUnackedWebhookDeliveries before", err)
		if len(un) != 1 || un[0].EventID != "evt_001" {
			t.Errorf("unacked created before t0+1.5s: got %v, want evt_001", un)
		}
		return nil
	})
	e.AlertedAt = at(time.Hour)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "UpdateWebhookDelivery", tx.UpdateWebhookDelivery(ctx, e))
		later, err := tx.ClaimWebhookDeliveries(ctx, at(time.Hour), at(2*time.Hour), 10)
		must(t, "ClaimWebhookDeliveries", err)
		if len(later) != 2 {
			t.Errorf("claim after the leases: got %d, want 2 (evt_001 retrying, evt_002)", len(later))
		}
		un, err := tx.ListUnackedWebhookDeliveries(ctx, at(time.Hour), 10)
		must(t, "ListUnackedWebhookDeliveries", err)
		if len(un) != 1 || un[0].EventID != "evt_002" {
			t.Errorf("unacked after alert: got %v, want evt_002 only", un)
		}
		return nil
	})
}

// testConcurrentClaims: deliverers claiming at the same time never get the
// same delivery (R4: each downstream system is told once per attempt).
func testConcurrentClaims(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	const n, workers = 60, 4
	seedDeliveries(t, s, n)
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				var got []*custos.WebhookDelivery
				err := s.Update(t.Context(), func(tx custos.Tx) (err error) {
					got, err = tx.ClaimWebhookDeliveries(t.Context(), at(time.Hour), at(2*time.Hour), 3)
					return err
				})
				if err != nil {
					t.Errorf("ClaimWebhookDeliveries: %v", err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.EventID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("claimed %d distinct deliveries, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s claimed %d times, want once", id, c)
		}
	}
}
