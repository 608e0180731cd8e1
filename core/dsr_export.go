package core

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"custos"
	"custos/mask"
)

// held is a customer's data decrypted for the customer themselves: an
// access report or a copy, never kept after the response.
type held struct {
	st       *custos.StoredSubject
	values   map[string]string
	prov     []provenanceEntry
	records  []*custos.Record
	consents []*custos.Consent
	notice   *custos.Notice
	recips   []string
}

// loadHeld checks that request reqID is a completed access or copy request
// the caller may read, audits the disclosure as action, and decrypts.
func (s *Service) loadHeld(ctx context.Context, reqID, action string) (*custos.RightsRequest, *held, error) {
	q, err := s.rightsRequest(ctx, reqID, false)
	if err != nil {
		return nil, nil, err
	}
	ev := rightsEvent(ctx, action, q.SubjectID)
	ev.Reason = reqID
	if err := s.requireRights(ctx, ev, q.SubjectID); err != nil {
		return nil, nil, err
	}
	if (q.Type != custos.RightsAccess && q.Type != custos.RightsCopy) || q.Status != custos.RightsCompleted {
		return nil, nil, s.auditRefusal(ctx, ev, custos.Invalid("Only a completed access or copy request has a report or export.",
			custos.Violation{Field: "request", Rule: "not_available", Detail: q.Type + " " + q.Status}))
	}
	h := &held{values: map[string]string{}}
	var dk *custos.DataKey
	var recs []*custos.StoredRecord
	var cons []*custos.StoredConsent
	err = s.run(ctx, ev, func(tx custos.Tx) error {
		var err error
		if h.st, err = tx.GetSubject(ctx, q.SubjectID); err != nil {
			return err
		}
		if err := checkRestricted(tx, h.st); err != nil {
			return err
		}
		if dk, err = tx.GetDataKey(ctx, q.SubjectID); err != nil {
			return err
		}
		if recs, err = tx.ListRecords(ctx, q.SubjectID, ""); err != nil {
			return err
		}
		if cons, err = tx.ListConsents(ctx, q.SubjectID); err != nil {
			return err
		}
		if h.notice, err = currentNotice(ctx, tx); err != nil {
			return err
		}
		rcps, err := tx.ListWebhookRecipients(ctx)
		if err != nil {
			return err
		}
		h.recips = nil // fn may run again (custos.Store)
		for _, r := range rcps {
			if !r.Disabled {
				h.recips = append(h.recips, r.Name)
			}
		}
		ev.Fields = storedFields(h.st)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	aead, err := s.aead(dk)
	if err != nil {
		return nil, nil, err
	}
	for name, ct := range h.st.Sealed {
		pt, err := aead.Open(ct, dekAAD("subjects", name, q.SubjectID, "", dk.Version))
		if err != nil {
			return nil, nil, err
		}
		if name == provenanceField {
			if h.prov, err = decodeProvenance(pt, s.catalog); err != nil {
				return nil, nil, err
			}
			continue
		}
		if f := s.catalog.Field(name); f != nil && f.Secret {
			continue // a hash, not the customer's value: never returned
		}
		h.values[name] = string(pt)
	}
	now := time.Now()
	for _, r := range recs {
		if restricted(r.RestrictedUntil, now) {
			continue
		}
		pt, err := aead.Open(r.Sealed, dekAAD("records", r.Type, q.SubjectID, r.ID, dk.Version))
		if err != nil {
			return nil, nil, err
		}
		var doc sealedRecord
		if err := json.Unmarshal(pt, &doc); err != nil {
			return nil, nil, err
		}
		h.records = append(h.records, &custos.Record{ID: r.ID, SubjectID: q.SubjectID, Type: r.Type, Category: r.Category,
			OccurredAt: r.OccurredAt, CreatedAt: r.CreatedAt, Data: doc.Data, Provenance: doc.Provenance})
	}
	for _, c := range cons {
		h.consents = append(h.consents, &custos.Consent{ID: c.ID, SubjectID: q.SubjectID, Purpose: c.Purpose, Scope: c.Scope, Action: c.Action,
			NoticeVersion: c.NoticeVersion, At: c.At, Channel: c.Channel, InitiatedBy: c.InitiatedBy, ByGuardian: c.ByGuardian})
	}
	return q, h, nil
}

// AccessReport answers a completed access (or copy) request: what is held
// (masked for display), which purposes use it, where it came from, who
// receives events about the customer and how long data is kept (R1).
func (s *Service) AccessReport(ctx context.Context, reqID string) (*custos.AccessReport, error) {
	q, h, err := s.loadHeld(ctx, reqID, AuditRightsRead)
	if err != nil {
		return nil, err
	}
	rep := &custos.AccessReport{SubjectID: q.SubjectID, GeneratedAt: time.Now().UTC(), Records: map[string]int{},
		Consents: h.consents, Recipients: h.recips, Notice: h.notice, Retention: map[string]string{}}
	source := map[string]custos.Provenance{}
	for _, e := range h.prov {
		for _, f := range e.Fields {
			source[f] = e.Provenance
		}
	}
	for _, name := range slices.Sorted(maps.Keys(h.values)) {
		f := s.catalog.Field(name)
		af := custos.AccessField{Name: name, Category: f.Category, Masked: mask.Apply(f.Mask, h.values[name]), Source: source[name]}
		for _, p := range s.catalog.Purposes {
			if slices.Contains(p.Fields, name) {
				af.Purposes = append(af.Purposes, p.Name)
			}
		}
		rep.Fields = append(rep.Fields, af)
	}
	for _, r := range h.records {
		rep.Records[r.Type]++
	}
	if h.notice != nil {
		for _, np := range h.notice.Content.Purposes {
			rep.Retention[np.Name] = np.Retention
		}
	}
	return rep, nil
}

// Export answers a completed copy (or access) request with a portable zip:
// the customer's fields, records and consents as JSON and as CSV (R2;
// NDSMR Art. 25). It is built in memory for the response and never stored.
func (s *Service) Export(ctx context.Context, reqID string) ([]byte, error) {
	q, h, err := s.loadHeld(ctx, reqID, AuditRightsExport)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	z := zip.NewWriter(&buf)
	add := func(name string, fill func(w *bytes.Buffer) error) error {
		var b bytes.Buffer
		if err := fill(&b); err != nil {
			return err
		}
		f, err := z.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.Now()})
		if err != nil {
			return err
		}
		_, err = f.Write(b.Bytes())
		return err
	}
	jsonOf := func(v any) func(*bytes.Buffer) error {
		return func(w *bytes.Buffer) error {
			e := json.NewEncoder(w)
			e.SetIndent("", "  ")
			return e.Encode(v)
		}
	}
	csvOf := func(header []string, rows [][]string) func(*bytes.Buffer) error {
		return func(w *bytes.Buffer) error {
			w.WriteString("\uFEFF") // so spreadsheet programs read UTF-8
			cw := csv.NewWriter(w)
			if err := cw.Write(header); err != nil {
				return err
			}
			if err := cw.WriteAll(rows); err != nil {
				return err
			}
			return cw.Error()
		}
	}
	var fieldRows [][]string
	for _, name := range slices.Sorted(maps.Keys(h.values)) {
		fieldRows = append(fieldRows, []string{name, h.values[name]})
	}
	var recRows [][]string
	for _, r := range h.records {
		data, err := json.Marshal(r.Data)
		if err != nil {
			return nil, err
		}
		recRows = append(recRows, []string{string(r.ID), r.Type, r.Category, r.OccurredAt.Format(time.RFC3339), string(data)})
	}
	var conRows [][]string
	for _, c := range h.consents {
		conRows = append(conRows, []string{c.Purpose, c.Scope, c.Action, fmt.Sprint(c.NoticeVersion), c.At.Format(time.RFC3339), c.Channel})
	}
	readme := fmt.Sprintf("Your personal information held by this company, exported by custos on %s for request %s.\n"+
		"fields.*: your profile; records.*: orders, payments and other records; consents.*: your consent decisions.\n"+
		"您的个人信息副本（请求 %s）。fields 为资料，records 为订单等记录，consents 为同意记录。\n",
		time.Now().UTC().Format(time.RFC3339), q.ID, q.ID)
	steps := []struct {
		name string
		fill func(*bytes.Buffer) error
	}{
		{"README.txt", func(w *bytes.Buffer) error { w.WriteString(readme); return nil }},
		{"subject.json", jsonOf(map[string]any{"subject_id": q.SubjectID, "fields": h.values, "created_at": h.st.CreatedAt})},
		{"fields.csv", csvOf([]string{"field", "value"}, fieldRows)},
		{"records.json", jsonOf(h.records)},
		{"records.csv", csvOf([]string{"id", "type", "category", "occurred_at", "data"}, recRows)},
		{"consents.json", jsonOf(h.consents)},
		{"consents.csv", csvOf([]string{"purpose", "scope", "action", "notice_version", "at", "channel"}, conRows)},
	}
	for _, st := range steps {
		if err := add(st.name, st.fill); err != nil {
			return nil, err
		}
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
