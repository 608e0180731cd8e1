package http

import (
	"context"
	"net/http"
	"net/url"

	"custos"
	"custos/core"
)

// RetentionRules returns the retention rules in force and the legal floors.
func (c *Client) RetentionRules(ctx context.Context) (*RetentionRulesResponse, error) {
	var out RetentionRulesResponse
	if err := c.do(ctx, http.MethodGet, "/v1/retention/rules", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunRetention runs the retention sweeper (or a dry run) on the server.
func (c *Client) RunRetention(ctx context.Context, dryRun bool) (*custos.RetentionReport, error) {
	var out custos.RetentionReport
	if err := c.do(ctx, http.MethodPost, "/v1/retention/runs", nil, RetentionRunRequest{DryRun: dryRun}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PlaceHold places a legal hold.
func (c *Client) PlaceHold(ctx context.Context, in HoldRequest) (*custos.LegalHold, error) {
	var out custos.LegalHold
	if err := c.do(ctx, http.MethodPost, "/v1/retention/holds", nil, in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindHolds lists legal holds, released ones included.
func (c *Client) FindHolds(ctx context.Context) ([]*custos.LegalHold, error) {
	var out struct{ Holds []*custos.LegalHold }
	err := c.do(ctx, http.MethodGet, "/v1/retention/holds", nil, nil, &out)
	return out.Holds, err
}

// ReleaseHold releases a legal hold.
func (c *Client) ReleaseHold(ctx context.Context, id string) (*custos.LegalHold, error) {
	var out custos.LegalHold
	if err := c.do(ctx, http.MethodPost, "/v1/retention/holds/"+url.PathEscape(id)+"/release", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FindCertificates lists destruction certificates.
func (c *Client) FindCertificates(ctx context.Context) ([]*custos.RetentionCertificate, error) {
	var out struct {
		Certificates []*custos.RetentionCertificate
	}
	err := c.do(ctx, http.MethodGet, "/v1/retention/certificates", nil, nil, &out)
	return out.Certificates, err
}

// FindCertificate returns one destruction certificate.
func (c *Client) FindCertificate(ctx context.Context, id string) (*custos.RetentionCertificate, error) {
	var out custos.RetentionCertificate
	if err := c.do(ctx, http.MethodGet, "/v1/retention/certificates/"+url.PathEscape(id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// VerifyCertificate asks the server to verify a certificate's signature.
func (c *Client) VerifyCertificate(ctx context.Context, id string) (*core.CertificateCheck, error) {
	var out core.CertificateCheck
	if err := c.do(ctx, http.MethodGet, "/v1/retention/certificates/"+url.PathEscape(id)+"/verify", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
