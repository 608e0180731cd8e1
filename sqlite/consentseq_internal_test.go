package sqlite

import (
	"context"
	"testing"
	"time"

	"custos"
)

// TestConsentSeqsPastTheTable: InsertConsents hands out seqs after the
// table's largest even when SQLite's AUTOINCREMENT counter lags it (a
// counter row lost or edited), so a batch never fails on a seq in use.
// Issue #7 (the seed's consents without RETURNING); C4 (the consent
// history's order).
func TestConsentSeqsPastTheTable(t *testing.T) {
	ctx := context.Background()
	db := openWithCache(t, 0)
	now := time.Now().UTC().Truncate(time.Microsecond)
	consent := func(id string) *custos.StoredConsent {
		return &custos.StoredConsent{ID: id, SubjectID: "s1", Purpose: "marketing", Scope: "purpose", Action: custos.ConsentGranted,
			NoticeVersion: 1, At: now, Channel: "app", InitiatedBy: "subject"}
	}
	first := []*custos.StoredConsent{consent("c1"), consent("c2"), consent("c3")}
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.InsertConsents(ctx, first) }); err != nil {
		t.Fatal(err)
	}
	if _, err := db.write.ExecContext(ctx, `DELETE FROM sqlite_sequence WHERE name = 'consents'`); err != nil {
		t.Fatal(err)
	}
	next := []*custos.StoredConsent{consent("c4"), consent("c5")}
	if err := db.Update(ctx, func(tx custos.Tx) error { return tx.InsertConsents(ctx, next) }); err != nil {
		t.Fatalf("InsertConsents with the counter behind the table: %v", err)
	}
	if next[0].Seq != first[2].Seq+1 || next[1].Seq != next[0].Seq+1 {
		t.Errorf("seqs %d, %d after %d; want the next two", next[0].Seq, next[1].Seq, first[2].Seq)
	}
}
