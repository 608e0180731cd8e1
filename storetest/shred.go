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

	tests := []struct {
		name  string
		after int64
		want  []*custos.ShredEntry
	}{
		{name: "all in order", after: 0, want: entries},
		{name: "after first", after: entries[0].Seq, want: entries[1:]},
		{name: "after last", after: entries[2].Seq, want: nil},
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
