package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"custos"
	"custos/core"
	custoshttp "custos/http"
	"custos/keys"
	"custos/sqlite"
)

// quotedValue finds the quoted strings of 8 characters or more in a body;
// group 2 is set when the string is a member name, which a problem may
// name (an unknown field or member), unlike a value.
var quotedValue = regexp.MustCompile(`"([^"\\]{8,})"(\s*:)?`)

// fuzzMembers are the member names of the request bodies, which a problem
// may name.
var fuzzMembers = []string{
	"fields", "provenance", "collector", "channel", "source", "consent",
	"subject", "parse_error", "field", "value", "rows", "line", "purposes",
	"notice_version", "decisions", "purpose", "granted", "evidence", "guardian", "name", "relation",
	"kind", "initiated_by", "all", "category", "third_party", "subject_id", "type", "values", "relative",
	"proof", "note", "verified", "controller", "contact", "text", "title", "body", "rights", "retention",
	"necessity", "impact", "third_parties", "records", "zh-CN", "en",
}

func FuzzRequestBodies(f *testing.F) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(f.TempDir(), "custos.db"), sqlite.Options{Migrate: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	ring, err := keys.NewKeyring(nil)
	if err != nil {
		f.Fatal(err)
	}
	signer, err := keys.NewSigner(nil)
	if err != nil {
		f.Fatal(err)
	}
	cat := custos.DefaultCatalog()
	svc := core.New(db, cat, ring, signer, nil)
	admin := custos.NewContextWithActor(ctx, &custos.Principal{ID: "prn_admin", Roles: []string{"admin"}})
	p := &custos.Principal{Name: "fuzz admin", Kind: custos.KindService, Roles: []string{"admin"}}
	if err := svc.CreatePrincipal(admin, p); err != nil {
		f.Fatal(err)
	}
	key, err := svc.CreateAPIKey(admin, p.ID)
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(custoshttp.NewServer(svc, nil))
	f.Cleanup(srv.Close)
	// A notice and a customer for the consent and rights routes.
	if _, err := svc.PublishNotice(admin, custos.NoticeContent{Controller: "Fuzz Shop", Contact: "privacy@example.com",
		Purposes: []custos.NoticePurpose{{Name: "marketing", Fields: []string{"mobile"}, Retention: "until withdrawn"}},
		Text:     map[string]custos.NoticeText{"zh-CN": {Title: "隐私", Body: "正文", Rights: "权利"}, "en": {Title: "Privacy", Body: "Body", Rights: "Rights"}}}); err != nil {
		f.Fatal(err)
	}
	sub, err := svc.CreateSubject(admin, []string{"account"}, custos.NewSubject{Fields: map[string]string{"name": "赵小飞", "mobile": "13900009999"},
		Provenance: custos.Provenance{Collector: "fuzz", Channel: "test", Source: "customer"}})
	if err != nil {
		f.Fatal(err)
	}

	allowed := map[string]bool{}
	for _, m := range fuzzMembers {
		allowed[m] = true
	}
	for _, fd := range cat.Fields {
		allowed[fd.Name] = true
		for _, v := range fd.Enum {
			allowed[v] = true
		}
	}
	for _, pu := range cat.Purposes {
		allowed[pu.Name] = true
	}
	for _, r := range cat.Roles {
		allowed[r.Name] = true
	}
	for _, rt := range cat.RecordTypes {
		allowed[rt.Name] = true
	}

	f.Add([]byte(`{"fields":{"name":"王小明","mobile":"13900000001"},"provenance":{"collector":"fuzz-collector","channel":"test","source":"customer"}}`))
	f.Add([]byte(`{"fields":{"name":"王小明","mobile":"not-a-mobile-secret"},"provenance":{"collector":"fuzz","channel":"test","source":"customer"}}`))
	f.Add([]byte(`{"fields":{"unknownfield1":"secretvalue1"}}`))
	f.Add([]byte(`{"field":"mobile","value":"13900000001"}`))
	f.Add([]byte(`{"field":"notalookupfield","value":"secretvalue2"}`))
	f.Add([]byte(`{"rows":[{"line":1,"subject":{"fields":{"name":"李四","mobile":"13900000002"},"provenance":{"collector":"fuzz","channel":"test","source":"customer"}}},{"line":2,"parse_error":"csv_syntax"},{"line":3,"parse_error":"Secret Value 3"}]}`))
	f.Add([]byte(`{"rows":[]}`))
	f.Add([]byte(`{"nosuchmember":"secretvalue4"}`))
	f.Add([]byte(`{"fields":{"name":1}}`))
	f.Add([]byte(`{`))
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"notice_version":1,"channel":"app","evidence":"form 9 secret-evidence-1","decisions":[{"purpose":"marketing","granted":true}]}`))
	f.Add([]byte(`{"notice_version":1,"channel":"app","all":true,"guardian":{"name":"钱监护人","relation":"mother","evidence":"hukou 123456"}}`))
	f.Add([]byte(`{"subject_id":"` + string(sub.ID) + `","type":"correct","channel":"phone","verified":"staff","evidence":"id card 1234","values":{"mobile":"1390000x"}}`))
	f.Add([]byte(`{"subject_id":"` + string(sub.ID) + `","type":"delete","relative":{"name":"孙亲属","relation":"son","proof":"cert 7788"},"note":"please 12"}`))
	f.Add([]byte(`{"controller":"Shop 1","contact":"a@b.cn","purposes":[{"name":"marketing","fields":["mobile","id_number"]}],"text":{"en":{"title":"t"}}}`))

	var words []string
	for w := range allowed {
		words = append(words, w)
	}
	// Problem documents are built from these words (field, member, rule
	// names, "provenance.collector" …); a value that is part of one of
	// them cannot tell an echo from the server's own text.
	vocabulary := strings.Join(words, " ") + " provenance.collector provenance.channel provenance.source provenance.location provenance.plan"

	routes := []string{"/v1/subjects", "/v1/subjects/lookup", "/v1/imports/fuzzjob/rows",
		"/v1/subjects/" + string(sub.ID) + "/consents", "/v1/rights-requests", "/v1/notices"}
	f.Fuzz(func(t *testing.T, data []byte) {
		var secrets []string
		for _, m := range quotedValue.FindAllSubmatch(data, -1) {
			if s := string(m[1]); len(m[2]) == 0 && !allowed[s] && personalLooking(s) && !strings.Contains(vocabulary, s) {
				secrets = append(secrets, s)
			}
		}
		for _, route := range routes {
			req, err := http.NewRequest(http.MethodPost, srv.URL+route, bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+key.Token)
			req.Header.Set("Custos-Purpose", "account")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode >= 500 {
				t.Fatalf("POST %s: status %d: %s", route, resp.StatusCode, body)
			}
			if !json.Valid(body) {
				t.Fatalf("POST %s: status %d: body is not JSON: %q", route, resp.StatusCode, body)
			}
			if resp.StatusCode < 400 {
				continue
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("POST %s: status %d with content type %q", route, resp.StatusCode, ct)
			}
			for _, s := range secrets {
				if bytes.Contains(body, []byte(s)) {
					t.Fatalf("POST %s: status %d: problem echoes input value %q: %s", route, resp.StatusCode, s, body)
				}
			}
		}
	})
}

// personalLooking reports whether a submitted value looks like personal
// data worth checking for an echo: it has a digit, an '@' or a non-ASCII
// letter (a mobile, an ID, an e-mail, a Chinese name). Plain English words
// are left out: the server's own messages are made of them.
func personalLooking(s string) bool {
	for _, r := range s {
		if r >= '0' && r <= '9' || r == '@' || r > 127 {
			return true
		}
	}
	return false
}
