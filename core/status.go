package core

import (
	"context"
	"strings"
	"time"

	"custos"
)

// SetBlocked blocks or unblocks a principal (DESIGN.md decision step 1).
// It takes effect at once on this node: remembered API keys are dropped,
// so the next request is decided on the stored state. Other nodes follow
// within AuthCacheTTL. A principal cannot block itself. Requires
// principal.manage; returns ENOTFOUND, EFORBIDDEN, EINVALID.
func (s *Service) SetBlocked(ctx context.Context, id custos.PrincipalID, blocked bool, reason string) (*custos.Principal, error) {
	action := custos.AuditPrincipalOpen
	if blocked {
		action = custos.AuditPrincipalBlock
	}
	ev := event(ctx, action, "", nil, nil)
	ev.Reason = "principal " + string(id)
	if err := s.requireAction(ctx, ev, custos.ActPrincipalManage); err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	if len(reason) > 200 {
		return nil, s.auditRefusal(ctx, ev, custos.Invalid("The reason is too long.", custos.Violation{Field: "reason", Rule: "max_length", Detail: "at most 200 bytes"}))
	}
	if reason != "" {
		ev.Reason += ": " + reason
	}
	if blocked && custos.ActorFromContext(ctx).ID == id {
		return nil, s.auditRefusal(ctx, ev, &custos.Error{Code: custos.EFORBIDDEN, Message: "You cannot block yourself.",
			Violations: []custos.Violation{{Field: "id", Rule: "self_block"}}})
	}
	var out *custos.Principal
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		p, err := tx.GetPrincipal(ctx, id)
		if err != nil {
			return err
		}
		p.Blocked = blocked
		out = p
		return tx.UpdatePrincipal(ctx, p)
	})
	s.ForgetCredentials()
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Principal not found.")
	}
	return out, err
}

// SetPrerequisites records a staff principal's compliance prerequisites
// (NDA, training valid until, background check); data access is refused
// while any is missing or expired. Requires principal.manage; returns
// ENOTFOUND, EFORBIDDEN, EINVALID.
func (s *Service) SetPrerequisites(ctx context.Context, id custos.PrincipalID, pre custos.Prerequisites) (*custos.Principal, error) {
	ev := event(ctx, custos.AuditPrincipalPrereq, "", nil, nil)
	ev.Reason = "principal " + string(id)
	if err := s.requireAction(ctx, ev, custos.ActPrincipalManage); err != nil {
		return nil, err
	}
	var out *custos.Principal
	err := s.run(ctx, ev, func(tx custos.Tx) error {
		p, err := tx.GetPrincipal(ctx, id)
		if err != nil {
			return err
		}
		p.Prerequisites = normPrerequisites(&pre)
		out = p
		return tx.UpdatePrincipal(ctx, p)
	})
	s.ForgetCredentials()
	if custos.ErrorCode(err) == custos.ENOTFOUND {
		return nil, custos.Errorf(custos.ENOTFOUND, "Principal not found.")
	}
	return out, err
}

func normPrerequisites(p *custos.Prerequisites) *custos.Prerequisites {
	if p == nil {
		return nil
	}
	out := *p
	for _, t := range []**time.Time{&out.NDASignedAt, &out.TrainingValidUntil, &out.BackgroundCheckAt} {
		if *t != nil {
			v := (*t).UTC().Truncate(time.Microsecond)
			*t = &v
		}
	}
	return &out
}
