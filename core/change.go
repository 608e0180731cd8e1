package core

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"custos"
)

// UpdateSubject implements custos.SubjectService. Corrected values are
// validated as at collection; the old values are never logged or audited,
// only the field names.
func (s *Service) UpdateSubject(ctx context.Context, purposes []string, id custos.SubjectID, upd custos.SubjectUpdate) (*custos.Subject, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	fields := slices.Sorted(maps.Keys(upd.Fields))
	ev := event(ctx, custos.AuditSubjectUpdate, id, purposes, fields)
	d := s.decide(ctx, custos.ActSubjectUpdate, purposes, fields, nil)
	if !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	set := map[string]string{}
	var removed []string
	for name, v := range upd.Fields {
		if v == nil {
			removed = append(removed, name)
		} else {
			set[name] = *v
		}
	}
	vals, vs := s.normalise(d.Fields, set, now)
	for _, name := range removed {
		if fd := d.Fields[name]; fd.Outcome == custos.Denied {
			vs = append(vs, custos.Violation{Field: name, Rule: fd.Reason, Detail: deniedDetail(fd.Reason)})
		}
	}
	if len(fields) == 0 {
		vs = append(vs, custos.Violation{Field: "fields", Rule: "required", Detail: "at least one field"})
	}
	vs = append(vs, checkProvenance(upd.Provenance)...)
	ps, err := s.loadPlans(ctx, purposes, []string{upd.Provenance.Plan}, now)
	if err != nil {
		return nil, err
	}
	// Removing a value collects nothing: only the values set need a plan.
	planID, pvs := ps.check(s.RequirePlan, upd.Provenance.Plan, slices.Sorted(maps.Keys(vals)), nil, now)
	vs = append(vs, pvs...)
	if len(vs) > 0 {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EINVALID, Message: "Nothing was changed: some fields were refused.", Violations: vs})
	}
	newIndex := s.lookups(vals)
	var out *custos.Subject
	err = s.run(ctx, ev, func(tx custos.Tx) error {
		st, err := tx.GetSubject(ctx, id)
		if err != nil {
			return err
		}
		if err := checkRestricted(tx, st); err != nil {
			return err
		}
		if err := s.checkBasis(ctx, tx, id, custos.ActSubjectUpdate, purposes, fields, nil); err != nil {
			return err
		}
		dk, err := tx.GetDataKey(ctx, id)
		if err != nil {
			return err
		}
		aead, err := s.aead(dk)
		if err != nil {
			return err
		}
		// Lookup keys: drop the old entry, claim the new one (409 if taken).
		for _, name := range slices.Sorted(maps.Keys(upd.Fields)) {
			if f := s.catalog.Field(name); f == nil || !f.Lookup {
				continue
			}
			if err := tx.DeleteLookups(ctx, id, name); err != nil {
				return err
			}
			if h, ok := newIndex[name]; ok {
				if err := tx.InsertLookup(ctx, name, h, id); err != nil {
					if e := custos.AsError(err); e != nil && e.Code == custos.ECONFLICT {
						return duplicate(name, custos.SubjectID(e.ConflictID))
					}
					return err
				}
			}
		}
		var entries []provenanceEntry
		if ct, ok := st.Sealed[provenanceField]; ok {
			pt, err := aead.Open(ct, dekAAD("subjects", provenanceField, id, "", dk.Version))
			if err != nil {
				return err
			}
			if entries, err = decodeProvenance(pt, s.catalog); err != nil {
				return err
			}
		}
		prov := upd.Provenance
		prov.Time, prov.Plan = tx.Now(), planID
		vals[provenanceField] = encodeProvenance(entries, fields, prov)
		sealed, err := s.sealFields(aead, id, dk.Version, vals)
		if err != nil {
			return err
		}
		for _, name := range removed {
			delete(st.Sealed, name)
		}
		maps.Copy(st.Sealed, sealed)
		st.UpdatedAt = tx.Now()
		if err := tx.UpdateSubject(ctx, st); err != nil {
			return err
		}
		out = &custos.Subject{ID: id, Fields: map[string]string{}, CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt}
		return nil
	})
	return out, err
}

// EraseSubject implements custos.SubjectService by crypto-shredding: the
// subject's data key is destroyed, so every copy of its ciphertext —
// replicas, old backups — becomes unreadable; its rows are removed and the
// shred ledger records the erasure so a restore can re-apply it (R4).
func (s *Service) EraseSubject(ctx context.Context, purposes []string, id custos.SubjectID, reason string) (*custos.ErasureReceipt, error) {
	ev := event(ctx, custos.AuditSubjectErase, id, purposes, nil)
	if d := s.decide(ctx, custos.ActSubjectErase, purposes, nil, nil); !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "request"
	}
	if len(reason) > 200 {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The reason is too long.", custos.Violation{Field: "reason", Rule: "max_length", Detail: "at most 200 bytes"}))
	}
	ev.Reason = reason
	var rc *custos.ErasureReceipt
	var shreds shredAttempts // shred ledger entries written by the attempts below
	err := s.run(ctx, ev, func(tx custos.Tx) (err error) {
		shreds.begin()
		rc, err = s.eraseTx(ctx, tx, id, reason, ev, &shreds)
		return err
	})
	s.settleShred(&shreds, err)
	return rc, err
}

// eraseTx crypto-shreds subject id inside tx: the one erase path, shared by
// EraseSubject, rights requests and the retention sweeper. It sets
// ev.Fields to the erased field names, and appends the erasure to the
// shred ledger outside the store before the commit (S7); the caller calls
// shreds.begin at the start of each transaction attempt and settleShred
// after the transaction.
func (s *Service) eraseTx(ctx context.Context, tx custos.Tx, id custos.SubjectID, reason string, ev *custos.AuditEvent, shreds *shredAttempts) (*custos.ErasureReceipt, error) {
	st, n, err := tx.EraseSubjectRows(ctx, id)
	if err != nil {
		return nil, err
	}
	ev.Fields = storedFields(st)
	rc := &custos.ErasureReceipt{SubjectID: id, ErasedAt: tx.Now(), Reason: reason, Records: n}
	shred := custos.ShredEntry{SubjectID: id, ShredAt: tx.Now(), Reason: reason, ActorID: ev.ActorID}
	// The store's own entry takes the append lock on PostgreSQL, and a
	// commit group ends after a member that takes it, so erasures that
	// inserted it at once committed one at a time. Where the store takes
	// work at the transaction's end, it is inserted there, with the audit
	// events, and erasures share commits (BENCHMARKS.md, thirty-seventh
	// session). It commits with the erasure either way.
	if at, ok := tx.(custos.AtEnder); ok {
		at.AtEnd(func(tx custos.Tx) error { return tx.InsertShred(ctx, &shred) })
	} else if err := tx.InsertShred(ctx, &shred); err != nil {
		return nil, err
	}
	return rc, s.recordShred(tx, shred, shreds) // S7: on disk before the commit
}
