package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"custos"
)

// testLifecycle covers SetLifecycle, GetLifecycle and DeleteLifecycle.
func testLifecycle(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "SetLifecycle", tx.SetLifecycle(ctx, "sub_a", custos.TriggerAccountClosure, at(time.Hour)))
		must(t, "SetLifecycle again", tx.SetLifecycle(ctx, "sub_a", custos.TriggerAccountClosure, at(2*time.Hour)))
		must(t, "SetLifecycle other", tx.SetLifecycle(ctx, "sub_a", custos.TriggerConsentWithdrawal, at(3*time.Hour)))
		return tx.SetLifecycle(ctx, "sub_b", custos.TriggerAccountClosure, at(0))
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetLifecycle(ctx, "sub_a")
		must(t, "GetLifecycle", err)
		diff(t, "lifecycle", map[string]time.Time{custos.TriggerAccountClosure: at(2 * time.Hour),
			custos.TriggerConsentWithdrawal: at(3 * time.Hour)}, got)
		for _, v := range got {
			wantUTC(t, "lifecycle time", v)
		}
		got, err = tx.GetLifecycle(ctx, "sub_none")
		must(t, "GetLifecycle none", err)
		if len(got) != 0 {
			t.Errorf("GetLifecycle of unknown subject: got %v, want empty", got)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.DeleteLifecycle(ctx, "sub_a") })
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetLifecycle(ctx, "sub_a")
		must(t, "GetLifecycle after delete", err)
		if len(got) != 0 {
			t.Errorf("after DeleteLifecycle: got %v, want empty", got)
		}
		got, err = tx.GetLifecycle(ctx, "sub_b")
		must(t, "GetLifecycle sub_b", err)
		diff(t, "other subject's lifecycle", map[string]time.Time{custos.TriggerAccountClosure: at(0)}, got)
		return nil
	})
}

// testRestrict covers RestrictSubject, RestrictRecords, DeleteRecordsByID
// and the RestrictedUntil read back by GetSubject and ListRecords.
func testRestrict(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a")
	rec := func(id custos.RecordID) *custos.StoredRecord {
		return &custos.StoredRecord{ID: id, SubjectID: "sub_a", Type: "order", Category: "transaction",
			OccurredAt: at(0), CreatedAt: at(0), Sealed: []byte("s")}
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, id := range []custos.RecordID{"rec_1", "rec_2", "rec_3"} {
			must(t, "InsertRecord", tx.InsertRecord(ctx, rec(id)))
		}
		return nil
	})
	until := at(48 * time.Hour)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "RestrictSubject", tx.RestrictSubject(ctx, "sub_a", until))
		wantCode(t, "RestrictSubject unknown", tx.RestrictSubject(ctx, "sub_none", until), custos.ENOTFOUND)
		n, err := tx.RestrictRecords(ctx, []custos.RecordID{"rec_1", "rec_2", "rec_none"}, until)
		must(t, "RestrictRecords", err)
		if n != 2 {
			t.Errorf("RestrictRecords: got %d, want 2", n)
		}
		n, err = tx.RestrictRecords(ctx, nil, until)
		must(t, "RestrictRecords none", err)
		if n != 0 {
			t.Errorf("RestrictRecords(nil): got %d, want 0", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		if !st.RestrictedUntil.Equal(until) {
			t.Errorf("subject RestrictedUntil: got %v, want %v", st.RestrictedUntil, until)
		}
		wantUTC(t, "RestrictedUntil", st.RestrictedUntil)
		rs, err := tx.ListRecords(ctx, "sub_a", "")
		must(t, "ListRecords", err)
		got := map[custos.RecordID]time.Time{}
		for _, r := range rs {
			got[r.ID] = r.RestrictedUntil
		}
		diff(t, "records' RestrictedUntil", map[custos.RecordID]time.Time{"rec_1": until, "rec_2": until, "rec_3": {}}, got)
		return nil
	})
	// The zero time lifts a restriction.
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "RestrictSubject zero", tx.RestrictSubject(ctx, "sub_a", time.Time{}))
		n, err := tx.DeleteRecordsByID(ctx, []custos.RecordID{"rec_1", "rec_3", "rec_none"})
		must(t, "DeleteRecordsByID", err)
		if n != 2 {
			t.Errorf("DeleteRecordsByID: got %d, want 2", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, "sub_a")
		must(t, "GetSubject", err)
		if !st.RestrictedUntil.IsZero() {
			t.Errorf("lifted RestrictedUntil: got %v, want zero", st.RestrictedUntil)
		}
		rs, err := tx.ListRecords(ctx, "sub_a", "")
		must(t, "ListRecords", err)
		if len(rs) != 1 || rs[0].ID != "rec_2" {
			t.Errorf("records left: got %d, want only rec_2", len(rs))
		}
		return nil
	})
}

// testScanRecords covers ScanRecords: clocks, cutoff, types, cursor, limit.
func testScanRecords(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	recs := []*custos.StoredRecord{
		{ID: "rec_1", SubjectID: "sub_a", Type: "order", Category: "transaction", OccurredAt: at(0), CreatedAt: at(10 * time.Hour), Sealed: []byte("1")},
		{ID: "rec_2", SubjectID: "sub_a", Type: "browsing", Category: "behaviour", OccurredAt: at(time.Hour), CreatedAt: at(time.Hour), Sealed: []byte("2")},
		{ID: "rec_3", SubjectID: "sub_b", Type: "order", Category: "transaction", OccurredAt: at(5 * time.Hour), CreatedAt: at(5 * time.Hour), Sealed: []byte("3")},
		{ID: "rec_4", SubjectID: "sub_b", Type: "payment", Category: "transaction", OccurredAt: at(2 * time.Hour), CreatedAt: at(2 * time.Hour), Sealed: []byte("4"),
			RestrictedUntil: at(100 * time.Hour)},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, r := range recs {
			must(t, "InsertRecord", tx.InsertRecord(ctx, r))
		}
		return tx.SetLifecycle(ctx, "sub_b", custos.TriggerAccountClosure, at(3*time.Hour))
	})
	ids := func(rs []*custos.ScannedRecord) []custos.RecordID {
		var out []custos.RecordID
		for _, r := range rs {
			out = append(out, r.ID)
		}
		return out
	}
	tests := []struct {
		name      string
		q         custos.RecordScan
		want      []custos.RecordID
		wantClock []time.Time
	}{
		{name: "occurred before cutoff", q: custos.RecordScan{Types: []string{"order", "payment"}, Clock: custos.ClockOccurred, Before: at(3 * time.Hour), Limit: 10},
			want: []custos.RecordID{"rec_1", "rec_4"}, wantClock: []time.Time{at(0), at(2 * time.Hour)}},
		{name: "created before cutoff", q: custos.RecordScan{Types: []string{"order", "payment"}, Clock: custos.ClockCreated, Before: at(3 * time.Hour), Limit: 10},
			want: []custos.RecordID{"rec_4"}, wantClock: []time.Time{at(2 * time.Hour)}},
		{name: "cutoff is exclusive", q: custos.RecordScan{Types: []string{"order"}, Clock: custos.ClockOccurred, Before: at(0), Limit: 10}},
		{name: "after cursor", q: custos.RecordScan{Types: []string{"order", "payment", "browsing"}, Clock: custos.ClockOccurred, Before: at(99 * time.Hour), After: "rec_2", Limit: 10},
			want: []custos.RecordID{"rec_3", "rec_4"}, wantClock: []time.Time{at(5 * time.Hour), at(2 * time.Hour)}},
		{name: "limit", q: custos.RecordScan{Types: []string{"order", "payment", "browsing"}, Clock: custos.ClockOccurred, Before: at(99 * time.Hour), Limit: 2},
			want: []custos.RecordID{"rec_1", "rec_2"}, wantClock: []time.Time{at(0), at(time.Hour)}},
		{name: "lifecycle event clock", q: custos.RecordScan{Types: []string{"order", "payment"}, Clock: custos.TriggerAccountClosure, Before: at(4 * time.Hour), Limit: 10},
			want: []custos.RecordID{"rec_3", "rec_4"}, wantClock: []time.Time{at(3 * time.Hour), at(3 * time.Hour)}},
		{name: "lifecycle event not reached", q: custos.RecordScan{Types: []string{"order", "payment"}, Clock: custos.TriggerAccountClosure, Before: at(3 * time.Hour), Limit: 10}},
		{name: "no types", q: custos.RecordScan{Clock: custos.ClockOccurred, Before: at(99 * time.Hour), Limit: 10}},
		{name: "window", q: custos.RecordScan{Types: []string{"order", "payment", "browsing"}, Clock: custos.ClockOccurred, Before: at(99 * time.Hour), After: "rec_1", Through: "rec_3", Limit: 10},
			want: []custos.RecordID{"rec_2", "rec_3"}, wantClock: []time.Time{at(time.Hour), at(5 * time.Hour)}},
		{name: "window and lifecycle event clock", q: custos.RecordScan{Types: []string{"order", "payment"}, Clock: custos.TriggerAccountClosure, Before: at(4 * time.Hour), Through: "rec_3", Limit: 10},
			want: []custos.RecordID{"rec_3"}, wantClock: []time.Time{at(3 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.ScanRecords(ctx, tt.q)
				must(t, "ScanRecords", err)
				diff(t, "ids", tt.want, ids(got))
				for i, r := range got {
					if i < len(tt.wantClock) && !r.Clock.Equal(tt.wantClock[i]) {
						t.Errorf("%s clock: got %v, want %v", r.ID, r.Clock, tt.wantClock[i])
					}
					wantUTC(t, "Clock", r.Clock)
				}
				return nil
			})
		})
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ScanRecords(ctx, custos.RecordScan{Types: []string{"payment"}, Clock: custos.ClockOccurred, Before: at(99 * time.Hour), Limit: 10})
		must(t, "ScanRecords payment", err)
		if len(got) != 1 {
			t.Fatalf("ScanRecords payment: got %d, want 1", len(got))
		}
		want := *recs[3]
		diff(t, "scanned record", &want, &got[0].StoredRecord)
		// The windows a sweep goes through: the n-th record after a cursor,
		// or none when fewer than n follow.
		for _, w := range []struct {
			after custos.RecordID
			n     int
			want  custos.RecordID
		}{{"", 1, "rec_1"}, {"", 4, "rec_4"}, {"rec_1", 2, "rec_3"}, {"rec_2", 3, ""}, {"rec_4", 1, ""}, {"", 0, ""}} {
			end, err := tx.RecordWindowEnd(ctx, w.after, w.n)
			must(t, "RecordWindowEnd", err)
			if end != w.want {
				t.Errorf("RecordWindowEnd(%q, %d): got %q, want %q", w.after, w.n, end, w.want)
			}
		}
		return nil
	})
}

// testScanSubjects covers ScanSubjects: created, last activity (updates,
// records and a marked event) and lifecycle-event clocks.
func testScanSubjects(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for i, id := range []custos.SubjectID{"sub_a", "sub_b", "sub_c", "sub_d"} {
			must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"e": {1}},
				CreatedAt: at(time.Duration(i) * time.Hour), UpdatedAt: at(time.Duration(i) * time.Hour)}))
		}
		// sub_a: a record created later; sub_b: a marked last activity;
		// sub_c: restricted and closed.
		must(t, "InsertRecord", tx.InsertRecord(ctx, &custos.StoredRecord{ID: "rec_1", SubjectID: "sub_a", Type: "order", Category: "transaction",
			OccurredAt: at(0), CreatedAt: at(10 * time.Hour), Sealed: []byte("x")}))
		must(t, "SetLifecycle", tx.SetLifecycle(ctx, "sub_b", custos.TriggerLastActivity, at(20*time.Hour)))
		must(t, "SetLifecycle closure", tx.SetLifecycle(ctx, "sub_c", custos.TriggerAccountClosure, at(5*time.Hour)))
		must(t, "SetLifecycle closure d", tx.SetLifecycle(ctx, "sub_d", custos.TriggerAccountClosure, at(7*time.Hour)))
		return tx.RestrictSubject(ctx, "sub_c", at(50*time.Hour))
	})
	type item struct {
		ID         custos.SubjectID
		Clock      time.Time
		Restricted time.Time
	}
	tests := []struct {
		name string
		q    custos.SubjectScan
		want []item
	}{
		{name: "created", q: custos.SubjectScan{Clock: custos.ClockCreated, Before: at(2 * time.Hour), Limit: 10},
			want: []item{{"sub_a", at(0), time.Time{}}, {"sub_b", at(time.Hour), time.Time{}}}},
		{name: "created after cursor with limit", q: custos.SubjectScan{Clock: custos.ClockCreated, Before: at(99 * time.Hour), After: "sub_a", Limit: 2},
			want: []item{{"sub_b", at(time.Hour), time.Time{}}, {"sub_c", at(2 * time.Hour), at(50 * time.Hour)}}},
		{name: "last activity", q: custos.SubjectScan{Clock: custos.ClockLastActivity, Before: at(99 * time.Hour), Limit: 10},
			want: []item{{"sub_a", at(10 * time.Hour), time.Time{}}, {"sub_b", at(20 * time.Hour), time.Time{}},
				{"sub_c", at(2 * time.Hour), at(50 * time.Hour)}, {"sub_d", at(3 * time.Hour), time.Time{}}}},
		{name: "last activity cutoff", q: custos.SubjectScan{Clock: custos.ClockLastActivity, Before: at(10 * time.Hour), Limit: 10},
			want: []item{{"sub_c", at(2 * time.Hour), at(50 * time.Hour)}, {"sub_d", at(3 * time.Hour), time.Time{}}}},
		{name: "event", q: custos.SubjectScan{Clock: custos.TriggerAccountClosure, Before: at(6 * time.Hour), Limit: 10},
			want: []item{{"sub_c", at(5 * time.Hour), at(50 * time.Hour)}}},
		{name: "event not reached", q: custos.SubjectScan{Clock: custos.TriggerAccountClosure, Before: at(5 * time.Hour), Limit: 10}},
		{name: "event in customer order with limit", q: custos.SubjectScan{Clock: custos.TriggerAccountClosure, Before: at(99 * time.Hour), Limit: 1},
			want: []item{{"sub_c", at(5 * time.Hour), at(50 * time.Hour)}}},
		{name: "event after cursor", q: custos.SubjectScan{Clock: custos.TriggerAccountClosure, Before: at(99 * time.Hour), After: "sub_c", Limit: 10},
			want: []item{{"sub_d", at(7 * time.Hour), time.Time{}}}},
		{name: "other event", q: custos.SubjectScan{Clock: "deletion_retained_until", Before: at(99 * time.Hour), Limit: 10}},
		{name: "window", q: custos.SubjectScan{Clock: custos.ClockCreated, Before: at(99 * time.Hour), After: "sub_a", Through: "sub_c", Limit: 10},
			want: []item{{"sub_b", at(time.Hour), time.Time{}}, {"sub_c", at(2 * time.Hour), at(50 * time.Hour)}}},
		{name: "window and last activity", q: custos.SubjectScan{Clock: custos.ClockLastActivity, Before: at(99 * time.Hour), Through: "sub_a", Limit: 10},
			want: []item{{"sub_a", at(10 * time.Hour), time.Time{}}}},
		{name: "window and event", q: custos.SubjectScan{Clock: custos.TriggerAccountClosure, Before: at(99 * time.Hour), Through: "sub_c", Limit: 10},
			want: []item{{"sub_c", at(5 * time.Hour), at(50 * time.Hour)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.ScanSubjects(ctx, tt.q)
				must(t, "ScanSubjects", err)
				var items []item
				for _, g := range got {
					items = append(items, item{g.ID, g.Clock, g.RestrictedUntil})
				}
				diff(t, "subjects", tt.want, items)
				return nil
			})
		})
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, w := range []struct {
			after custos.SubjectID
			n     int
			want  custos.SubjectID
		}{{"", 1, "sub_a"}, {"", 4, "sub_d"}, {"sub_b", 2, "sub_d"}, {"sub_c", 2, ""}, {"sub_d", 1, ""}, {"", 0, ""}} {
			end, err := tx.SubjectWindowEnd(ctx, w.after, w.n)
			must(t, "SubjectWindowEnd", err)
			if end != w.want {
				t.Errorf("SubjectWindowEnd(%q, %d): got %q, want %q", w.after, w.n, end, w.want)
			}
		}
		return nil
	})
}

// testAnonymised covers InsertAnonymised and ListAnonymised.
func testAnonymised(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	rows := []*custos.AnonymisedRecord{
		{ID: "anr_2", Type: "order", Category: "transaction", Month: "2026-03", Data: map[string]any{"amount": 12.5, "city": "上海市"}, Rule: "r"},
		{ID: "anr_1", Type: "payment", Category: "transaction", Month: "2026-02", Data: map[string]any{}, Rule: "r"},
		{ID: "anr_3", Type: "order", Category: "transaction", Month: "2026-01", Data: map[string]any{"currency": "CNY"}, Rule: "q"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error { return tx.InsertAnonymised(ctx, rows) })
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertAnonymised(t.Context(), rows[:1]) })
	wantCode(t, "InsertAnonymised duplicate", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListAnonymised(ctx, "", 2)
		must(t, "ListAnonymised", err)
		diff(t, "first page", []*custos.AnonymisedRecord{rows[1], rows[0]}, got)
		got, err = tx.ListAnonymised(ctx, "anr_2", 2)
		must(t, "ListAnonymised page 2", err)
		diff(t, "second page", []*custos.AnonymisedRecord{rows[2]}, got)
		return nil
	})
}

// testHold covers InsertHold, GetHold, ListHolds and ReleaseHold.
func testHold(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	h1 := &custos.LegalHold{ID: "hold_1", Scope: custos.HoldCustomer, SubjectID: "sub_a", Reason: "dispute 42", Owner: "legal",
		CreatedAt: at(0), CreatedBy: "prn_x", ExpiresAt: at(72 * time.Hour)}
	h2 := &custos.LegalHold{ID: "hold_2", Scope: custos.HoldCategory, Category: "transaction", Reason: "tax audit", Owner: "finance",
		CreatedAt: at(time.Hour), CreatedBy: "prn_y"}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertHold 2", tx.InsertHold(ctx, h2))
		return tx.InsertHold(ctx, h1)
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertHold(t.Context(), h1) })
	wantCode(t, "InsertHold duplicate", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetHold(ctx, "hold_1")
		must(t, "GetHold", err)
		diff(t, "hold", h1, got)
		_, err = tx.GetHold(ctx, "hold_none")
		wantCode(t, "GetHold unknown", err, custos.ENOTFOUND)
		all, err := tx.ListHolds(ctx)
		must(t, "ListHolds", err)
		diff(t, "holds", []*custos.LegalHold{h1, h2}, all)
		return nil
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		return tx.ReleaseHold(ctx, "hold_2", at(2*time.Hour), "prn_z")
	})
	err = s.Update(t.Context(), func(tx custos.Tx) error { return tx.ReleaseHold(t.Context(), "hold_2", at(3*time.Hour), "prn_z") })
	wantCode(t, "ReleaseHold twice", err, custos.ENOTFOUND)
	err = s.Update(t.Context(), func(tx custos.Tx) error { return tx.ReleaseHold(t.Context(), "hold_none", at(3*time.Hour), "prn_z") })
	wantCode(t, "ReleaseHold unknown", err, custos.ENOTFOUND)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetHold(ctx, "hold_2")
		must(t, "GetHold released", err)
		want := *h2
		want.ReleasedAt, want.ReleasedBy = at(2*time.Hour), "prn_z"
		diff(t, "released hold", &want, got)
		return nil
	})
}

// testCertificate covers InsertCertificate, GetCertificate and
// ListCertificates; the body must come back byte for byte (it is signed).
func testCertificate(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	body := json.RawMessage(`{"format":"x","id":"cert_1","rules":[{"rule":"é","deleted":3}],"by_category":{"b":{"a":1}}}`)
	c1 := &custos.RetentionCertificate{ID: "cert_1", RunID: "run_1", StartedAt: at(0), FinishedAt: at(2 * time.Hour), AsOf: at(0),
		Body: body, KeyID: "k1", Signature: []byte{1, 2, 3}}
	c2 := &custos.RetentionCertificate{ID: "cert_2", RunID: "run_2", StartedAt: at(0), FinishedAt: at(time.Hour), AsOf: at(0),
		Body: json.RawMessage(`{}`), KeyID: "k1", Signature: []byte{4}}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertCertificate", tx.InsertCertificate(ctx, c1))
		return tx.InsertCertificate(ctx, c2)
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertCertificate(t.Context(), c1) })
	wantCode(t, "InsertCertificate duplicate", err, custos.ECONFLICT)
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.GetCertificate(ctx, "cert_1")
		must(t, "GetCertificate", err)
		diff(t, "certificate", c1, got)
		if string(got.Body) != string(body) {
			t.Errorf("body: got %s, want %s byte for byte", got.Body, body)
		}
		_, err = tx.GetCertificate(ctx, "cert_none")
		wantCode(t, "GetCertificate unknown", err, custos.ENOTFOUND)
		all, err := tx.ListCertificates(ctx)
		must(t, "ListCertificates", err)
		diff(t, "certificates (by finish time)", []*custos.RetentionCertificate{c2, c1}, all)
		return nil
	})
}
