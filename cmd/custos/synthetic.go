package main

import (
	"context"
	"fmt"
	"io"

	"custos"
	"custos/core"
)

// syntheticNotice returns the current notice, publishing one that presents
// every catalog purpose when the store has none, so that `custos seed` and
// `custos bench` can give their synthetic customers consent the way a
// real sign-up form does (C4). Its text says it is synthetic.
func syntheticNotice(ctx context.Context, svc *core.Service, stderr io.Writer) (*custos.Notice, error) {
	n, err := svc.Notice(ctx, 0)
	if err == nil {
		return n, nil
	} else if custos.ErrorCode(err) != custos.ENOTFOUND {
		return nil, err
	}
	n, err = svc.PublishNotice(ctx, syntheticNoticeContent(svc.Catalog()))
	if err != nil {
		return nil, fmt.Errorf("publish a synthetic notice: %w", err)
	}
	fmt.Fprintf(stderr, "published notice version %d for synthetic customers (the store had none)\n", n.Version)
	return n, nil
}

// syntheticNoticeContent presents every purpose of cat, for synthetic
// customers only.
func syntheticNoticeContent(cat *custos.Catalog) custos.NoticeContent {
	c := custos.NoticeContent{Controller: "custos synthetic data", Contact: "nobody@example.invalid",
		Text: map[string]custos.NoticeText{
			"zh-CN": {Title: "合成数据声明", Body: "本声明仅用于合成测试数据，不适用于真实客户。", Rights: "不适用。"},
			"en":    {Title: "Synthetic data notice", Body: "Published by custos seed/bench for synthetic customers only; not for real customers.", Rights: "Not applicable."},
		}}
	for _, p := range cat.Purposes {
		np := custos.NoticePurpose{Name: p.Name, Fields: p.Fields, Records: p.Records, Retention: "synthetic data: until deleted"}
		for _, f := range p.Fields {
			if def := cat.Field(f); def != nil && def.Sensitive {
				np.Necessity, np.Impact = "synthetic data", "none: synthetic data"
			}
		}
		c.Purposes = append(c.Purposes, np)
	}
	return c
}

// syntheticConsent is a sign-up form granting every consent-based purpose
// of n and each sensitive category it uses.
func syntheticConsent(n *custos.Notice, cat *custos.Catalog) *custos.ConsentCapture {
	yes := true
	c := &custos.ConsentCapture{NoticeVersion: n.Version, Channel: "app", Evidence: "synthetic"}
	for _, np := range n.Content.Purposes {
		if np.LegalBasis != "consent" {
			continue
		}
		c.Decisions = append(c.Decisions, custos.ConsentDecision{Purpose: np.Name, Granted: &yes})
		seen := map[string]bool{}
		for _, f := range np.Fields {
			if def := cat.Field(f); def != nil && def.Sensitive && !seen[def.Category] {
				seen[def.Category] = true
				c.Decisions = append(c.Decisions, custos.ConsentDecision{Purpose: np.Name, Category: def.Category, Granted: &yes})
			}
		}
	}
	return c
}
