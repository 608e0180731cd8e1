package core

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"custos"
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
		p, refused, err := s.prepare(ctx, custos.ActImport, purposes, r.Subject, ps, now)
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
	err = s.store.Update(ctx, func(tx custos.Tx) error {
		for i, r := range rows {
			res := results[i]
			if r.Line <= 0 {
				continue
			}
			if prev, err := tx.GetImportRow(ctx, job, r.Line); err == nil {
				res.Status, res.Previous, res.SubjectID, res.Violations = custos.ImportAlready, prev.Status, prev.SubjectID, prev.Violations
				res.Message = "handled by an earlier run: " + prev.Status
				if prev.Message != "" {
					res.Message += ": " + prev.Message
				}
				continue
			} else if custos.ErrorCode(err) != custos.ENOTFOUND {
				return err
			}
			if r.ParseError != "" {
				if err := tx.InsertImportRow(ctx, &custos.ImportRow{Job: job, Line: r.Line, Status: res.Status,
					Violations: res.Violations, Message: res.Message}); err != nil {
					return err
				}
				continue
			}
			e := event(ctx, custos.AuditSubjectImport, "", purposes, nil)
			if p := preps[i]; p != nil {
				e.SubjectID, e.Fields = p.stored.ID, p.fields
				// The batch goes on after a duplicate, so nothing of a
				// duplicate row may be written: probe first.
				err := s.probeDuplicates(ctx, tx, p)
				if err == nil {
					err = s.insert(ctx, tx, p, e.ActorID)
				}
				switch ce := custos.AsError(err); {
				case err == nil:
					res.Status, res.SubjectID = custos.ImportStored, p.stored.ID
				case ce != nil && ce.Code == custos.ECONFLICT:
					res.Status, res.SubjectID, res.Violations, res.Message = custos.ImportDuplicate, custos.SubjectID(ce.ConflictID), ce.Violations, ce.Message
					e.SubjectID, e.Decision, e.Reason = res.SubjectID, custos.DecisionDeny, custos.ECONFLICT
				default:
					return err
				}
			} else {
				e.Decision, e.Reason = custos.DecisionDeny, custos.EINVALID
				e.Fields = slices.Sorted(maps.Keys(r.Subject.Fields))
			}
			if err := s.appendAudit(ctx, tx, e); err != nil {
				return err
			}
			if err := tx.InsertImportRow(ctx, &custos.ImportRow{Job: job, Line: r.Line, Status: res.Status, SubjectID: res.SubjectID,
				Violations: res.Violations, Message: res.Message}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
