package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testRightsRequest(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	mk := func(id, sub, status string, deadline time.Duration) *custos.StoredRightsRequest {
		return &custos.StoredRightsRequest{Request: &custos.RightsRequest{ID: id, SubjectID: custos.SubjectID(sub), Type: custos.RightsAccess,
			Status: status, Channel: "portal", FiledAt: at(0), Deadline: at(deadline), UpdatedAt: at(0),
			Steps: []custos.DSRStep{{At: at(0), Step: "filed"}}}}
	}
	a := mk("dsr_a", "sub_1", custos.RightsReceived, 72*time.Hour)
	b := mk("dsr_b", "sub_1", custos.RightsReview, 24*time.Hour)
	c := mk("dsr_c", "sub_2", custos.RightsCompleted, 12*time.Hour)
	b.Sealed = []byte{9, 8, 7}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, r := range []*custos.StoredRightsRequest{a, b, c} {
			must(t, "InsertRightsRequest", tx.InsertRightsRequest(ctx, r))
		}
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertRightsRequest(t.Context(), a) })
	wantCode(t, "InsertRightsRequest duplicate", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetRightsRequest(ctx, "dsr_b")
		must(t, "GetRightsRequest", err)
		diff(t, "request", b, got)
		_, err = tx.GetRightsRequest(ctx, "dsr_none")
		wantCode(t, "GetRightsRequest unknown", err, custos.ENOTFOUND)
		open, err := tx.ListRightsRequests(ctx, custos.RightsFilter{})
		must(t, "ListRightsRequests open", err)
		diff(t, "open requests, earliest deadline first", []*custos.StoredRightsRequest{b, a}, open)
		due, err := tx.ListRightsRequests(ctx, custos.RightsFilter{DueBefore: at(48 * time.Hour)})
		must(t, "ListRightsRequests due", err)
		diff(t, "due within 48h", []*custos.StoredRightsRequest{b}, due)
		done, err := tx.ListRightsRequests(ctx, custos.RightsFilter{Status: custos.RightsCompleted, SubjectID: "sub_2"})
		must(t, "ListRightsRequests completed", err)
		diff(t, "completed for sub_2", []*custos.StoredRightsRequest{c}, done)
		return nil
	})
	a.Request.Status, a.Request.CompletedAt, a.Sealed = custos.RightsCompleted, at(time.Hour), []byte{1}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "UpdateRightsRequest", tx.UpdateRightsRequest(ctx, a))
		wantCode(t, "UpdateRightsRequest unknown", tx.UpdateRightsRequest(ctx, mk("dsr_none", "sub_9", custos.RightsReceived, 0)), custos.ENOTFOUND)
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetRightsRequest(ctx, "dsr_a")
		must(t, "GetRightsRequest after update", err)
		diff(t, "updated request", a, got)
		return nil
	})
}
