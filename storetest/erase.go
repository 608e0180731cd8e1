package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"custos"
)

// storeErasable writes for id what an erasure must remove: a data key,
// the subject, two blind-index keys, two records, two consents and a
// lifecycle event.
func storeErasable(ctx context.Context, t *testing.T, tx custos.Tx, id custos.SubjectID) {
	t.Helper()
	must(t, "InsertDataKey", tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1, Wrapped: []byte{1}, CreatedAt: at(0)}))
	must(t, "InsertSubject", tx.InsertSubject(ctx, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}))
	for _, f := range []string{"email", "mobile"} {
		must(t, "InsertLookup", tx.InsertLookup(ctx, f, []byte(f+string(id)), id))
	}
	for i := range 2 {
		must(t, "InsertRecord", tx.InsertRecord(ctx, &custos.StoredRecord{ID: custos.RecordID(fmt.Sprintf("rec_%s_%d", id, i)), SubjectID: id,
			Type: "order", Category: "transaction", OccurredAt: at(0), CreatedAt: at(0), Sealed: []byte{7}}))
		must(t, "InsertConsent", tx.InsertConsent(ctx, &custos.StoredConsent{ID: fmt.Sprintf("con_%s_%d", id, i), SubjectID: id, Purpose: "marketing",
			Action: custos.ConsentGranted, NoticeVersion: 1, At: at(time.Duration(i) * time.Minute), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"}))
	}
	must(t, "SetLifecycle", tx.SetLifecycle(ctx, id, custos.TriggerAccountClosure, at(time.Hour)))
}

// stored counts what the store holds for id, row kind by row kind.
func stored(ctx context.Context, t *testing.T, tx custos.Tx, id custos.SubjectID) map[string]int {
	t.Helper()
	n := map[string]int{}
	if _, err := tx.GetSubject(ctx, id); err == nil {
		n["subject"]++
	} else {
		wantCode(t, "GetSubject", err, custos.ENOTFOUND)
	}
	if _, err := tx.GetDataKey(ctx, id); err == nil {
		n["data key"]++
	} else {
		wantCode(t, "GetDataKey", err, custos.ENOTFOUND)
	}
	for _, f := range []string{"email", "mobile"} {
		if owner, err := tx.FindLookup(ctx, f, []byte(f+string(id))); err == nil && owner == id {
			n["lookups"]++
		} else if err != nil {
			wantCode(t, "FindLookup", err, custos.ENOTFOUND)
		}
	}
	recs, err := tx.ListRecords(ctx, id, "")
	must(t, "ListRecords", err)
	n["records"] = len(recs)
	cons, err := tx.ListConsents(ctx, id)
	must(t, "ListConsents", err)
	n["consents"] = len(cons)
	lc, err := tx.GetLifecycle(ctx, id)
	must(t, "GetLifecycle", err)
	n["lifecycle"] = len(lc)
	for k, v := range n {
		if v == 0 {
			delete(n, k)
		}
	}
	return n
}

// testEraseSubjectRows: an erasure's rows go, every kind of them, and
// only the erased customer's, and the subject comes back as it was; a
// missing subject or data key is ENOTFOUND by name, and the failed
// transaction leaves everything in place.
func testEraseSubjectRows(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		storeErasable(ctx, t, tx, "sub_a")
		storeErasable(ctx, t, tx, "sub_b")
		// A data key without its subject, and a subject without its key.
		must(t, "InsertDataKey", tx.InsertDataKey(ctx, &custos.DataKey{SubjectID: "sub_keyonly", Version: 1, KEKVersion: 1, Wrapped: []byte{1}, CreatedAt: at(0)}))
		return tx.InsertSubject(ctx, &custos.StoredSubject{ID: "sub_nokey", Sealed: map[string][]byte{"email": {1}}, CreatedAt: at(0), UpdatedAt: at(0)})
	})
	all := map[string]int{"subject": 1, "data key": 1, "lookups": 2, "records": 2, "consents": 2, "lifecycle": 1}

	var was *custos.StoredSubject
	view(t, s, func(ctx context.Context, tx custos.Tx) (err error) {
		was, err = tx.GetSubject(ctx, "sub_a")
		return err
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		st, n, err := tx.EraseSubjectRows(ctx, "sub_a")
		must(t, "EraseSubjectRows", err)
		diff(t, "EraseSubjectRows: the subject as it was", was, st)
		if n != 2 {
			t.Errorf("EraseSubjectRows: got %d records, want 2", n)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		diff(t, "sub_a after its erasure", map[string]int{}, stored(ctx, t, tx, "sub_a"))
		diff(t, "sub_b after sub_a's erasure", all, stored(ctx, t, tx, "sub_b"))
		return nil
	})

	for _, tt := range []struct {
		id      custos.SubjectID
		message string
		left    map[string]int
	}{
		{id: "sub_missing", message: "Subject not found.", left: map[string]int{}},
		{id: "sub_a", message: "Subject not found.", left: map[string]int{}},
		{id: "sub_keyonly", message: "Subject not found.", left: map[string]int{"data key": 1}},
		{id: "sub_nokey", message: "Data key not found.", left: map[string]int{"subject": 1}},
	} {
		err := s.Update(t.Context(), func(tx custos.Tx) error {
			st, _, err := tx.EraseSubjectRows(t.Context(), tt.id)
			if st != nil {
				t.Errorf("EraseSubjectRows %s: got a subject with the error", tt.id)
			}
			return err
		})
		wantCode(t, "EraseSubjectRows "+string(tt.id), err, custos.ENOTFOUND)
		if msg := custos.ErrorMessage(err); msg != tt.message {
			t.Errorf("EraseSubjectRows %s: message %q, want %q", tt.id, msg, tt.message)
		}
		view(t, s, func(ctx context.Context, tx custos.Tx) error {
			diff(t, string(tt.id)+" after a failed erasure", tt.left, stored(ctx, t, tx, tt.id))
			return nil
		})
	}
}
