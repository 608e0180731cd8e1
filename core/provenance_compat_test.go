package core_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"custos"
	"custos/keys"
)

// TestProvenanceStoredAsJSON: a subject whose provenance list was sealed
// as JSON, as every store written before the binary form holds it, reads
// with that provenance, and a correction keeps the old entries beside the
// new one, now sealed in the binary form (C6).
func TestProvenanceStoredAsJSON(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	id := e.create(t, map[string]string{"name": "王小明", "mobile": "13900004444"})
	const legacy = `[{"fields":["mobile","name"],"provenance":{"collector":"crm-2025","channel":"crm","source":"the customer","time":"2025-06-01T08:00:00+08:00"}}]`
	aad := keys.AAD("subjects", "_provenance", string(id), "", "v1")
	// open unwraps the subject's data key for a sealed value of it.
	open := func(tx custos.Tx) (*custos.StoredSubject, *keys.AEAD) {
		t.Helper()
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		dk, err := tx.GetDataKey(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		aead, err := keys.NewAEAD(mustUnwrap(t, e.ring, dk))
		if err != nil {
			t.Fatal(err)
		}
		return st, aead
	}
	if err := e.db.Update(ctx, func(tx custos.Tx) error {
		st, aead := open(tx)
		ct, err := aead.Seal([]byte(legacy), aad, rand.Reader)
		if err != nil {
			return err
		}
		st.Sealed["_provenance"] = ct
		return tx.UpdateSubject(ctx, st)
	}); err != nil {
		t.Fatal(err)
	}

	when := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	got, err := e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Provenance["mobile"]; p.Collector != "crm-2025" || p.Channel != "crm" || !p.Time.Equal(when) {
		t.Fatalf("provenance of mobile from the JSON list: %+v", p)
	}

	name := "王大明"
	if _, err := e.svc.UpdateSubject(e.admin, []string{"account"}, id, custos.SubjectUpdate{
		Fields: map[string]*string{"name": &name}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	got, err = e.svc.FindSubjectByID(e.admin, []string{"fulfilment"}, id)
	if err != nil {
		t.Fatal(err)
	}
	if p := got.Provenance["mobile"]; p.Collector != "crm-2025" || !p.Time.Equal(when) {
		t.Errorf("after correcting name, mobile's provenance is %+v, want the JSON list's entry", p)
	}
	if p := got.Provenance["name"]; p.Collector != prov.Collector {
		t.Errorf("after correcting name, its provenance is %+v, want the correction's", p)
	}
	if err := e.db.View(ctx, func(tx custos.Tx) error {
		st, aead := open(tx)
		pt, err := aead.Open(st.Sealed["_provenance"], aad)
		if err != nil {
			return err
		}
		if pt[0] != 0x01 {
			t.Errorf("the corrected list is sealed as %q..., want the binary form (0x01)", pt[:1])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
