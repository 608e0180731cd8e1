package core_test

import (
	"strings"
	"testing"
	"time"

	"custos"
	"custos/core"
	"custos/postgres"
)

// TestRetentionPostgres runs the sweeper on PostgreSQL: anonymise, delete,
// a closed account crypto-shredded, a legal hold holding an order back
// until released, and a certificate that verifies (L2, L3).
func TestRetentionPostgres(t *testing.T) {
	u := pgSchemaURL(t)
	start := time.Now().UTC().Truncate(time.Microsecond)
	clk := &clock{now: start}
	db, err := postgres.Open(t.Context(), u, postgres.Options{Migrate: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	svc, admin, _, _ := newService(t, db)
	publishPersonalisation(t, svc, admin)
	mk := func(mobile string) custos.SubjectID {
		s, err := svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{Fields: map[string]string{"name": "王小明", "mobile": mobile}, Provenance: prov})
		if err != nil {
			t.Fatal(err)
		}
		consentPersonalisation(t, svc, admin, s.ID)
		for _, typ := range []string{"order", "browsing"} {
			if _, err := svc.CreateRecord(admin, []string{"fulfilment", "personalisation"}, s.ID, custos.NewRecord{Type: typ,
				OccurredAt: start.Add(-time.Hour), Data: map[string]any{"amount": "5.00", "currency": "CNY"}, Provenance: prov}); err != nil {
				t.Fatal(err)
			}
		}
		return s.ID
	}
	a, b := mk("13900008001"), mk("13900008002")
	if err := svc.MarkLifecycle(admin, a, custos.TriggerAccountClosure, time.Time{}); err != nil {
		t.Fatal(err)
	}
	h, err := svc.PlaceHold(admin, custos.LegalHold{Scope: custos.HoldCustomer, SubjectID: b, Reason: "dispute", Owner: "legal"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(start.AddDate(3, 0, 2))
	dry, err := svc.RunRetention(admin, core.RetentionOptions{DryRun: true, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := svc.RunRetention(admin, core.RetentionOptions{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*custos.RetentionReport{dry, rep} {
		if o := outcome(t, r, "transaction-records"); o.Anonymised != 1 || o.Held != 1 {
			t.Errorf("dry %v transaction-records: %+v; want anonymised 1, held 1", r.DryRun, o)
		}
	}
	if o := outcome(t, rep, "behaviour-records"); o.Deleted != 1 || o.Held != 1 {
		t.Errorf("behaviour-records: %+v", o)
	}
	if o := outcome(t, rep, "closed-accounts"); o.Deleted != 1 {
		t.Errorf("closed-accounts: %+v", o)
	}
	if _, err := svc.FindSubjectByID(admin, []string{"account"}, a); custos.ErrorCode(err) != custos.ENOTFOUND {
		t.Errorf("closed account after the sweep: %v", err)
	}
	chk, err := svc.VerifyCertificate(admin, rep.CertificateID)
	if err != nil || !chk.Valid {
		t.Errorf("certificate: %v %+v", err, chk)
	}
	var rows []*custos.AnonymisedRecord
	if err := db.View(t.Context(), func(tx custos.Tx) (err error) {
		rows, err = tx.ListAnonymised(t.Context(), "", 10)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Data["amount"] != 5.0 || strings.Contains(mustJSON(t, rows), string(a)) {
		t.Errorf("anonymised rows: %s", mustJSON(t, rows))
	}
	if _, err := svc.ReleaseHold(admin, h.ID); err != nil {
		t.Fatal(err)
	}
	rep, err = svc.RunRetention(admin, core.RetentionOptions{BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcome(t, rep, "transaction-records"); o.Anonymised != 1 || o.Held != 0 {
		t.Errorf("after release: %+v", o)
	}
}
