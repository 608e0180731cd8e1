package http

import (
	"net/http"
	"time"

	"custos"
	"custos/core"
)

// RetentionRulesResponse is the body of GET /v1/retention/rules.
type RetentionRulesResponse struct {
	Policy *custos.RetentionPolicy `json:"policy"`
	Floors []custos.RetentionFloor `json:"floors"`
}

// RetentionRunRequest is the body of POST /v1/retention/runs.
type RetentionRunRequest struct {
	DryRun bool `json:"dry_run"`
}

// HoldRequest is the body of POST /v1/retention/holds. Reason and owner
// are staff text: never a customer's personal data.
type HoldRequest struct {
	Scope     string           `json:"scope"`
	SubjectID custos.SubjectID `json:"subject_id,omitempty"`
	Category  string           `json:"category,omitempty"`
	Reason    string           `json:"reason"`
	Owner     string           `json:"owner"`
	ExpiresAt time.Time        `json:"expires_at,omitzero"`
}

func (s *Server) handleRetentionRules(w http.ResponseWriter, r *http.Request) {
	p, err := s.Service.RetentionRules(r.Context())
	s.reply(w, r, http.StatusOK, RetentionRulesResponse{Policy: p, Floors: custos.RetentionFloors}, err)
}

func (s *Server) handleRetentionRun(w http.ResponseWriter, r *http.Request) {
	var in RetentionRunRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	rep, err := s.Service.RunRetention(r.Context(), core.RetentionOptions{DryRun: in.DryRun})
	s.reply(w, r, http.StatusOK, rep, err)
}

func (s *Server) handleHoldList(w http.ResponseWriter, r *http.Request) {
	hs, err := s.Service.FindHolds(r.Context())
	if hs == nil {
		hs = []*custos.LegalHold{}
	}
	s.reply(w, r, http.StatusOK, map[string]any{"holds": hs}, err)
}

func (s *Server) handleHoldCreate(w http.ResponseWriter, r *http.Request) {
	var in HoldRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	h, err := s.Service.PlaceHold(r.Context(), custos.LegalHold{Scope: in.Scope, SubjectID: in.SubjectID, Category: in.Category,
		Reason: in.Reason, Owner: in.Owner, ExpiresAt: in.ExpiresAt})
	s.reply(w, r, http.StatusCreated, h, err)
}

func (s *Server) handleHoldRelease(w http.ResponseWriter, r *http.Request) {
	h, err := s.Service.ReleaseHold(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, h, err)
}

func (s *Server) handleCertificateList(w http.ResponseWriter, r *http.Request) {
	cs, err := s.Service.FindCertificates(r.Context())
	if cs == nil {
		cs = []*custos.RetentionCertificate{}
	}
	s.reply(w, r, http.StatusOK, map[string]any{"certificates": cs}, err)
}

func (s *Server) handleCertificateGet(w http.ResponseWriter, r *http.Request) {
	c, err := s.Service.FindCertificate(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, c, err)
}

func (s *Server) handleCertificateVerify(w http.ResponseWriter, r *http.Request) {
	c, err := s.Service.VerifyCertificate(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, c, err)
}
