package http

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"path"
	"slices"
)

// openapiFS holds the API description: openapi.json is the base document
// (info, security, shared schemas, the vault core's paths) and each file in
// openapi/ adds the paths and schemas of one capability, so that features
// developed side by side never edit the same file.
//
//go:embed openapi.json openapi/*.json
var openapiFS embed.FS

// OpenAPI is the API description served at /v1/openapi.json: the base
// document with every fragment merged in. A test keeps its paths and methods
// equal to the route table.
var OpenAPI = mustMergeOpenAPI(openapiFS)

type openapiDoc struct {
	OpenAPI    string                     `json:"openapi"`
	Info       json.RawMessage            `json:"info"`
	Servers    json.RawMessage            `json:"servers,omitempty"`
	Security   json.RawMessage            `json:"security,omitempty"`
	Components openapiComponents          `json:"components"`
	Paths      map[string]json.RawMessage `json:"paths"`
}

type openapiComponents struct {
	SecuritySchemes json.RawMessage            `json:"securitySchemes,omitempty"`
	Schemas         map[string]json.RawMessage `json:"schemas"`
}

// mustMergeOpenAPI merges the fragments into the base document; a path or
// schema defined twice is a build mistake and panics at start (and in the
// package's tests).
func mustMergeOpenAPI(fsys fs.FS) []byte {
	b, err := fs.ReadFile(fsys, "openapi.json")
	if err != nil {
		panic(err)
	}
	var doc openapiDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		panic(fmt.Errorf("openapi.json: %w", err))
	}
	names, err := fs.Glob(fsys, "openapi/*.json")
	if err != nil {
		panic(err)
	}
	slices.Sort(names)
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			panic(err)
		}
		var frag struct {
			Paths      map[string]json.RawMessage `json:"paths"`
			Components struct {
				Schemas map[string]json.RawMessage `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(b, &frag); err != nil {
			panic(fmt.Errorf("%s: %w", name, err))
		}
		for _, p := range slices.Sorted(maps.Keys(frag.Paths)) {
			if _, dup := doc.Paths[p]; dup {
				panic(fmt.Errorf("%s: path %s is already described", path.Base(name), p))
			}
			doc.Paths[p] = frag.Paths[p]
		}
		for _, s := range slices.Sorted(maps.Keys(frag.Components.Schemas)) {
			if _, dup := doc.Components.Schemas[s]; dup {
				panic(fmt.Errorf("%s: schema %s is already described", path.Base(name), s))
			}
			doc.Components.Schemas[s] = frag.Components.Schemas[s]
		}
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err)
	}
	return out
}

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(OpenAPI); err != nil {
		s.Logger.Debug("writing openapi failed", "err", err)
	}
}
