package storetest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"custos"
)

// auditEvents returns n chained-looking events (the store does no
// hashing: it keeps whatever PrevHash and Hash it is given).
func auditEvents(n int) []*custos.AuditEvent {
	actors := []custos.PrincipalID{"prn_a", "prn_b"}
	subjects := []custos.SubjectID{"sub_a", "sub_b", ""}
	actions := []string{custos.AuditSubjectCreate, custos.AuditSubjectRead, custos.AuditAuditRead}
	var out []*custos.AuditEvent
	var prev []byte
	for i := range n {
		seq := int64(i + 1)
		e := &custos.AuditEvent{
			Seq: seq, Time: at(time.Duration(i) * time.Minute),
			ActorID: actors[i%2], Action: actions[i%3], SubjectID: subjects[i%3],
			Decision: custos.DecisionAllow, RequestID: fmt.Sprintf("req_%d", i),
			PrevHash: prev, Hash: bytes.Repeat([]byte{byte(seq)}, 32),
		}
		if i%2 == 0 {
			e.Fields, e.Purposes = []string{"email", "phone"}, []string{"support"}
		} else {
			e.Decision, e.Reason = custos.DecisionDeny, "no_consent"
		}
		prev = e.Hash
		out = append(out, e)
	}
	return out
}

func insertAuditEvents(t *testing.T, s custos.Store, events []*custos.AuditEvent) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, e := range events {
			must(t, "InsertAuditEvent", tx.InsertAuditEvent(ctx, e))
		}
		return nil
	})
}

func testAudit(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		seq, hash, err := tx.AuditHead(ctx)
		must(t, "AuditHead empty", err)
		if seq != 0 || hash != nil {
			t.Errorf("AuditHead empty: got (%d, %x), want (0, nil)", seq, hash)
		}
		got, err := tx.FindAuditEvents(ctx, custos.AuditFilter{})
		must(t, "FindAuditEvents empty", err)
		diff(t, "events", []*custos.AuditEvent(nil), got)
		return nil
	})

	events := auditEvents(5)
	// Appended the way core appends: head, then head + 1, in one Update.
	for _, e := range events {
		update(t, s, func(ctx context.Context, tx custos.Tx) error {
			seq, hash, err := tx.AuditHead(ctx)
			must(t, "AuditHead", err)
			if seq != e.Seq-1 || !bytes.Equal(hash, e.PrevHash) {
				t.Errorf("AuditHead before %d: got (%d, %x), want (%d, %x)", e.Seq, seq, hash, e.Seq-1, e.PrevHash)
			}
			return tx.InsertAuditEvent(ctx, e)
		})
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		seq, hash, err := tx.AuditHead(ctx)
		must(t, "AuditHead", err)
		if seq != 5 || !bytes.Equal(hash, events[4].Hash) {
			t.Errorf("AuditHead: got (%d, %x), want (5, %x)", seq, hash, events[4].Hash)
		}
		got, err := tx.FindAuditEvents(ctx, custos.AuditFilter{})
		must(t, "FindAuditEvents", err)
		diff(t, "events", events, got)
		for _, e := range got {
			wantUTC(t, "Time", e.Time)
		}
		return nil
	})

	// A second appender that read the same head collides on seq.
	dup := *events[4]
	dup.Hash = []byte("other")
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertAuditEvent(t.Context(), &dup) })
	wantCode(t, "InsertAuditEvent duplicate seq", err, custos.ECONFLICT)
}

func testAuditFilter(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	events := auditEvents(9)
	insertAuditEvents(t, s, events)
	pick := func(seqs ...int64) []*custos.AuditEvent {
		var out []*custos.AuditEvent
		for _, seq := range seqs {
			out = append(out, events[seq-1])
		}
		return out
	}
	subA, subNone := custos.SubjectID("sub_a"), custos.SubjectID("")
	actorB := custos.PrincipalID("prn_b")
	actionRead := custos.AuditSubjectRead
	since, until := at(3*time.Minute), at(6*time.Minute)

	tests := []struct {
		name   string
		filter custos.AuditFilter
		want   []*custos.AuditEvent
	}{
		{name: "all", filter: custos.AuditFilter{}, want: events},
		{name: "subject", filter: custos.AuditFilter{SubjectID: &subA}, want: pick(1, 4, 7)},
		{name: "no subject", filter: custos.AuditFilter{SubjectID: &subNone}, want: pick(3, 6, 9)},
		{name: "actor", filter: custos.AuditFilter{ActorID: &actorB}, want: pick(2, 4, 6, 8)},
		{name: "action", filter: custos.AuditFilter{Action: &actionRead}, want: pick(2, 5, 8)},
		// Since is inclusive, Until exclusive: event 4 is at 3m, event 7 at 6m.
		{name: "since", filter: custos.AuditFilter{Since: &since}, want: pick(4, 5, 6, 7, 8, 9)},
		{name: "until", filter: custos.AuditFilter{Until: &until}, want: pick(1, 2, 3, 4, 5, 6)},
		{name: "since and until", filter: custos.AuditFilter{Since: &since, Until: &until}, want: pick(4, 5, 6)},
		{name: "after seq", filter: custos.AuditFilter{AfterSeq: 6}, want: pick(7, 8, 9)},
		{name: "limit", filter: custos.AuditFilter{Limit: 2}, want: pick(1, 2)},
		{name: "after seq and limit", filter: custos.AuditFilter{AfterSeq: 3, Limit: 2}, want: pick(4, 5)},
		{name: "combined", filter: custos.AuditFilter{ActorID: &actorB, Since: &since, Limit: 2}, want: pick(4, 6)},
		{name: "no match", filter: custos.AuditFilter{SubjectID: &subA, Action: &actionRead}, want: nil},
		{name: "after last", filter: custos.AuditFilter{AfterSeq: 9}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.FindAuditEvents(ctx, tt.filter)
				must(t, "FindAuditEvents", err)
				diff(t, "events", tt.want, got)
				return nil
			})
		})
	}
}

func testCheckpoint(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	cps := []*custos.AuditCheckpoint{
		{Seq: 100, Hash: []byte("h100"), Time: at(time.Hour), KeyID: "k1", Signature: []byte("sig100")},
		{Seq: 200, Hash: []byte("h200"), Time: at(2 * time.Hour), KeyID: "k2", Signature: []byte("sig200")},
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListCheckpoints(ctx)
		must(t, "ListCheckpoints empty", err)
		diff(t, "checkpoints", []*custos.AuditCheckpoint(nil), got)
		last, err := tx.LastCheckpoint(ctx)
		must(t, "LastCheckpoint empty", err)
		diff(t, "last checkpoint", (*custos.AuditCheckpoint)(nil), last)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		// Inserted out of order; listed in seq order.
		must(t, "InsertCheckpoint", tx.InsertCheckpoint(ctx, cps[1]))
		return tx.InsertCheckpoint(ctx, cps[0])
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListCheckpoints(ctx)
		must(t, "ListCheckpoints", err)
		diff(t, "checkpoints", cps, got)
		// The highest seq, though inserted first.
		last, err := tx.LastCheckpoint(ctx)
		must(t, "LastCheckpoint", err)
		diff(t, "last checkpoint", cps[1], last)
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertCheckpoint(t.Context(), cps[0]) })
	wantCode(t, "InsertCheckpoint duplicate", err, custos.ECONFLICT)
}
