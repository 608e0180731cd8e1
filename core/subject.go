package core

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"custos"
	"custos/keys"
	"custos/mask"
	"custos/policy"
	"custos/validate"
)

// provenanceField is the pseudo-field under which a subject's provenance
// entries are sealed beside its values.
const provenanceField = "_provenance"

// provenanceEntry says where the listed fields' current values came from.
type provenanceEntry struct {
	Fields     []string          `json:"fields"`
	Provenance custos.Provenance `json:"provenance"`
}

// prepared is a validated, sealed subject ready to be inserted.
type prepared struct {
	stored  *custos.StoredSubject
	dk      *custos.DataKey
	lookups map[string][]byte // field → blind index
	fields  []string
	consent *capturePlan // consent captured with the subject, or nil
	aead    *keys.AEAD   // seals the consent's evidence
	receipt *custos.ConsentReceipt
}

// checkProvenance reports missing provenance parts (C6).
func checkProvenance(p custos.Provenance) []custos.Violation {
	var vs []custos.Violation
	for _, c := range []struct{ name, v string }{{"collector", p.Collector}, {"channel", p.Channel}, {"source", p.Source}} {
		if strings.TrimSpace(c.v) == "" {
			vs = append(vs, custos.Violation{Field: "provenance." + c.name, Rule: "required"})
		} else if len(c.v) > 200 {
			vs = append(vs, custos.Violation{Field: "provenance." + c.name, Rule: "max_length", Detail: "at most 200 bytes"})
		}
	}
	if len(p.Location) > 200 || len(p.Plan) > 200 {
		vs = append(vs, custos.Violation{Field: "provenance", Rule: "max_length", Detail: "location and plan at most 200 bytes"})
	}
	return vs
}

// normalise validates each field the decision allows, returning normalised
// values (secrets already hashed) or the violations; it never echoes a value.
func (s *Service) normalise(d map[string]custos.FieldDecision, in map[string]string, now time.Time) (map[string]string, []custos.Violation) {
	out := make(map[string]string, len(in))
	var vs []custos.Violation
	for _, name := range slices.Sorted(maps.Keys(in)) {
		fd := d[name]
		if fd.Outcome == custos.Denied {
			vs = append(vs, custos.Violation{Field: name, Rule: fd.Reason, Detail: deniedDetail(fd.Reason)})
			continue
		}
		def := s.catalog.Field(name)
		fn, ok := validate.Lookup(def.Validator)
		if !ok {
			vs = append(vs, custos.Violation{Field: name, Rule: "validator_unknown"})
			continue
		}
		v, rule, detail := fn(in[name], validate.Options{Enum: def.Enum, MaxLen: def.MaxLen, Now: now})
		if rule != "" {
			vs = append(vs, custos.Violation{Field: name, Rule: rule, Detail: detail})
			continue
		}
		if def.Secret {
			h, err := keys.HashSecret(v, s.rand)
			if err != nil {
				vs = append(vs, custos.Violation{Field: name, Rule: "hash_failed"})
				continue
			}
			v = h
		}
		out[name] = v
	}
	return out, vs
}

func deniedDetail(reason string) string {
	switch reason {
	case "field_unknown":
		return "not a field in the catalog"
	case "field_not_for_purpose":
		return "the declared purpose does not allow collecting this field (minimum necessary, C1)"
	case "category_not_for_role":
		return "your role may not handle this category"
	case policy.ReasonNoConsent:
		return "the purpose rests on consent and the customer has not given it (C4)"
	case policy.ReasonConsentWithdrawn:
		return "the customer withdrew consent to this purpose (R5)"
	case policy.ReasonNoticeOutdated:
		return "the customer consented under a notice that did not cover this; new consent is needed (U2)"
	case policy.ReasonSensitiveConsent:
		return "sensitive personal information needs its own consent (PIPL Art. 29)"
	}
	return ""
}

// noticeOnce reads the current notice at most once, for the subjects
// prepared by one request (an import batch's rows share one read). Not
// safe for concurrent use.
type noticeOnce struct {
	read   bool
	notice *custos.Notice
}

// get returns the current notice (nil when none is published), read on
// the first call.
func (o *noticeOnce) get(ctx context.Context, store custos.Store) (*custos.Notice, error) {
	if o.read {
		return o.notice, nil
	}
	err := store.View(ctx, func(tx custos.Tx) (err error) {
		o.notice, err = currentNotice(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	o.read = true
	return o.notice, nil
}

// prepare decides, validates, and seals a new subject outside any
// transaction, so the write lock is held only for the inserts. nt gives
// the current notice when the subject comes with a consent capture.
func (s *Service) prepare(ctx context.Context, action string, purposes []string, in custos.NewSubject, ps *plans, nt *noticeOnce, now time.Time) (p *prepared, refused string, err error) {
	fields := slices.Sorted(maps.Keys(in.Fields))
	d := s.decide(ctx, action, purposes, fields, nil)
	if !d.Allowed {
		return nil, d.Reason, nil
	}
	var vs []custos.Violation
	// Step 4 for a new subject: the only consent it can have is the one
	// captured with it.
	var plan *capturePlan
	if in.Consent != nil || s.needsConsent(purposes) {
		if in.Consent != nil {
			notice, err := nt.get(ctx, s.store)
			if err != nil {
				return nil, "", err
			}
			var cvs []custos.Violation
			plan, cvs = s.checkCapture(in.Consent, notice, nil, in.Fields, now)
			for _, v := range cvs {
				v.Field = "consent." + v.Field
				vs = append(vs, v)
			}
		}
		d = s.decideBasis(ctx, action, purposes, fields, nil, s.captureView(plan).basis)
	}
	if len(in.Fields) == 0 {
		vs = append(vs, custos.Violation{Field: "fields", Rule: "required", Detail: "at least one field"})
	}
	vals, fvs := s.normalise(d.Fields, in.Fields, now)
	vs = append(vs, fvs...)
	vs = append(vs, checkProvenance(in.Provenance)...)
	// Only values that passed validation are checked against the plan, so
	// a bad value is refused once, for its own reason.
	planID, pvs := ps.check(s.RequirePlan, in.Provenance.Plan, slices.Sorted(maps.Keys(vals)), nil, now)
	vs = append(vs, pvs...)
	if len(vs) > 0 {
		return nil, "", &custos.Error{Code: custos.EINVALID, Message: "The subject was not stored: some fields were refused.", Violations: vs}
	}
	id := custos.SubjectID(custos.NewID("sub"))
	dek, err := keys.NewDEK(s.rand)
	if err != nil {
		return nil, "", err
	}
	ring := s.ring.Load()
	kv, wrapped, err := ring.Wrap(dek)
	if err != nil {
		return nil, "", err
	}
	dk := &custos.DataKey{SubjectID: id, Version: 1, KEKVersion: kv, Wrapped: wrapped, CreatedAt: now}
	prov := in.Provenance
	prov.Time, prov.Plan = now, planID
	vals[provenanceField] = encodeProvenance(nil, fields, prov)
	aead, err := keys.NewAEAD(dek)
	keys.Zero(dek)
	if err != nil {
		return nil, "", err
	}
	sealed, err := s.sealFields(aead, id, dk.Version, vals)
	if err != nil {
		return nil, "", err
	}
	p = &prepared{
		stored:  &custos.StoredSubject{ID: id, Sealed: sealed, CreatedAt: now, UpdatedAt: now},
		dk:      dk,
		lookups: s.lookups(vals),
		fields:  fields,
		consent: plan,
		aead:    aead,
	}
	return p, "", nil
}

func (s *Service) sealFields(aead *keys.AEAD, id custos.SubjectID, version int, vals map[string]string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(vals))
	for name, v := range vals {
		ct, err := aead.Seal([]byte(v), dekAAD("subjects", name, id, "", version), s.rand)
		if err != nil {
			return nil, err
		}
		out[name] = ct
	}
	return out, nil
}

func (s *Service) lookups(vals map[string]string) map[string][]byte {
	ix := s.indexer.Load()
	out := map[string][]byte{}
	for name, v := range vals {
		if f := s.catalog.Field(name); f != nil && f.Lookup {
			out[name] = ix.Index(name, v)
		}
	}
	return out
}

// insert stores a prepared subject, refusing a duplicate lookup key with
// ECONFLICT naming the existing subject (C5 de-duplication).
//
// The lookup insert itself detects a duplicate (InsertLookup answers
// ECONFLICT with the owner), so there is no probe before it: a duplicate
// fails the caller's transaction, which undoes the data key and subject
// written just before, and a create makes one statement per lookup key
// instead of two. A caller that goes on in the same transaction after a
// duplicate (an import batch) must find duplicates first (importTx does,
// for the whole batch). A store that can write the data key, the subject
// and its lookup keys in one statement (custos.NewSubjectInserter:
// PostgreSQL, one round trip instead of three) does so.
func (s *Service) insert(ctx context.Context, tx custos.Tx, p *prepared, actor custos.PrincipalID) error {
	// All of the customer's blind-index keys in one statement; only when
	// one is taken are the owners looked up, to name the first field (in
	// name order) that another customer has.
	names := slices.Sorted(maps.Keys(p.lookups))
	lks := make([]custos.Lookup, len(names))
	for i, name := range names {
		lks[i] = custos.Lookup{Field: name, Hash: p.lookups[name], SubjectID: p.stored.ID}
	}
	var err error
	if ins, ok := tx.(custos.NewSubjectInserter); ok {
		err = ins.InsertNewSubject(ctx, p.dk, p.stored, lks)
	} else {
		if err := tx.InsertDataKey(ctx, p.dk); err != nil {
			return err
		}
		if err := tx.InsertSubject(ctx, p.stored); err != nil {
			return err
		}
		err = tx.InsertLookups(ctx, lks)
	}
	if custos.ErrorCode(err) == custos.ECONFLICT {
		for _, l := range lks {
			owner, ferr := tx.FindLookup(ctx, l.Field, l.Hash)
			if custos.ErrorCode(ferr) == custos.ENOTFOUND {
				continue
			}
			if ferr != nil {
				return ferr
			}
			if owner != p.stored.ID {
				return duplicate(l.Field, owner)
			}
		}
		return err
	} else if err != nil {
		return err
	}
	if p.consent != nil {
		var err error
		p.receipt, err = s.storeCapture(ctx, tx, p.stored.ID, p.consent, p.aead, actor)
		return err
	}
	return nil
}

func duplicate(field string, other custos.SubjectID) error {
	return &custos.Error{Code: custos.ECONFLICT, Message: "A subject with the same " + field + " already exists.",
		ConflictID: string(other), Violations: []custos.Violation{{Field: field, Rule: "duplicate"}}}
}

// CreateSubject implements custos.SubjectService.
func (s *Service) CreateSubject(ctx context.Context, purposes []string, in custos.NewSubject) (*custos.Subject, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	ev := event(ctx, custos.AuditSubjectCreate, "", purposes, slices.Sorted(maps.Keys(in.Fields)))
	ps, err := s.loadPlans(ctx, purposes, []string{in.Provenance.Plan}, now)
	if err != nil {
		return nil, err
	}
	p, refused, err := s.prepare(ctx, custos.ActSubjectCreate, purposes, in, ps, &noticeOnce{}, now)
	if refused != "" {
		return nil, s.refuse(ctx, ev, refused)
	}
	if err != nil {
		return nil, s.auditRefusal(ctx, ev, err)
	}
	ev.SubjectID = p.stored.ID
	if err := s.run(ctx, ev, func(tx custos.Tx) error { return s.insert(ctx, tx, p, ev.ActorID) }); err != nil {
		return nil, err
	}
	return &custos.Subject{ID: p.stored.ID, Fields: map[string]string{}, CreatedAt: p.stored.CreatedAt, UpdatedAt: p.stored.UpdatedAt,
		ConsentReceipt: p.receipt}, nil
}

// auditRefusal audits an operation refused before any transaction began
// (invalid input) and returns err.
func (s *Service) auditRefusal(ctx context.Context, e *custos.AuditEvent, err error) error {
	code := custos.ErrorCode(err)
	if code == custos.EINTERNAL {
		return err
	}
	e.Decision, e.Reason = custos.DecisionDeny, code
	if aerr := s.store.Update(ctx, func(tx custos.Tx) error { return s.appendAudit(ctx, tx, e) }); aerr != nil {
		return aerr
	}
	return err
}

// openSubject decrypts the fields the decision lets through and masks them.
// Decryption and masking happen after the audit event is committed
// (runRead), outside every transaction; dk is nil when no field is
// visible.
func (s *Service) present(st *custos.StoredSubject, dk *custos.DataKey, d map[string]custos.FieldDecision) (*custos.Subject, error) {
	// Each map is made at its final size instead of growing field by
	// field (BenchmarkReadMaskedHTTP).
	decisions, visible := make(map[string]custos.FieldDecision, len(st.Sealed)), 0
	for name := range st.Sealed {
		if name != provenanceField {
			fd := d[name]
			decisions[name] = fd
			if fd.Outcome != custos.Denied {
				visible++
			}
		}
	}
	out := &custos.Subject{ID: st.ID, Fields: make(map[string]string, visible), Decisions: decisions,
		Provenance: make(map[string]custos.Provenance, visible), CreatedAt: st.CreatedAt, UpdatedAt: st.UpdatedAt}
	if dk == nil {
		return out, nil
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, err
	}
	// Each value opens into one buffer, zeroed once the answer holds its
	// strings, and each value's associated data into another. A buffer of
	// each a value was two allocations a field of every read (BENCHMARKS.md,
	// sixtieth session), and the opened bytes were left in the heap for
	// the collector; the answer's strings are copies, as before.
	most := 0
	for _, ct := range st.Sealed {
		most = max(most, len(ct))
	}
	buf := make([]byte, 0, most)
	defer func() { keys.Zero(buf[:cap(buf)]) }()
	aad := make([]byte, 0, 128) // a field name of up to about 60 bytes fits; a longer grows it once
	open := func(name string) ([]byte, error) {
		aad = appendDekAAD(aad[:0], "subjects", name, st.ID, "", dk.Version)
		return aead.OpenAppend(buf[:0], st.Sealed[name], aad)
	}
	for name, fd := range out.Decisions {
		if fd.Outcome == custos.Denied {
			continue
		}
		pt, err := open(name)
		if err != nil {
			return nil, err
		}
		v := string(pt)
		if fd.Outcome == custos.Masked {
			v = mask.Apply(s.catalog.Field(name).Mask, v)
		}
		out.Fields[name] = v
	}
	if _, ok := st.Sealed[provenanceField]; ok {
		pt, err := open(provenanceField)
		if err != nil {
			return nil, err
		}
		entries, err := decodeProvenance(pt, s.catalog)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			for _, f := range e.Fields {
				if _, visible := out.Fields[f]; visible {
					out.Provenance[f] = e.Provenance
				}
			}
		}
	}
	return out, nil
}

func storedFields(st *custos.StoredSubject) []string {
	out := make([]string, 0, len(st.Sealed))
	for name := range st.Sealed {
		if name != provenanceField {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// FindSubjectByID implements custos.SubjectService.
func (s *Service) FindSubjectByID(ctx context.Context, purposes []string, id custos.SubjectID) (*custos.Subject, error) {
	ev := event(ctx, custos.AuditSubjectRead, id, purposes, nil)
	if d := s.decide(ctx, custos.ActSubjectRead, purposes, nil, nil); !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	var l *loaded
	err := s.glanceRead(ctx, ev, func(tx custos.Tx) (err error) {
		l, err = s.load(ctx, tx, purposes, id, ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.present(l.st, l.dk, l.d)
}

// FindSubjectsByID implements custos.SubjectService. It is FindSubjectByID
// for many subjects at once: one decision for the request, one read
// snapshot for every subject, one audit transaction with an event per
// subject (granted, or refused with the code its result carries). One
// request for a page of customers costs the HTTP exchange, the
// authentication and the audit commit once instead of per customer.
func (s *Service) FindSubjectsByID(ctx context.Context, purposes []string, ids []custos.SubjectID) ([]custos.SubjectRead, error) {
	if err := checkReadBatch(ids); err != nil {
		return nil, err
	}
	evs := make([]*custos.AuditEvent, len(ids))
	for i, id := range ids {
		evs[i] = event(ctx, custos.AuditSubjectRead, id, purposes, nil)
	}
	if d := s.decide(ctx, custos.ActSubjectRead, purposes, nil, nil); !d.Allowed {
		return nil, s.refuseAll(ctx, evs, d.Reason)
	}
	out := make([]custos.SubjectRead, len(ids))
	ls := make([]*loaded, len(ids))
	err := s.store.View(ctx, func(tx custos.Tx) error {
		if p, ok := tx.(custos.SubjectPrefetcher); ok {
			// PostgreSQL: every subject in one statement, not one each.
			if err := p.PrefetchSubjects(ctx, ids); err != nil {
				return err
			}
		}
		for i, id := range ids {
			l, err := s.load(ctx, tx, purposes, id, evs[i])
			switch custos.ErrorCode(err) {
			case "":
				ls[i] = l
			case custos.EINTERNAL, custos.ESEALED:
				return err
			default:
				out[i].Err = err
				evs[i].Decision, evs[i].Reason, evs[i].Fields = custos.DecisionDeny, custos.ErrorCode(err), nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.store.Update(ctx, func(tx custos.Tx) error { return s.appendAudits(ctx, tx, evs) }); err != nil {
		return nil, err
	}
	for i, id := range ids {
		out[i].ID = id
		if ls[i] == nil {
			continue
		}
		if out[i].Subject, err = s.present(ls[i].st, ls[i].dk, ls[i].d); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkReadBatch refuses a batch read's id list that is empty, longer than
// custos.ReadBatchMax, names a subject twice or holds a malformed id,
// naming the first offending entry.
func checkReadBatch(ids []custos.SubjectID) error {
	switch {
	case len(ids) == 0:
		return custos.Invalid("A batch read names at least one subject.", custos.Violation{Field: "ids", Rule: "required"})
	case len(ids) > custos.ReadBatchMax:
		return custos.Invalid(fmt.Sprintf("A batch read names at most %d subjects.", custos.ReadBatchMax),
			custos.Violation{Field: "ids", Rule: "max_items", Detail: fmt.Sprintf("%d named, at most %d", len(ids), custos.ReadBatchMax)})
	}
	seen := make(map[custos.SubjectID]int, len(ids))
	for i, id := range ids {
		field := fmt.Sprintf("ids[%d]", i)
		if !custos.ValidID("sub", string(id)) {
			return custos.Invalid("A batch read names subjects by their ids (sub_ and 26 characters).", custos.Violation{Field: field, Rule: "format"})
		}
		if j, dup := seen[id]; dup {
			return custos.Invalid("A batch read names each subject once.",
				custos.Violation{Field: field, Rule: "duplicate", Detail: fmt.Sprintf("same as ids[%d]", j)})
		}
		seen[id] = i
	}
	return nil
}

// loaded is a subject fetched and decided inside a transaction, to be
// presented after it.
type loaded struct {
	st *custos.StoredSubject
	dk *custos.DataKey
	d  map[string]custos.FieldDecision
}

// load fetches a subject and decides each stored field for the purposes;
// ev records the fields the response will carry (names only).
func (s *Service) load(ctx context.Context, tx custos.Tx, purposes []string, id custos.SubjectID, ev *custos.AuditEvent) (*loaded, error) {
	st, err := tx.GetSubject(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := checkRestricted(tx, st); err != nil {
		return nil, err
	}
	basis, err := s.subjectBasis(ctx, tx, id, purposes)
	if err != nil {
		return nil, err
	}
	names := storedFields(st)
	d := s.decideBasis(ctx, custos.ActSubjectRead, purposes, names, nil, basis)
	if needsGrant(d.Fields) {
		// Step 5: an active grant of the actor may make a confidential
		// field plain; the read's audit event names the grants used.
		actor, now := custos.ActorFromContext(ctx), time.Now()
		gs, err := activeGrants(ctx, tx, actor, now)
		if err != nil {
			return nil, err
		}
		if hook := s.grantHook(gs, actor, custos.UseView, st.ID, st.CreatedAt, now); hook != nil {
			d = s.decideFull(ctx, custos.ActSubjectRead, purposes, names, nil, basis, hook)
			ev.Reason = grantReason(d.Grants)
		}
	}
	l := &loaded{st: st, d: d.Fields}
	ev.Fields = nil
	for _, name := range names {
		if d.Fields[name].Outcome != custos.Denied {
			ev.Fields = append(ev.Fields, name)
		}
	}
	if len(ev.Fields) > 0 {
		if l.dk, err = tx.GetDataKey(ctx, id); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// FindSubjectByLookup implements custos.SubjectService. The lookup field
// itself must be visible to the caller for the purpose, so that a caller
// cannot probe for the existence of values it may not see.
func (s *Service) FindSubjectByLookup(ctx context.Context, purposes []string, field, value string) (*custos.Subject, error) {
	ev := event(ctx, custos.AuditSubjectLookup, "", purposes, []string{field})
	d := s.decide(ctx, custos.ActSubjectRead, purposes, []string{field}, nil)
	if !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	def := s.catalog.Field(field)
	if def == nil || !def.Lookup {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The field is not a lookup key.",
			custos.Violation{Field: "field", Rule: "not_lookup_key", Detail: "lookup keys: " + strings.Join(s.catalog.LookupFields(), ", ")}))
	}
	if fd := d.Fields[field]; fd.Outcome == custos.Denied {
		return nil, s.refuse(ctx, ev, fd.Reason)
	}
	fn, ok := validate.Lookup(def.Validator)
	if !ok {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The lookup field has no known validator.", custos.Violation{Field: field, Rule: "validator_unknown"}))
	}
	norm, rule, detail := fn(value, validate.Options{Enum: def.Enum, MaxLen: def.MaxLen, Now: time.Now()})
	if rule != "" {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The lookup value is not valid.", custos.Violation{Field: field, Rule: rule, Detail: detail}))
	}
	hash := s.indexer.Load().Index(field, norm)
	var l *loaded
	err := s.glanceRead(ctx, ev, func(tx custos.Tx) error {
		id, err := tx.FindLookup(ctx, field, hash)
		if err != nil {
			return err
		}
		ev.SubjectID = id
		l, err = s.load(ctx, tx, purposes, id, ev)
		return err
	})
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "No subject has that %s.", field)
	} else if err != nil {
		return nil, err
	}
	return s.present(l.st, l.dk, l.d)
}
