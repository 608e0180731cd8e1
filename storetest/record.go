package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testRecord(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	rec := func(id custos.RecordID, sub custos.SubjectID, typ string, occurred time.Duration) *custos.StoredRecord {
		return &custos.StoredRecord{ID: id, SubjectID: sub, Type: typ, Category: typ + "s",
			OccurredAt: at(occurred), CreatedAt: at(time.Hour), Sealed: []byte("sealed " + string(id))}
	}
	var (
		r1 = rec("rec_1", "sub_a", "order", 1*time.Minute)
		r2 = rec("rec_2", "sub_a", "payment", 3*time.Minute)
		r3 = rec("rec_3", "sub_a", "order", 2*time.Minute)
		r4 = rec("rec_4", "sub_a", "order", 2*time.Minute) // same time as r3: id breaks the tie
		r5 = rec("rec_5", "sub_b", "order", 5*time.Minute)
	)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, r := range []*custos.StoredRecord{r1, r2, r3, r4, r5} {
			must(t, "InsertRecord", tx.InsertRecord(ctx, r))
		}
		return nil
	})
	err := s.Update(t.Context(), func(tx custos.Tx) error { return tx.InsertRecord(t.Context(), r1) })
	wantCode(t, "InsertRecord duplicate", err, custos.ECONFLICT)

	tests := []struct {
		name string
		sub  custos.SubjectID
		typ  string
		want []*custos.StoredRecord
	}{
		{name: "all newest first", sub: "sub_a", want: []*custos.StoredRecord{r2, r4, r3, r1}},
		{name: "by type", sub: "sub_a", typ: "order", want: []*custos.StoredRecord{r4, r3, r1}},
		{name: "other type", sub: "sub_a", typ: "payment", want: []*custos.StoredRecord{r2}},
		{name: "unknown type", sub: "sub_a", typ: "ticket", want: nil},
		{name: "other subject", sub: "sub_b", want: []*custos.StoredRecord{r5}},
		{name: "no records", sub: "sub_missing", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.ListRecords(ctx, tt.sub, tt.typ)
				must(t, "ListRecords", err)
				diff(t, "records", tt.want, got)
				for _, r := range got {
					wantUTC(t, "OccurredAt", r.OccurredAt)
				}
				return nil
			})
		})
	}

	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		n, err := tx.DeleteRecords(ctx, "sub_a")
		must(t, "DeleteRecords", err)
		if n != 4 {
			t.Errorf("DeleteRecords: got %d, want 4", n)
		}
		n, err = tx.DeleteRecords(ctx, "sub_a")
		must(t, "DeleteRecords again", err)
		if n != 0 {
			t.Errorf("DeleteRecords again: got %d, want 0", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListRecords(ctx, "sub_a", "")
		must(t, "ListRecords", err)
		diff(t, "records after delete", []*custos.StoredRecord(nil), got)
		got, err = tx.ListRecords(ctx, "sub_b", "")
		must(t, "ListRecords sub_b", err)
		diff(t, "other subject's records", []*custos.StoredRecord{r5}, got)
		return nil
	})
}
