package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testNotice(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	n1 := &custos.Notice{Version: 1, Hash: "h1", PublishedAt: at(0), PublishedBy: "prn_dpo",
		Content: custos.NoticeContent{Controller: "Shop", Contact: "dpo@example.com",
			Purposes: []custos.NoticePurpose{{Name: "marketing", LegalBasis: "consent", Fields: []string{"mobile"}, Retention: "2 years"}},
			Text:     map[string]custos.NoticeText{"en": {Title: "Privacy", Body: "b", Rights: "r"}, "zh-CN": {Title: "隐私", Body: "正文", Rights: "权利"}}}}
	n2 := &custos.Notice{Version: 2, Hash: "h2", PublishedAt: at(time.Hour), PublishedBy: "prn_dpo", Content: n1.Content}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertNotice 2", tx.InsertNotice(ctx, n2))
		must(t, "InsertNotice 1", tx.InsertNotice(ctx, n1))
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertNotice(t.Context(), n1) })
	wantCode(t, "InsertNotice again", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetNotice(ctx, 1)
		must(t, "GetNotice", err)
		diff(t, "notice", n1, got)
		_, err = tx.GetNotice(ctx, 3)
		wantCode(t, "GetNotice unknown", err, custos.ENOTFOUND)
		all, err := tx.ListNotices(ctx)
		must(t, "ListNotices", err)
		diff(t, "notices", []*custos.Notice{n1, n2}, all)
		return nil
	})
}

func testConsent(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	cs := []*custos.StoredConsent{
		{ID: "con_1", SubjectID: "sub_a", Purpose: "marketing", Action: custos.ConsentGranted, NoticeVersion: 1, At: at(0),
			Channel: "app", InitiatedBy: "customer", ActorID: "prn_app", Sealed: []byte{1, 2, 3}},
		{ID: "con_2", SubjectID: "sub_a", Purpose: "marketing", Scope: "sensitive:biometric", Action: custos.ConsentRefused, NoticeVersion: 1,
			At: at(0), Channel: "app", InitiatedBy: "customer", ByGuardian: true, ActorID: "prn_app"},
		{ID: "con_3", SubjectID: "sub_b", Purpose: "analytics", Action: custos.ConsentGranted, NoticeVersion: 2, At: at(time.Minute),
			Channel: "web", InitiatedBy: "company", ActorID: "prn_web"},
		{ID: "con_4", SubjectID: "sub_a", Purpose: "marketing", Action: custos.ConsentWithdrawn, NoticeVersion: 1, At: at(time.Hour),
			Channel: "portal", InitiatedBy: "customer", ActorID: "prn_portal"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for i, c := range cs {
			must(t, "InsertConsent", tx.InsertConsent(ctx, c))
			if i > 0 && c.Seq <= cs[i-1].Seq {
				t.Errorf("InsertConsent %d: seq %d after %d, want increasing", i, c.Seq, cs[i-1].Seq)
			}
		}
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error {
		return tx.InsertConsent(t.Context(), &custos.StoredConsent{ID: "con_1", SubjectID: "sub_c", At: at(0)})
	})
	wantCode(t, "InsertConsent same id", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListConsents(ctx, "sub_a")
		must(t, "ListConsents", err)
		diff(t, "sub_a consents in recorded order", []*custos.StoredConsent{cs[0], cs[1], cs[3]}, got)
		got, err = tx.ListConsentsFor(ctx, "sub_a", []string{"marketing"})
		must(t, "ListConsentsFor marketing", err)
		diff(t, "sub_a marketing consents", []*custos.StoredConsent{cs[0], cs[1], cs[3]}, got)
		got, err = tx.ListConsentsFor(ctx, "sub_b", []string{"marketing"})
		must(t, "ListConsentsFor other purpose", err)
		diff(t, "sub_b marketing consents", []*custos.StoredConsent{}, got)
		got, err = tx.ListConsentsFor(ctx, "sub_b", []string{"analytics", "marketing"})
		must(t, "ListConsentsFor two purposes", err)
		diff(t, "sub_b analytics or marketing consents", []*custos.StoredConsent{cs[2]}, got)
		none, err := tx.ListConsents(ctx, "sub_none")
		must(t, "ListConsents none", err)
		if none == nil || len(none) != 0 {
			t.Errorf("ListConsents for a subject with none: got %#v, want empty", none)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		n, err := tx.DeleteConsents(ctx, "sub_a")
		must(t, "DeleteConsents", err)
		if n != 3 {
			t.Errorf("DeleteConsents: %d rows, want 3", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListConsents(ctx, "sub_a")
		must(t, "ListConsents after delete", err)
		diff(t, "sub_a after delete", []*custos.StoredConsent{}, got)
		other, err := tx.ListConsents(ctx, "sub_b")
		must(t, "ListConsents sub_b", err)
		diff(t, "sub_b untouched", []*custos.StoredConsent{cs[2]}, other)
		return nil
	})
}
