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

// ImportInput is one row of a batch.
type ImportInput struct {
	Line    int               `json:"line"`
	Subject custos.NewSubject `json:"subject"`
}

// ImportRows imports a batch in one transaction: each valid row is stored
// (one audit event each), each invalid or duplicate row is answered with its
// reasons, and nothing is silently dropped (C5).
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
	results := make([]*custos.ImportResult, len(rows))
	preps := make([]*prepared, len(rows))
	for i, r := range rows {
		res := &custos.ImportResult{Line: r.Line}
		results[i] = res
		if r.Line <= 0 {
			res.Status, res.Violations = custos.ImportRejected, []custos.Violation{{Field: "line", Rule: "positive"}}
			continue
		}
		p, refused, err := s.prepare(ctx, custos.ActImport, purposes, r.Subject, now)
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
	err := s.store.Update(ctx, func(tx custos.Tx) error {
		for i, r := range rows {
			res := results[i]
			if r.Line <= 0 {
				continue
			}
			if prev, err := tx.GetImportRow(ctx, job, r.Line); err == nil {
				res.Status, res.SubjectID, res.Violations, res.Message = custos.ImportAlready, prev.SubjectID, nil, "handled by an earlier run: "+prev.Status
				continue
			} else if custos.ErrorCode(err) != custos.ENOTFOUND {
				return err
			}
			e := event(ctx, custos.AuditSubjectImport, "", purposes, nil)
			if p := preps[i]; p != nil {
				e.SubjectID, e.Fields = p.stored.ID, p.fields
				err := insert(ctx, tx, p)
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
			if err := tx.InsertImportRow(ctx, &custos.ImportRow{Job: job, Line: r.Line, Status: res.Status, SubjectID: res.SubjectID}); err != nil {
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
