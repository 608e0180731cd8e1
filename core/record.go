package core

import (
	"context"
	"encoding/json"
	"time"

	"custos"
	"custos/keys"
	"custos/policy"
)

// MaxRecordData is the largest record document accepted, in bytes of JSON.
const MaxRecordData = 64 << 10

type sealedRecord struct {
	Data       map[string]any    `json:"data"`
	Provenance custos.Provenance `json:"provenance"`
}

// recordDraft is a record that passed the decision and its own rules and
// waits to be sealed under its subject's data key.
type recordDraft struct {
	rec  *custos.StoredRecord // ID, Type, Category and OccurredAt set; no subject yet
	doc  []byte               // what rec.Sealed will seal
	prov custos.Provenance
}

// draftRecord checks in against the decision d (taken for in.Type) and
// the record rules, outside any transaction, and returns the draft or
// the violations (never a value).
func (s *Service) draftRecord(d policy.Decision, in custos.NewRecord, ps *plans, now time.Time) (*recordDraft, []custos.Violation) {
	var vs []custos.Violation
	rt := s.catalog.RecordType(in.Type)
	if fd := d.Records[in.Type]; fd.Outcome == custos.Denied {
		vs = append(vs, custos.Violation{Field: "type", Rule: fd.Reason, Detail: deniedDetail(fd.Reason)})
	}
	if in.OccurredAt.IsZero() {
		vs = append(vs, custos.Violation{Field: "occurred_at", Rule: "required", Detail: "RFC 3339 time"})
	} else if in.OccurredAt.After(now.Add(24 * time.Hour)) {
		vs = append(vs, custos.Violation{Field: "occurred_at", Rule: "not_future", Detail: "more than a day in the future"})
	}
	prov := in.Provenance
	prov.Time = now
	vs = append(vs, checkProvenance(prov)...)
	planID, pvs := ps.check(s.RequirePlan, prov.Plan, nil, []string{in.Type}, now)
	vs = append(vs, pvs...)
	prov.Plan = planID
	doc, err := json.Marshal(sealedRecord{Data: in.Data, Provenance: prov})
	if err != nil {
		vs = append(vs, custos.Violation{Field: "data", Rule: "json"})
	} else if len(doc) > MaxRecordData {
		vs = append(vs, custos.Violation{Field: "data", Rule: "max_size", Detail: "at most 64 KiB"})
	}
	if len(vs) > 0 {
		return nil, vs
	}
	r := &custos.StoredRecord{ID: custos.RecordID(custos.NewID("rec")), Type: rt.Name, Category: rt.Category,
		OccurredAt: in.OccurredAt.UTC().Truncate(time.Microsecond)}
	return &recordDraft{rec: r, doc: doc, prov: prov}, nil
}

// seal seals the draft for subject id under its data key (aead, key
// version) and returns the record to insert; CreatedAt is the caller's.
func (s *Service) sealRecord(dr *recordDraft, id custos.SubjectID, aead *keys.AEAD, version int) (*custos.StoredRecord, error) {
	r := *dr.rec
	r.SubjectID = id
	var err error
	if r.Sealed, err = aead.Seal(dr.doc, dekAAD("records", r.Type, id, r.ID, version), s.rand); err != nil {
		return nil, err
	}
	return &r, nil
}

// errRecordNotStored is the refusal of a record that broke a rule.
func errRecordNotStored(vs []custos.Violation) error {
	return &custos.Error{Code: custos.EINVALID, Message: "The record was not stored.", Violations: vs}
}

// CreateRecord implements custos.SubjectService.
func (s *Service) CreateRecord(ctx context.Context, purposes []string, id custos.SubjectID, in custos.NewRecord) (*custos.Record, error) {
	ev := event(ctx, custos.AuditRecordCreate, id, purposes, []string{"record:" + in.Type})
	d := s.decide(ctx, custos.ActRecordCreate, purposes, nil, []string{in.Type})
	if !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	ps, err := s.loadPlans(ctx, purposes, []string{in.Provenance.Plan}, now)
	if err != nil {
		return nil, err
	}
	dr, vs := s.draftRecord(d, in, ps, now)
	if len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, errRecordNotStored(vs))
	}
	var r *custos.StoredRecord
	err = s.run(ctx, ev, func(tx custos.Tx) error {
		// Reading the subject first locks it on PostgreSQL, so an erasure
		// running at the same time cannot leave an orphan record.
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		if err := checkRestricted(tx, st); err != nil {
			return err
		}
		if err := s.checkBasis(ctx, tx, id, custos.ActRecordCreate, purposes, nil, []string{in.Type}); err != nil {
			return err
		}
		dk, err := tx.GetDataKey(ctx, id)
		if err != nil {
			return notFoundSubject(err)
		}
		aead, err := s.aead(dk)
		if err != nil {
			return err
		}
		if r, err = s.sealRecord(dr, id, aead, dk.Version); err != nil {
			return err
		}
		r.CreatedAt = tx.Now()
		return tx.InsertRecord(ctx, r)
	})
	if err != nil {
		return nil, err
	}
	return &custos.Record{ID: r.ID, SubjectID: id, Type: r.Type, Category: r.Category, OccurredAt: r.OccurredAt, CreatedAt: r.CreatedAt, Provenance: dr.prov}, nil
}

func notFoundSubject(err error) error {
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return custos.Errorf(custos.ENOTFOUND, "Subject not found.")
	}
	return err
}

// FindRecords implements custos.SubjectService: records whose type the
// decision does not let through in plain are left out.
func (s *Service) FindRecords(ctx context.Context, purposes []string, id custos.SubjectID, typ string) ([]*custos.Record, error) {
	types := []string{typ}
	if typ == "" {
		types = nil
		for _, rt := range s.catalog.RecordTypes {
			types = append(types, rt.Name)
		}
	}
	ev := event(ctx, custos.AuditRecordRead, id, purposes, nil)
	d := s.decide(ctx, custos.ActRecordRead, purposes, nil, types)
	if !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	if typ != "" && s.catalog.RecordType(typ) == nil {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("Unknown record type.", custos.Violation{Field: "type", Rule: "field_unknown"}))
	}
	// Fetch and decide on a read snapshot, audit, and decrypt after the
	// audit event is committed, as subject reads do (runRead).
	var (
		dk      *custos.DataKey
		visible []*custos.StoredRecord
	)
	err := s.runRead(ctx, ev, func(tx custos.Tx) error {
		var err error
		if dk, err = tx.GetDataKey(ctx, id); err != nil {
			return notFoundSubject(err)
		}
		basis, err := s.subjectBasis(ctx, tx, id, purposes)
		if err != nil {
			return err
		} else if basis != nil {
			d = s.decideBasis(ctx, custos.ActRecordRead, purposes, nil, types, basis)
		}
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return notFoundSubject(err)
		}
		if err := checkRestricted(tx, st); err != nil {
			return err
		}
		rs, err := tx.ListRecords(ctx, id, typ)
		if err != nil {
			return err
		}
		if needsGrant(d.Records) && len(rs) > 0 {
			// Step 5: a grant may let a confidential record type through.
			actor, now := custos.ActorFromContext(ctx), time.Now()
			gs, err := activeGrants(ctx, tx, actor, now)
			if err != nil {
				return err
			}
			if len(gs) > 0 {
				st, err := tx.GetSubject(ctx, id)
				if err != nil {
					return err
				}
				if hook := s.grantHook(gs, actor, custos.UseView, id, st.CreatedAt, now); hook != nil {
					d = s.decideFull(ctx, custos.ActRecordRead, purposes, nil, types, basis, hook)
					ev.Reason = grantReason(d.Grants)
				}
			}
		}
		visible, ev.Fields = nil, nil
		seen := map[string]bool{}
		for _, r := range rs {
			// Restricted records are kept but excluded from every use.
			if d.Records[r.Type].Outcome != custos.Plain || restricted(r.RestrictedUntil, tx.Now()) {
				continue
			}
			visible = append(visible, r)
			if !seen[r.Type] {
				seen[r.Type] = true
				ev.Fields = append(ev.Fields, "record:"+r.Type)
			}
		}
		return nil
	})
	if err != nil || len(visible) == 0 {
		return nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, err
	}
	out := make([]*custos.Record, 0, len(visible))
	for _, r := range visible {
		pt, err := aead.Open(r.Sealed, dekAAD("records", r.Type, id, r.ID, dk.Version))
		if err != nil {
			return nil, err
		}
		var doc sealedRecord
		if err := json.Unmarshal(pt, &doc); err != nil {
			return nil, err
		}
		fd := d.Records[r.Type]
		out = append(out, &custos.Record{ID: r.ID, SubjectID: id, Type: r.Type, Category: r.Category, OccurredAt: r.OccurredAt,
			CreatedAt: r.CreatedAt, Data: doc.Data, Provenance: doc.Provenance, Decision: &fd})
	}
	return out, nil
}
