package core

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"custos"
	"custos/audit"
	"custos/internal/queue"
)

// MaxJobName bounds import job names.
const MaxJobName = 128

// ImportRow implements custos.SubjectService. A line already handled by the
// same job (an interrupted import being resumed) is answered "already" and
// not stored twice; the outcome of every line is remembered in the same
// transaction as the subject it stored.
func (s *Service) ImportRow(ctx context.Context, purposes []string, job string, line int, in custos.NewSubject) (*custos.ImportResult, error) {
	rs, err := s.ImportRows(ctx, purposes, job, []ImportInput{{Line: line, Subject: in}})
	if err != nil {
		return nil, err
	}
	return rs[0], nil
}

// ImportInput is one row of a batch. A line the client could not parse is
// sent with ParseError, the rule it broke ("column_count", "csv_syntax",
// …), and no subject: the server records it as rejected like any refused
// row, so a resumed run answers it "already" instead of refusing it again.
type ImportInput struct {
	Line       int               `json:"line"`
	Subject    custos.NewSubject `json:"subject"`
	ParseError string            `json:"parse_error,omitempty"`
}

// MaxParseError bounds the rule name of ImportInput.ParseError.
const MaxParseError = 64

// parseRule reports whether s is a rule name (lower-case letters, digits
// and _), so that what the server keeps for an unparsable line can never
// be a value from it.
func parseRule(s string) bool {
	if s == "" || len(s) > MaxParseError || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

// ImportRows imports a batch in one transaction: each valid row is stored
// (one audit event each), each invalid or duplicate row is answered with its
// reasons, and nothing is silently dropped (C5). The outcome of each line,
// reasons included, is remembered, so a line sent again is answered
// "already" with the earlier status in Previous and the earlier reasons.
// A line the client could not parse is recorded as rejected but not
// audited: it carries no data about anyone.
func (s *Service) ImportRows(ctx context.Context, purposes []string, job string, rows []ImportInput) ([]*custos.ImportResult, error) {
	return s.importRows(ctx, purposes, job, rows, nil)
}

// ImportRecords are records to create with an import batch: ByRow[i] are
// the records of the batch's rows[i], declared for Purposes; and whether
// the batch's consent receipts are wanted.
type ImportRecords struct {
	Purposes []string
	ByRow    [][]custos.NewRecord
	// NoReceipts: the caller has no one to hand the consent receipts of
	// the batch's rows to (custos seed's synthetic customers), so they
	// are neither signed nor returned. The consents are stored as ever.
	NoReceipts bool
}

// ImportRowsWithRecords is ImportRows that also creates, in the batch's
// one write transaction, the records of each row the batch stores (none
// for a row refused, found a duplicate or handled by an earlier run).
// Each record passes what CreateRecord checks — the decision for
// recs.Purposes, the record rules, the plan, the customer's consents
// (those captured with the row) — is sealed under its customer's data
// key and gets one audit event, appended with the batch's. A record
// that would be refused refuses the whole batch: nothing of it is
// stored, the refusal is audited, and the EINVALID error names the line,
// the record and the rule (never a value).
func (s *Service) ImportRowsWithRecords(ctx context.Context, purposes []string, job string, rows []ImportInput, recs ImportRecords) ([]*custos.ImportResult, error) {
	if len(recs.ByRow) != len(rows) {
		return nil, custos.Invalid("One list of records per row is needed.",
			custos.Violation{Field: "records", Rule: "one_per_row", Detail: fmt.Sprintf("%d rows, %d lists", len(rows), len(recs.ByRow))})
	}
	return s.importRows(ctx, purposes, job, rows, &recs)
}

// rowRecords are a stored row's records, sealed and ready to insert, or
// the refusal of the first that broke a rule.
type rowRecords struct {
	recs    []*custos.StoredRecord
	refusal *recordRefusal
}

// recordRefusal is a record refused while its batch was prepared; it
// fails the batch only if its row is stored.
type recordRefusal struct {
	line, index int
	ev          *custos.AuditEvent
	err         *custos.Error
}

func (r *recordRefusal) Error() string {
	return fmt.Sprintf("line %d record %d: %v", r.line, r.index, r.err)
}

// draftRows runs CreateRecord's checks on each prepared row's records
// outside the writer and seals them. A decision refusing the request as
// a whole is returned as refused (the batch is refused); a record that
// breaks a rule is kept in its row's refusal.
func (s *Service) draftRows(ctx context.Context, recs *ImportRecords, rows []ImportInput, preps []*prepared, now time.Time) (out []rowRecords, refused string, refusedEv *custos.AuditEvent, err error) {
	var cited []string
	for i, p := range preps {
		for _, in := range recs.ByRow[i] {
			if p != nil && in.Provenance.Plan != "" && !slices.Contains(cited, in.Provenance.Plan) {
				cited = append(cited, in.Provenance.Plan)
			}
		}
	}
	ps, err := s.loadPlans(ctx, recs.Purposes, cited, now)
	if err != nil {
		return nil, "", nil, err
	}
	basis := s.needsConsent(recs.Purposes)
	out = make([]rowRecords, len(rows))
	for i, p := range preps {
		if p == nil {
			continue
		}
		id := p.stored.ID
		view := s.captureView(p.consent)
		for j, in := range recs.ByRow[i] {
			ev := event(ctx, custos.AuditRecordCreate, id, recs.Purposes, []string{"record:" + in.Type})
			d := s.decide(ctx, custos.ActRecordCreate, recs.Purposes, nil, []string{in.Type})
			if !d.Allowed {
				return nil, d.Reason, ev, nil
			}
			dr, vs := s.draftRecord(d, in, ps, now)
			var rerr error
			if len(vs) > 0 {
				rerr = errRecordNotStored(vs)
			} else if basis {
				// CreateRecord's checkBasis, with the consents the row
				// captures: a new customer has no others.
				rerr = basisError(s.decideBasis(ctx, custos.ActRecordCreate, recs.Purposes, nil, []string{in.Type}, view.basis), nil, []string{in.Type})
			}
			if rerr != nil {
				out[i].refusal = &recordRefusal{line: rows[i].Line, index: j, ev: ev, err: custos.AsError(rerr)}
				break
			}
			r, err := s.sealRecord(dr, id, p.aead, p.dk.Version)
			if err != nil {
				return nil, "", nil, err
			}
			out[i].recs = append(out[i].recs, r)
		}
	}
	return out, "", nil, nil
}

// importTurn waits until fewer than ImportConcurrency batches are in work
// on this node, as long as ctx allows (queue.Hand: a request's deadline,
// without bound when there is none); a batch refused for time is
// EUNAVAILABLE, retry later, with nothing written.
func (s *Service) importTurn(ctx context.Context) (release func(), err error) {
	if err := queue.Hand(ctx, s.imports, struct{}{}, 0, nil, nil); err != nil {
		return nil, err
	}
	return func() { <-s.imports }, nil
}

// importRows is ImportRows, with the records of recs when not nil.
func (s *Service) importRows(ctx context.Context, purposes []string, job string, rows []ImportInput, recs *ImportRecords) ([]*custos.ImportResult, error) {
	ev := event(ctx, custos.AuditSubjectImport, "", purposes, nil)
	d := s.decide(ctx, custos.ActImport, purposes, nil, nil)
	if !d.Allowed {
		return nil, s.refuse(ctx, ev, d.Reason)
	}
	job = strings.TrimSpace(job)
	if job == "" || len(job) > MaxJobName {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The import job name is missing or too long.",
			custos.Violation{Field: "job", Rule: "required", Detail: "1–128 bytes"}))
	}
	release, err := s.importTurn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var cited []string
	for _, r := range rows {
		if r.Subject.Provenance.Plan != "" && !slices.Contains(cited, r.Subject.Provenance.Plan) {
			cited = append(cited, r.Subject.Provenance.Plan)
		}
	}
	ps, err := s.loadPlans(ctx, purposes, cited, now)
	if err != nil {
		return nil, err
	}
	results := make([]*custos.ImportResult, len(rows))
	preps := make([]*prepared, len(rows))
	nt := &noticeOnce{}
	for i, r := range rows {
		res := &custos.ImportResult{Line: r.Line}
		results[i] = res
		if r.Line <= 0 {
			res.Status, res.Violations = custos.ImportRejected, []custos.Violation{{Field: "line", Rule: "positive"}}
			continue
		}
		if r.ParseError != "" {
			res.Status, res.Message = custos.ImportRejected, "The line could not be parsed."
			res.Violations = []custos.Violation{{Field: "line", Rule: r.ParseError}}
			if !parseRule(r.ParseError) {
				res.Violations = []custos.Violation{{Field: "parse_error", Rule: "format",
					Detail: "a rule name of 1–64 lower-case letters, digits and _"}}
			}
			continue
		}
		p, refused, err := s.prepare(ctx, custos.ActImport, purposes, r.Subject, ps, nt, now)
		switch {
		case refused != "":
			return nil, s.refuse(ctx, ev, refused)
		case err != nil:
			e := custos.AsError(err)
			if e == nil || e.Code != custos.EINVALID {
				return nil, err
			}
			res.Status, res.Violations, res.Message = custos.ImportRejected, e.Violations, e.Message
		default:
			preps[i] = p
		}
	}
	var (
		rowRecs    []rowRecords
		recPurpose []string
	)
	if recs != nil {
		var refused string
		var rev *custos.AuditEvent
		if rowRecs, refused, rev, err = s.draftRows(ctx, recs, rows, preps, now); err != nil {
			return nil, err
		} else if refused != "" {
			rev.SubjectID = "" // nothing of the batch is stored
			return nil, s.refuse(ctx, rev, refused)
		}
		recPurpose = recs.Purposes
	}
	// The batch inserts its lookup keys first, or probes for their owners
	// first, as this job's earlier batches taught (importProbes). A batch
	// that inserted first and found a key taken runs again, probing. A
	// probing batch runs again if a concurrent transaction took one of
	// its keys between the probe and the insert (possible on PostgreSQL
	// only: SQLite has one writer); the retry sees it.
	probe := s.probes.first(job)
	for attempt := 1; ; attempt++ {
		tried := make([]*custos.ImportResult, len(results))
		for i, r := range results {
			c := *r
			tried[i] = &c
		}
		var found bool
		err = s.store.Update(ctx, func(tx custos.Tx) (err error) {
			found, err = s.importTx(ctx, tx, purposes, job, rows, preps, tried, recPurpose, rowRecs, probe)
			return err
		})
		if err == nil {
			s.importBatches.Add(1)
			if probe {
				s.importProbed.Add(1)
				s.probes.probed(job, found)
			}
			results = tried
			break
		}
		if errors.Is(err, errLookupTaken) {
			s.importRerun.Add(1)
			s.probes.missed(job)
			probe, attempt = true, attempt-1
			continue
		}
		var rr *recordRefusal
		if errors.As(err, &rr) {
			// The customer was not stored either: the event names no one.
			rr.ev.SubjectID = ""
			return nil, s.auditRefusal(ctx, rr.ev, recordBatchError(rr))
		}
		if !errors.Is(err, errLookupRace) || attempt == 3 {
			return nil, err
		}
	}
	// The receipts of the consents captured with the rows are signed once
	// the batch is committed, outside the single writer: they are handed
	// back in the rows' results, not stored, so signing them inside the
	// transaction would only hold the writer longer.
	if recs != nil && recs.NoReceipts {
		return results, nil
	}
	for i, p := range preps {
		if p != nil && p.receipt != nil && results[i].Status == custos.ImportStored {
			if err := s.signReceipt(p.receipt); err != nil {
				return nil, err
			}
			results[i].ConsentReceipt = p.receipt
		}
	}
	return results, nil
}

// recordBatchError is the error of a batch refused for one of its
// records: EINVALID naming the line, the record (by its index in the
// row's list) and each rule it broke.
func recordBatchError(rr *recordRefusal) error {
	vs := make([]custos.Violation, len(rr.err.Violations))
	for i, v := range rr.err.Violations {
		v.Field = fmt.Sprintf("records[%d].%s", rr.index, v.Field)
		vs[i] = v
	}
	return &custos.Error{Code: custos.EINVALID, Err: rr.err,
		Message:    fmt.Sprintf("Line %d: a record was refused (%s), so nothing of the batch was stored.", rr.line, rr.err.Message),
		Violations: vs}
}

// errLookupRace: a lookup key the probe found free was taken before the
// insert by another transaction.
var errLookupRace = &custos.Error{Code: custos.ECONFLICT,
	Message: "Another write stored the same customer at the same time; send the batch again."}

// errLookupTaken: a batch that inserted its lookup keys without probing
// found one taken; it is run again, probing.
var errLookupTaken = errors.New("import: a lookup key was taken")

// importTx is the write transaction of an import batch. The statements
// are per batch, not per row: one query for the lines already handled,
// with probe one per lookup field for the keys already taken, then
// multi-row inserts of the data keys, subjects, lookups, audit events and
// import rows. Duplicates are decided here, in line order, against the
// store and the earlier rows of the batch, exactly as inserting row after
// row would. Without probe only the batch's own rows are known; a key
// the store has makes the lookups' insert fall short, and the batch fails
// with errLookupTaken before anything is committed. found reports
// whether the probe found a stored key.
//
// With records (recPurposes, rowRecs), the records of each row stored
// are inserted too, with one audit event each after the rows' events; a
// stored row whose records were refused fails the transaction with its
// *recordRefusal.
func (s *Service) importTx(ctx context.Context, tx custos.Tx, purposes []string, job string, rows []ImportInput, preps []*prepared, results []*custos.ImportResult,
	recPurposes []string, rowRecs []rowRecords, probe bool) (found bool, err error) {
	lines := make([]int, 0, len(rows))
	for _, r := range rows {
		if r.Line > 0 {
			lines = append(lines, r.Line)
		}
	}
	handled, err := tx.GetImportRows(ctx, job, lines)
	if err != nil {
		return false, err
	}
	owners := map[string]map[string]custos.SubjectID{}
	if probe {
		byField := map[string][][]byte{}
		for i, p := range preps {
			if _, done := handled[rows[i].Line]; p == nil || done {
				continue
			}
			for name, h := range p.lookups {
				byField[name] = append(byField[name], h)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(byField)) {
			if owners[name], err = tx.FindLookups(ctx, name, byField[name]); err != nil {
				return false, err
			}
			found = found || len(owners[name]) > 0
		}
	}
	var (
		subs     []*custos.StoredSubject
		dks      []*custos.DataKey
		lks      []custos.Lookup
		captures []*prepared
		events   []*custos.AuditEvent
		recs     []*custos.ImportRow
		records  []*custos.StoredRecord
		recEvs   []*custos.AuditEvent
		refusal  *recordRefusal
	)
	for i, r := range rows {
		res := results[i]
		if r.Line <= 0 {
			continue
		}
		if prev, ok := handled[r.Line]; ok {
			res.Status, res.Previous, res.SubjectID, res.Violations = custos.ImportAlready, prev.Status, prev.SubjectID, prev.Violations
			res.Message = "handled by an earlier run: " + prev.Status
			if prev.Message != "" {
				res.Message += ": " + prev.Message
			}
			continue
		}
		if r.ParseError == "" {
			e := event(ctx, custos.AuditSubjectImport, "", purposes, nil)
			if p := preps[i]; p != nil {
				if name, other := taken(p, owners); other != "" {
					ce := custos.AsError(duplicate(name, other))
					res.Status, res.SubjectID, res.Violations, res.Message = custos.ImportDuplicate, other, ce.Violations, ce.Message
					e.SubjectID, e.Fields, e.Decision, e.Reason = other, p.fields, custos.DecisionDeny, custos.ECONFLICT
				} else {
					id := p.stored.ID
					for _, name := range slices.Sorted(maps.Keys(p.lookups)) {
						if owners[name] == nil {
							owners[name] = map[string]custos.SubjectID{}
						}
						owners[name][string(p.lookups[name])] = id
						lks = append(lks, custos.Lookup{Field: name, Hash: p.lookups[name], SubjectID: id})
					}
					subs, dks = append(subs, p.stored), append(dks, p.dk)
					if p.consent != nil {
						captures = append(captures, p)
					}
					res.Status, res.SubjectID = custos.ImportStored, id
					e.SubjectID, e.Fields = id, p.fields
					if rowRecs != nil {
						if rr := rowRecs[i]; rr.refusal != nil && refusal == nil {
							// Returned once the keys are in: without
							// probe, the row may yet be a duplicate.
							refusal = rr.refusal
						}
						for _, r := range rowRecs[i].recs {
							r.CreatedAt = tx.Now()
							records = append(records, r)
							recEvs = append(recEvs, event(ctx, custos.AuditRecordCreate, id, recPurposes, []string{"record:" + r.Type}))
						}
					}
				}
			} else {
				e.Decision, e.Reason = custos.DecisionDeny, custos.EINVALID
				e.Fields = slices.Sorted(maps.Keys(r.Subject.Fields))
			}
			events = append(events, e)
		}
		rec := &custos.ImportRow{Job: job, Line: r.Line, Status: res.Status, SubjectID: res.SubjectID,
			Violations: res.Violations, Message: res.Message}
		handled[r.Line] = rec
		recs = append(recs, rec)
	}
	if err := tx.InsertDataKeys(ctx, dks); err != nil {
		return false, err
	}
	if err := tx.InsertSubjects(ctx, subs); err != nil {
		return false, err
	}
	if err := tx.InsertLookups(ctx, lks); custos.ErrorCode(err) == custos.ECONFLICT {
		if !probe {
			return false, errLookupTaken
		}
		return false, errLookupRace
	} else if err != nil {
		return false, err
	}
	if refusal != nil {
		return false, refusal
	}
	if err := tx.InsertRecords(ctx, records); err != nil {
		return false, err
	}
	var actor custos.PrincipalID
	if a := custos.ActorFromContext(ctx); a != nil {
		actor = a.ID
	}
	// The consents captured with the rows, in row order, in a few
	// statements (storeCapture's, but for the batch); the receipts are
	// signed by the caller once the batch is committed.
	var consents []*custos.StoredConsent
	for _, p := range captures {
		if p.receipt, err = s.stampCapture(p.stored.ID, p.consent, p.aead, actor, tx.Now()); err != nil {
			return false, err
		}
		consents = append(consents, p.consent.entries...)
	}
	if err := tx.InsertConsents(ctx, consents); err != nil {
		return false, err
	}
	if err := s.appendAudits(ctx, tx, append(events, recEvs...)); err != nil {
		return false, err
	}
	return found, tx.InsertImportRows(ctx, recs)
}

// taken returns the first lookup field of p, in name order, whose key
// already has an owner, and that owner ("" when none has).
func taken(p *prepared, owners map[string]map[string]custos.SubjectID) (string, custos.SubjectID) {
	for _, name := range slices.Sorted(maps.Keys(p.lookups)) {
		if other, ok := owners[name][string(p.lookups[name])]; ok {
			return name, other
		}
	}
	return "", ""
}

// appendAudits chains es onto the log in order inside tx, inserts them
// in multi-row statements and signs a checkpoint at every CheckpointEvery
// seq among them, as appendAudit does one by one; like it, it defers the
// work to the end of the transaction when tx offers that
// (custos.AtEnder).
func (s *Service) appendAudits(ctx context.Context, tx custos.Tx, es []*custos.AuditEvent) error {
	if len(es) == 0 {
		return nil
	}
	if at, ok := tx.(custos.AtEnder); ok {
		at.AtEnd(func(tx custos.Tx) error { return s.chainAudits(ctx, tx, es) })
		return nil
	}
	return s.chainAudits(ctx, tx, es)
}

// chainAudits is appendAudits' append, run at once.
func (s *Service) chainAudits(ctx context.Context, tx custos.Tx, es []*custos.AuditEvent) error {
	s.noteCheckpoints(tx)
	seq, head, err := tx.AuditHead(ctx)
	if err != nil {
		return err
	}
	every := s.CheckpointEvery
	if every <= 0 {
		every = DefaultCheckpointEvery
	}
	var signed []*custos.AuditEvent
	for _, e := range es {
		e.Time = tx.Now()
		audit.Chain(seq, head, e)
		seq, head = e.Seq, e.Hash
		if s.signer != nil && e.Seq%every == 0 {
			signed = append(signed, e)
		}
	}
	if err := tx.InsertAuditEvents(ctx, es); err != nil {
		return err
	}
	for _, e := range signed {
		if err := s.insertCheckpoint(ctx, tx, e.Seq, e.Hash); err != nil {
			return err
		}
	}
	return nil
}
