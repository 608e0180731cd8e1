package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"custos"
)

// testBatch: the batch forms used by an import store exactly what the
// one-row methods store, for batches that span several statements
// (more than BatchRows rows and an odd rest), and refuse an existing key
// with ECONFLICT.
func testBatch(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	const n = 300
	var (
		subs  []*custos.StoredSubject
		dks   []*custos.DataKey
		lks   []custos.Lookup
		rows  []*custos.ImportRow
		lines []int
	)
	for i := range n {
		id := custos.SubjectID(fmt.Sprintf("sub_%04d", i))
		subs = append(subs, &custos.StoredSubject{ID: id, Sealed: map[string][]byte{"name": []byte(fmt.Sprint("ct", i))},
			CreatedAt: at(0), UpdatedAt: at(0)})
		dks = append(dks, &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: 1 + i%2, Wrapped: []byte(fmt.Sprint("w", i)), CreatedAt: at(0)})
		lks = append(lks, custos.Lookup{Field: "email", Hash: []byte(fmt.Sprint("he", i)), SubjectID: id},
			custos.Lookup{Field: "mobile", Hash: []byte(fmt.Sprint("hm", i)), SubjectID: id})
		r := &custos.ImportRow{Job: "job", Line: i + 2, Status: custos.ImportStored, SubjectID: id}
		if i%7 == 0 {
			r = &custos.ImportRow{Job: "job", Line: i + 2, Status: custos.ImportRejected, Message: "refused",
				Violations: []custos.Violation{{Field: "mobile", Rule: "mobile_format", Detail: "11 digits"}}}
		}
		rows = append(rows, r)
		lines = append(lines, i+2)
	}
	events := auditEvents(n)
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertDataKeys", tx.InsertDataKeys(ctx, dks))
		must(t, "InsertSubjects", tx.InsertSubjects(ctx, subs))
		must(t, "InsertLookups", tx.InsertLookups(ctx, lks))
		must(t, "InsertImportRows", tx.InsertImportRows(ctx, rows))
		must(t, "AuditHead", func() error { _, _, err := tx.AuditHead(ctx); return err }())
		must(t, "InsertAuditEvents", tx.InsertAuditEvents(ctx, events))
		// The commit group's head follows the batch (SQLite keeps it in
		// memory for the transaction).
		seq, hash, err := tx.AuditHead(ctx)
		must(t, "AuditHead after the batch", err)
		if seq != n || string(hash) != string(events[n-1].Hash) {
			t.Errorf("AuditHead after the batch: got (%d, %x), want (%d, %x)", seq, hash, n, events[n-1].Hash)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for i, want := range subs {
			got, err := tx.GetSubject(ctx, want.ID)
			must(t, "GetSubject", err)
			diff(t, "subject", want, got)
			k, err := tx.GetDataKey(ctx, want.ID)
			must(t, "GetDataKey", err)
			diff(t, "data key", dks[i], k)
		}
		for _, l := range lks {
			got, err := tx.FindLookup(ctx, l.Field, l.Hash)
			must(t, "FindLookup", err)
			if got != l.SubjectID {
				t.Errorf("FindLookup %s %s: got %q, want %q", l.Field, l.Hash, got, l.SubjectID)
			}
		}
		// FindLookups answers the keys that exist, and only those.
		hashes := [][]byte{[]byte("nobody")}
		want := map[string]custos.SubjectID{}
		for _, l := range lks {
			if l.Field == "mobile" {
				hashes = append(hashes, l.Hash)
				want[string(l.Hash)] = l.SubjectID
			}
		}
		got, err := tx.FindLookups(ctx, "mobile", hashes)
		must(t, "FindLookups", err)
		diff(t, "FindLookups", want, got)
		got, err = tx.FindLookups(ctx, "email", [][]byte{[]byte("hm1")})
		must(t, "FindLookups other field", err)
		diff(t, "FindLookups other field", map[string]custos.SubjectID{}, got)
		got, err = tx.FindLookups(ctx, "mobile", nil)
		must(t, "FindLookups of no hashes", err)
		diff(t, "FindLookups of no hashes", map[string]custos.SubjectID{}, got)

		byLine, err := tx.GetImportRows(ctx, "job", append([]int{1, n + 5}, lines...))
		must(t, "GetImportRows", err)
		if len(byLine) != n {
			t.Errorf("GetImportRows: got %d rows, want %d", len(byLine), n)
		}
		for _, r := range rows {
			diff(t, "import row", r, byLine[r.Line])
		}
		other, err := tx.GetImportRows(ctx, "other-job", lines)
		must(t, "GetImportRows other job", err)
		diff(t, "GetImportRows other job", map[int]*custos.ImportRow{}, other)
		none, err := tx.GetImportRows(ctx, "job", nil)
		must(t, "GetImportRows of no lines", err)
		diff(t, "GetImportRows of no lines", map[int]*custos.ImportRow{}, none)

		stored, err := tx.FindAuditEvents(ctx, custos.AuditFilter{})
		must(t, "FindAuditEvents", err)
		diff(t, "audit events", events, stored)
		return nil
	})

	// An existing key is refused, and the transaction is undone.
	for name, fn := range map[string]func(ctx context.Context, tx custos.Tx) error{
		"InsertSubjects": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertSubjects(ctx, []*custos.StoredSubject{{ID: "sub_new", Sealed: map[string][]byte{"a": {1}}, CreatedAt: at(0), UpdatedAt: at(0)}, subs[5]})
		},
		"InsertDataKeys": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertDataKeys(ctx, []*custos.DataKey{dks[9]})
		},
		"InsertLookups": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertLookups(ctx, []custos.Lookup{{Field: "mobile", Hash: []byte("hm7"), SubjectID: subs[8].ID}})
		},
		"InsertImportRows": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertImportRows(ctx, []*custos.ImportRow{{Job: "job", Line: n + 1, Status: custos.ImportStored}})
		},
	} {
		err := s.Update(t.Context(), func(tx custos.Tx) error { return fn(t.Context(), tx) })
		wantCode(t, name+" existing key", err, custos.ECONFLICT)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.GetSubject(ctx, "sub_new")
		wantCode(t, "subject of a refused batch", err, custos.ENOTFOUND)
		return nil
	})
}

// testBatchRecords: InsertRecords and InsertConsents (a seeded import
// batch's records and consents) store exactly what InsertRecord and
// InsertConsent store one by one, for batches spanning several
// statements; InsertConsents sets each Seq in the order given; an
// existing id is refused with ECONFLICT and the transaction undone.
func testBatchRecords(t *testing.T, open OpenFunc) {
	s := openStore(t, open)
	insertSubjects(t, s, "sub_a", "sub_b")
	const n = 203 // 128 + 64 + 8 + 2 + 1: five statements
	var (
		recs []*custos.StoredRecord
		cs   []*custos.StoredConsent
	)
	for i := range n {
		sub := custos.SubjectID("sub_a")
		if i%3 == 0 {
			sub = "sub_b"
		}
		recs = append(recs, &custos.StoredRecord{ID: custos.RecordID(fmt.Sprintf("rec_%04d", i)), SubjectID: sub, Type: "order", Category: "orders",
			OccurredAt: at(time.Duration(i) * time.Minute), CreatedAt: at(time.Hour), Sealed: []byte(fmt.Sprint("sealed ", i))})
		if i == 7 {
			recs[i].RestrictedUntil = at(48 * time.Hour)
		}
		c := &custos.StoredConsent{ID: fmt.Sprintf("con_%04d", i), SubjectID: sub, Purpose: "marketing", Action: custos.ConsentGranted,
			NoticeVersion: 1, At: at(time.Duration(i) * time.Second), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"}
		if i%5 == 0 {
			c.Scope, c.Action, c.ByGuardian, c.Sealed = "sensitive:health", custos.ConsentRefused, true, []byte{byte(i), 1}
		}
		cs = append(cs, c)
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertRecords", tx.InsertRecords(ctx, recs))
		must(t, "InsertConsents", tx.InsertConsents(ctx, cs))
		must(t, "InsertRecords none", tx.InsertRecords(ctx, nil))
		must(t, "InsertConsents none", tx.InsertConsents(ctx, nil))
		return nil
	})
	for i := 1; i < n; i++ {
		if cs[i].Seq <= cs[i-1].Seq {
			t.Fatalf("InsertConsents: seq %d (%s) after %d, want increasing in the order given", cs[i].Seq, cs[i].ID, cs[i-1].Seq)
		}
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		for _, sub := range []custos.SubjectID{"sub_a", "sub_b"} {
			var wantRecs []*custos.StoredRecord
			var wantCons []*custos.StoredConsent
			for i := n - 1; i >= 0; i-- { // ListRecords: newest first
				if recs[i].SubjectID == sub {
					wantRecs = append(wantRecs, recs[i])
				}
			}
			for _, c := range cs {
				if c.SubjectID == sub {
					wantCons = append(wantCons, c)
				}
			}
			got, err := tx.ListRecords(ctx, sub, "")
			must(t, "ListRecords", err)
			diff(t, "records of "+string(sub), wantRecs, got)
			gotCons, err := tx.ListConsents(ctx, sub)
			must(t, "ListConsents", err)
			diff(t, "consents of "+string(sub), wantCons, gotCons)
		}
		return nil
	})

	for name, fn := range map[string]func(ctx context.Context, tx custos.Tx) error{
		"InsertRecords": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertRecords(ctx, []*custos.StoredRecord{{ID: "rec_new", SubjectID: "sub_a", Type: "order", Category: "orders",
				OccurredAt: at(0), CreatedAt: at(0), Sealed: []byte("x")}, recs[100]})
		},
		"InsertConsents": func(ctx context.Context, tx custos.Tx) error {
			return tx.InsertConsents(ctx, []*custos.StoredConsent{{ID: "con_new", SubjectID: "sub_a", Purpose: "marketing",
				Action: custos.ConsentGranted, NoticeVersion: 1, At: at(0), Channel: "app", InitiatedBy: "customer"}, cs[150]})
		},
		"InsertConsents same id twice": func(ctx context.Context, tx custos.Tx) error {
			c := &custos.StoredConsent{ID: "con_twice", SubjectID: "sub_a", Purpose: "marketing", Action: custos.ConsentGranted,
				NoticeVersion: 1, At: at(0), Channel: "app", InitiatedBy: "customer"}
			d := *c
			return tx.InsertConsents(ctx, []*custos.StoredConsent{c, &d})
		},
	} {
		err := s.Update(t.Context(), func(tx custos.Tx) error { return fn(t.Context(), tx) })
		wantCode(t, name+" existing id", err, custos.ECONFLICT)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListRecords(ctx, "sub_a", "")
		must(t, "ListRecords", err)
		for _, r := range got {
			if r.ID == "rec_new" {
				t.Errorf("record of a refused batch was stored")
			}
		}
		gotCons, err := tx.ListConsents(ctx, "sub_a")
		must(t, "ListConsents", err)
		for _, c := range gotCons {
			if c.ID == "con_new" || c.ID == "con_twice" {
				t.Errorf("consent %s of a refused batch was stored", c.ID)
			}
		}
		return nil
	})

	// Seqs are never handed out twice, even once the consents that had
	// the highest are gone (an erased customer's), and one-by-one and
	// batch inserts share one sequence.
	high := cs[n-1]
	if high.SubjectID != "sub_a" {
		t.Fatalf("test setup: the last consent belongs to %s, want sub_a", high.SubjectID)
	}
	one := &custos.StoredConsent{ID: "con_one", SubjectID: "sub_b", Purpose: "marketing", Action: custos.ConsentGranted,
		NoticeVersion: 1, At: at(0), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"}
	more := []*custos.StoredConsent{
		{ID: "con_more1", SubjectID: "sub_b", Purpose: "marketing", Action: custos.ConsentWithdrawn,
			NoticeVersion: 1, At: at(0), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"},
		{ID: "con_more2", SubjectID: "sub_b", Purpose: "analytics", Action: custos.ConsentGranted,
			NoticeVersion: 1, At: at(0), Channel: "app", InitiatedBy: "customer", ActorID: "prn_app"},
	}
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		_, err := tx.DeleteConsents(ctx, "sub_a")
		return err
	})
	update(t, s, func(ctx context.Context, tx custos.Tx) error {
		must(t, "InsertConsents after a delete", tx.InsertConsents(ctx, more[:1]))
		must(t, "InsertConsent after a batch", tx.InsertConsent(ctx, one))
		must(t, "InsertConsents after InsertConsent", tx.InsertConsents(ctx, more[1:]))
		return nil
	})
	if more[0].Seq <= high.Seq || one.Seq <= more[0].Seq || more[1].Seq <= one.Seq {
		t.Errorf("seqs after the highest (%d) was deleted: batch %d, one %d, batch %d; want each above the one before",
			high.Seq, more[0].Seq, one.Seq, more[1].Seq)
	}
	view(t, s, func(ctx context.Context, tx custos.Tx) error {
		got, err := tx.ListConsents(ctx, "sub_b")
		must(t, "ListConsents", err)
		if len(got) < 3 {
			t.Fatalf("sub_b has %d consents, want at least 3", len(got))
		}
		diff(t, "sub_b's newest consents", []*custos.StoredConsent{more[0], one, more[1]}, got[len(got)-3:])
		return nil
	})
}
