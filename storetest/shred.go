package storetest

import (
	"context"
	"testing"
	"time"

	"custos"
)

func testShred(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	entries := []*custos.ShredEntry{
		{SubjectID: "sub_c", ShredAt: at(time.Minute), Reason: "customer request", ActorID: "prn_1"},
		{SubjectID: "sub_a", ShredAt: at(0), Reason: "retention", ActorID: "prn_2"},
		{SubjectID: "sub_b", ShredAt: at(time.Hour), Reason: "", ActorID: "prn_1"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for i, e := range entries {
			e.Seq = 1000 // ignored: the store numbers the ledger
			must(t, "InsertShred", tx.InsertShred(ctx, e))
			if i > 0 && e.Seq <= entries[i-1].Seq {
				t.Errorf("InsertShred %d: got seq %d after %d, want increasing", i, e.Seq, entries[i-1].Seq)
			}
		}
		return nil
	})
	if entries[0].Seq <= 0 {
		t.Fatalf("InsertShred: got seq %d, want > 0", entries[0].Seq)
	}

	// At a transaction's end (AtEnd) a store may write the entries with
	// the commit: their Seqs are set by the time Update returns, after
	// those before, in the order inserted.
	late := []*custos.ShredEntry{
		{SubjectID: "sub_d", ShredAt: at(2 * time.Hour), Reason: "retention:orders", ActorID: "prn_1"},
		{SubjectID: "sub_e", ShredAt: at(2 * time.Hour), Reason: "customer request", ActorID: "prn_2"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, e := range late {
			tx.(custos.AtEnder).AtEnd(func(tx custos.Tx) error { return tx.InsertShred(ctx, e) })
		}
		return nil
	})
	if late[0].Seq <= entries[2].Seq || late[1].Seq <= late[0].Seq {
		t.Errorf("InsertShred at the end: seqs %d, %d after %d, want increasing", late[0].Seq, late[1].Seq, entries[2].Seq)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListShreds(ctx, entries[2].Seq)
		must(t, "ListShreds", err)
		diff(t, "shreds inserted at the end", late, got)
		return nil
	})

	tests := []struct {
		name  string
		after int64
		want  []*custos.ShredEntry
	}{
		{name: "all in order", after: 0, want: append(entries[:3:3], late...)},
		{name: "after first", after: entries[0].Seq, want: append(entries[1:3:3], late...)},
		{name: "after the first three", after: entries[2].Seq, want: late},
		{name: "after last", after: late[1].Seq, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			view(t, s, func(ctx context.Context, tx custos.Tx) error {
				got, err := tx.ListShreds(ctx, tt.after)
				must(t, "ListShreds", err)
				diff(t, "shreds", tt.want, got)
				return nil
			})
		})
	}
}
