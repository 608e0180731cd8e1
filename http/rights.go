package http

import (
	"net/http"
	"strconv"
	"time"

	"custos"
)

// Customer rights requests (R1–R7): staff file requests for customers,
// verify identity (by their own check or a one-time code to the customer),
// work the queue and decide what needs a person. Customers use the portal.

func (s *Server) handleRightsFile(w http.ResponseWriter, r *http.Request) {
	var in custos.NewRightsRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	q, err := s.Service.FileRightsRequest(r.Context(), in)
	s.reply(w, r, http.StatusCreated, q, err)
}

func (s *Server) handleRightsList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := custos.RightsFilter{Status: q.Get("status"), SubjectID: custos.SubjectID(q.Get("subject_id"))}
	if v := q.Get("due_within_days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 365 {
			Error(w, r, s.Logger, custos.Invalid("Bad due_within_days.", custos.Violation{Field: "due_within_days", Rule: "range", Detail: "0–365 working days"}))
			return
		}
		f.DueBefore = workingDaysFromNow(s, n)
	}
	rs, err := s.Service.RightsRequests(r.Context(), f)
	s.reply(w, r, http.StatusOK, map[string]any{"requests": rs}, err)
}

// workingDaysFromNow is the end of the n-th working day from now.
func workingDaysFromNow(s *Server, n int) time.Time {
	if n == 0 {
		return time.Now()
	}
	return s.Service.WorkingDeadline(time.Now(), n)
}

func (s *Server) handleRightsGet(w http.ResponseWriter, r *http.Request) {
	q, err := s.Service.RightsRequest(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, q, err)
}

// CodeRequest asks for a one-time code; CodeVerify answers one.
type CodeRequest struct {
	Channel string `json:"channel"` // sms (default) or email
}

// CodeVerify is a one-time code answer.
type CodeVerify struct {
	ChallengeID string `json:"challenge_id"`
	Code        string `json:"code"`
}

func (s *Server) handleRightsCode(w http.ResponseWriter, r *http.Request) {
	var in CodeRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	cid, err := s.Service.SendRightsCode(r.Context(), r.PathValue("id"), in.Channel, clientIP(r))
	s.reply(w, r, http.StatusAccepted, map[string]string{"challenge_id": cid}, err)
}

func (s *Server) handleRightsVerify(w http.ResponseWriter, r *http.Request) {
	var in CodeVerify
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	q, err := s.Service.VerifyRightsRequest(r.Context(), r.PathValue("id"), in.ChallengeID, in.Code)
	s.reply(w, r, http.StatusOK, q, err)
}

func (s *Server) handleRightsDecide(w http.ResponseWriter, r *http.Request) {
	var d custos.RightsDecision
	if err := decode(r, &d); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	q, err := s.Service.DecideRightsRequest(r.Context(), r.PathValue("id"), d)
	s.reply(w, r, http.StatusOK, q, err)
}

func (s *Server) handleRightsReport(w http.ResponseWriter, r *http.Request) {
	rep, err := s.Service.AccessReport(r.Context(), r.PathValue("id"))
	s.reply(w, r, http.StatusOK, rep, err)
}

func (s *Server) handleRightsExport(w http.ResponseWriter, r *http.Request) {
	b, err := s.Service.Export(r.Context(), r.PathValue("id"))
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	writeExport(w, r.PathValue("id"), b)
}

// writeExport sends an export zip; it is personal data, never cached.
func writeExport(w http.ResponseWriter, id string, b []byte) {
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="custos-export-`+id+`.zip"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// LiftRequest says why a customer's restriction ends.
type LiftRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) handleLiftRestriction(w http.ResponseWriter, r *http.Request) {
	var in LiftRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	err := s.Service.LiftRestriction(r.Context(), custos.SubjectID(r.PathValue("id")), in.Reason)
	s.reply(w, r, http.StatusOK, map[string]string{"subject_id": r.PathValue("id"), "status": "unrestricted"}, err)
}
