package http

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the API description served at /v1/openapi.json. A test keeps
// its paths and methods equal to the route table.
//
//go:embed openapi.json
var OpenAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(OpenAPI); err != nil {
		s.Logger.Debug("writing openapi failed", "err", err)
	}
}
