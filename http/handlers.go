package http

import (
	"net/http"
	"strconv"
	"time"

	"custos"
	"custos/core"
)

// reply answers with v as JSON, or with err as a problem document.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	s.encode(w, r, status, v)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.encode(w, r, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.Ready != nil {
		if err := s.Ready(r.Context()); err != nil {
			s.Logger.Warn("not ready", "err", err)
			s.encode(w, r, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
	}
	s.encode(w, r, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) handleCatalog(w http.ResponseWriter, r *http.Request) {
	s.encode(w, r, http.StatusOK, s.Service.Catalog())
}

func (s *Server) handlePrincipalCreate(w http.ResponseWriter, r *http.Request) {
	var p custos.Principal
	if err := decode(r, &p); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	p.Blocked = false
	if err := s.Service.CreatePrincipal(r.Context(), &p); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	s.encode(w, r, http.StatusCreated, p)
}

func (s *Server) handlePrincipalList(w http.ResponseWriter, r *http.Request) {
	ps, err := s.Service.FindPrincipals(r.Context())
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	s.encode(w, r, http.StatusOK, map[string]any{"principals": ps})
}

func (s *Server) handleAPIKeyCreate(w http.ResponseWriter, r *http.Request) {
	k, err := s.Service.CreateAPIKey(r.Context(), custos.PrincipalID(r.PathValue("id")))
	s.reply(w, r, http.StatusCreated, k, err)
}

func (s *Server) handleSubjectCreate(w http.ResponseWriter, r *http.Request) {
	ps, err := purposes(r)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	var in custos.NewSubject
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	sub, err := s.Service.CreateSubject(r.Context(), ps, in)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	w.Header().Set("Location", "/v1/subjects/"+string(sub.ID))
	s.encode(w, r, http.StatusCreated, sub)
}

// LookupRequest is the body of POST /v1/subjects/lookup. The value travels
// in the body, never in a URL, so that it stays out of access logs.
type LookupRequest struct {
	Field string `json:"field"`
	Value string `json:"value"`
}

// purposeBody reads the declared purposes and decodes the body into v,
// answering the problem itself when either is bad.
func (s *Server) purposeBody(w http.ResponseWriter, r *http.Request, v any) ([]string, bool) {
	ps, err := purposes(r)
	if err == nil {
		if err = decode(r, v); err == nil {
			return ps, true
		}
	}
	Error(w, r, s.Logger, err)
	return nil, false
}

func (s *Server) handleSubjectLookup(w http.ResponseWriter, r *http.Request) {
	var in LookupRequest
	ps, ok := s.purposeBody(w, r, &in)
	if !ok {
		return
	}
	sub, err := s.Service.FindSubjectByLookup(r.Context(), ps, in.Field, in.Value)
	s.reply(w, r, http.StatusOK, sub, err)
}

// ReadRequest is the body of POST /v1/subjects/read.
type ReadRequest struct {
	IDs []custos.SubjectID `json:"ids"`
}

// ReadResponse is the answer to POST /v1/subjects/read: one result per id
// asked, in the order asked.
type ReadResponse struct {
	Results []ReadResult `json:"results"`
}

// ReadResult is one subject of a batch read: the subject as GET
// /v1/subjects/{id} returns it, or the problem that request would have
// answered for it alone.
type ReadResult struct {
	ID      custos.SubjectID `json:"id"`
	Subject *custos.Subject  `json:"subject,omitempty"`
	Error   *Problem         `json:"error,omitempty"`
}

func (s *Server) handleSubjectRead(w http.ResponseWriter, r *http.Request) {
	var in ReadRequest
	ps, ok := s.purposeBody(w, r, &in)
	if !ok {
		return
	}
	rs, err := s.Service.FindSubjectsByID(r.Context(), ps, in.IDs)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	out := ReadResponse{Results: make([]ReadResult, len(rs))}
	for i, res := range rs {
		out.Results[i] = ReadResult{ID: res.ID, Subject: res.Subject}
		if res.Err != nil {
			p := problem(r, res.Err)
			p.RequestID = "" // the answer's, not the subject's
			out.Results[i].Error = &p
		}
	}
	s.encode(w, r, http.StatusOK, &out)
}

func subjectID(r *http.Request) (custos.SubjectID, error) {
	id := r.PathValue("id")
	if !custos.ValidID("sub", id) {
		return "", custos.Errorf(custos.ENOTFOUND, "Subject not found.")
	}
	return custos.SubjectID(id), nil
}

// subjectRequest reads the declared purposes and the subject id of a
// request about one subject, answering the problem itself when either is bad.
func (s *Server) subjectRequest(w http.ResponseWriter, r *http.Request) ([]string, custos.SubjectID, bool) {
	ps, err := purposes(r)
	if err == nil {
		var id custos.SubjectID
		if id, err = subjectID(r); err == nil {
			return ps, id, true
		}
	}
	Error(w, r, s.Logger, err)
	return nil, "", false
}

func (s *Server) handleSubjectGet(w http.ResponseWriter, r *http.Request) {
	ps, id, ok := s.subjectRequest(w, r)
	if !ok {
		return
	}
	sub, err := s.Service.FindSubjectByID(r.Context(), ps, id)
	s.reply(w, r, http.StatusOK, sub, err)
}

func (s *Server) handleSubjectUpdate(w http.ResponseWriter, r *http.Request) {
	ps, id, ok := s.subjectRequest(w, r)
	if !ok {
		return
	}
	var upd custos.SubjectUpdate
	if err := decode(r, &upd); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	sub, err := s.Service.UpdateSubject(r.Context(), ps, id, upd)
	s.reply(w, r, http.StatusOK, sub, err)
}

func (s *Server) handleSubjectErase(w http.ResponseWriter, r *http.Request) {
	ps, id, ok := s.subjectRequest(w, r)
	if !ok {
		return
	}
	rc, err := s.Service.EraseSubject(r.Context(), ps, id, r.URL.Query().Get("reason"))
	s.reply(w, r, http.StatusOK, rc, err)
}

func (s *Server) handleRecordCreate(w http.ResponseWriter, r *http.Request) {
	ps, id, ok := s.subjectRequest(w, r)
	if !ok {
		return
	}
	var in custos.NewRecord
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	rec, err := s.Service.CreateRecord(r.Context(), ps, id, in)
	s.reply(w, r, http.StatusCreated, rec, err)
}

func (s *Server) handleRecordList(w http.ResponseWriter, r *http.Request) {
	ps, id, ok := s.subjectRequest(w, r)
	if !ok {
		return
	}
	rs, err := s.Service.FindRecords(r.Context(), ps, id, r.URL.Query().Get("type"))
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	if rs == nil {
		rs = []*custos.Record{}
	}
	s.encode(w, r, http.StatusOK, map[string]any{"records": rs})
}

// ImportRequest is the body of POST /v1/imports/{job}/rows.
type ImportRequest struct {
	Rows []core.ImportInput `json:"rows"`
}

// MaxImportBatch bounds the rows in one batch request.
const MaxImportBatch = 1000

func (s *Server) handleImportRows(w http.ResponseWriter, r *http.Request) {
	ps, err := purposes(r)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	var in ImportRequest
	if err := decode(r, &in); err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	if len(in.Rows) == 0 || len(in.Rows) > MaxImportBatch {
		Error(w, r, s.Logger, custos.Invalid("A batch holds 1 to 1000 rows.", custos.Violation{Field: "rows", Rule: "batch_size"}))
		return
	}
	res, err := s.Service.ImportRows(r.Context(), ps, r.PathValue("job"), in.Rows)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	s.encode(w, r, http.StatusOK, map[string]any{"results": res})
}

func (s *Server) handleAuditList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f custos.AuditFilter
	var vs []custos.Violation
	if v := q.Get("subject_id"); v != "" {
		id := custos.SubjectID(v)
		f.SubjectID = &id
	}
	if v := q.Get("actor_id"); v != "" {
		id := custos.PrincipalID(v)
		f.ActorID = &id
	}
	if v := q.Get("action"); v != "" {
		f.Action = &v
	}
	for _, p := range []struct {
		name string
		dst  **time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := q.Get(p.name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				vs = append(vs, custos.Violation{Field: p.name, Rule: "rfc3339"})
				continue
			}
			*p.dst = &t
		}
	}
	for _, p := range []struct {
		name string
		set  func(int64)
	}{{"after", func(n int64) { f.AfterSeq = n }}, {"limit", func(n int64) { f.Limit = int(n) }}} {
		if v := q.Get(p.name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				vs = append(vs, custos.Violation{Field: p.name, Rule: "non_negative_integer"})
				continue
			}
			p.set(n)
		}
	}
	if len(vs) > 0 {
		Error(w, r, s.Logger, custos.Invalid("Bad audit filter.", vs...))
		return
	}
	evs, err := s.Service.FindAuditEvents(r.Context(), f)
	if err != nil {
		Error(w, r, s.Logger, err)
		return
	}
	if evs == nil {
		evs = []*custos.AuditEvent{}
	}
	s.encode(w, r, http.StatusOK, map[string]any{"events": evs})
}
