package http

import (
	"net/http"
	"strconv"

	"custos"
)

// Notices and consent (C3, C4, R5). Reading a notice and verifying a
// receipt need no key: the notice is a public document and the receipt is
// the customer's to check.

func (s *Server) handleNoticePublish(w http.ResponseWriter, r *http.Request) {
	var c custos.NoticeContent
	if err := decode(r, &c); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	n, err := s.Service.PublishNotice(r.Context(), c)
	s.reply(w, r, http.StatusCreated, n, err)
}

func (s *Server) handleNoticeList(w http.ResponseWriter, r *http.Request) {
	ns, err := s.Service.Notices(r.Context())
	s.reply(w, r, http.StatusOK, map[string]any{"notices": ns}, err)
}

func (s *Server) handleNoticeCurrent(w http.ResponseWriter, r *http.Request) {
	n, err := s.Service.Notice(r.Context(), 0)
	s.reply(w, r, http.StatusOK, n, err)
}

func (s *Server) handleNoticeGet(w http.ResponseWriter, r *http.Request) {
	v, err := strconv.Atoi(r.PathValue("version"))
	if err != nil || v <= 0 {
		Error(w, r, s.Logger, custos.Invalid("Bad notice version.", custos.Violation{Field: "version", Rule: "positive_integer"}))
		return
	}
	n, err := s.Service.Notice(r.Context(), v)
	s.reply(w, r, http.StatusOK, n, err)
}

func (s *Server) handleConsentCapture(w http.ResponseWriter, r *http.Request) {
	var c custos.ConsentCapture
	if err := decode(r, &c); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	rc, err := s.Service.CaptureConsent(r.Context(), custos.SubjectID(r.PathValue("id")), c)
	s.reply(w, r, http.StatusCreated, rc, err)
}

func (s *Server) handleConsentState(w http.ResponseWriter, r *http.Request) {
	st, err := s.Service.ConsentState(r.Context(), custos.SubjectID(r.PathValue("id")))
	s.reply(w, r, http.StatusOK, st, err)
}

func (s *Server) handleConsentWithdraw(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rc, err := s.Service.WithdrawConsent(r.Context(), custos.SubjectID(r.PathValue("id")), r.PathValue("purpose"), q.Get("scope"), q.Get("channel"))
	s.reply(w, r, http.StatusOK, rc, err)
}

func (s *Server) handleReceiptVerify(w http.ResponseWriter, r *http.Request) {
	var rc custos.ConsentReceipt
	if err := decode(r, &rc); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	s.encode(w, r, http.StatusOK, map[string]bool{"valid": s.Service.VerifyReceipt(&rc)})
}
