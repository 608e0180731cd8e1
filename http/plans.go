package http

import (
	"net/http"

	"custos"
)

// BlockRequest is the body of POST /v1/principals/{id}/block and /unblock.
type BlockRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) handlePlanCreate(w http.ResponseWriter, r *http.Request) {
	var p custos.Plan
	if err := decode(r, &p); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	err := s.Service.FilePlan(r.Context(), &p)
	if err == nil {
		w.Header().Set("Location", "/v1/plans/"+string(p.ID))
	}
	s.reply(w, r, http.StatusCreated, &p, err)
}

func (s *Server) handlePlanList(w http.ResponseWriter, r *http.Request) {
	var f custos.PlanFilter
	q := r.URL.Query()
	if v := q.Get("status"); v != "" {
		f.Status = &v
	}
	if v := q.Get("purpose"); v != "" {
		f.Purpose = &v
	}
	ps, err := s.Service.FindPlans(r.Context(), f)
	s.reply(w, r, http.StatusOK, map[string]any{"plans": ps}, err)
}

func (s *Server) handlePlanGet(w http.ResponseWriter, r *http.Request) {
	p, err := s.Service.FindPlanByID(r.Context(), custos.PlanID(r.PathValue("id")))
	s.reply(w, r, http.StatusOK, p, err)
}

func (s *Server) handlePlanReview(w http.ResponseWriter, r *http.Request) {
	var rv custos.Review
	if err := decode(r, &rv); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	p, err := s.Service.ReviewPlan(r.Context(), custos.PlanID(r.PathValue("id")), rv)
	s.reply(w, r, http.StatusOK, p, err)
}

func (s *Server) handleGrantCreate(w http.ResponseWriter, r *http.Request) {
	var g custos.Grant
	if err := decode(r, &g); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	err := s.Service.ApplyGrant(r.Context(), &g)
	s.reply(w, r, http.StatusCreated, &g, err)
}

func (s *Server) handleGrantList(w http.ResponseWriter, r *http.Request) {
	var f custos.GrantFilter
	q := r.URL.Query()
	if v := q.Get("status"); v != "" {
		f.Status = &v
	}
	if v := q.Get("holder"); v != "" {
		h := custos.PrincipalID(v)
		f.Holder = &h
	}
	gs, err := s.Service.FindGrants(r.Context(), f)
	s.reply(w, r, http.StatusOK, map[string]any{"grants": gs}, err)
}

func (s *Server) handleGrantReview(w http.ResponseWriter, r *http.Request) {
	var rv custos.Review
	if err := decode(r, &rv); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	g, err := s.Service.ReviewGrant(r.Context(), custos.GrantID(r.PathValue("id")), rv)
	s.reply(w, r, http.StatusOK, g, err)
}

func (s *Server) handlePrincipalBlock(w http.ResponseWriter, r *http.Request) {
	s.setBlocked(w, r, true)
}

func (s *Server) handlePrincipalUnblock(w http.ResponseWriter, r *http.Request) {
	s.setBlocked(w, r, false)
}

func (s *Server) setBlocked(w http.ResponseWriter, r *http.Request, blocked bool) {
	var in BlockRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	p, err := s.Service.SetBlocked(r.Context(), custos.PrincipalID(r.PathValue("id")), blocked, in.Reason)
	s.reply(w, r, http.StatusOK, p, err)
}

func (s *Server) handlePrincipalPrerequisites(w http.ResponseWriter, r *http.Request) {
	var in custos.Prerequisites
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	p, err := s.Service.SetPrerequisites(r.Context(), custos.PrincipalID(r.PathValue("id")), in)
	s.reply(w, r, http.StatusOK, p, err)
}
