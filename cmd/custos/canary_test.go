package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/backup"
	custoshttp "custos/http"
	"custos/keys"
)

// canary is a distinctive personal value seeded into custos. It must never
// show up outside a permitted read: not in logs, error bodies, audit
// events, the reject file or the bytes of any file in the data directory.
type canary struct {
	label string
	value string
	kind  string // name, mobile, id, email, card, text
}

// forms returns the ways the value could plausibly be written down: as
// given, normalised, in other cases, split up as people write it, and
// escaped as JSON or Go quoting would escape it.
func (c canary) forms() []string {
	v := c.value
	out := []string{v}
	switch c.kind {
	case "mobile":
		d := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, v)
		d = strings.TrimPrefix(d, "86")
		if len(d) == 11 {
			out = append(out, d, "+86"+d, "86"+d, d[:3]+" "+d[3:7]+" "+d[7:], d[:3]+"-"+d[3:7]+"-"+d[7:])
		} else {
			out = append(out, d)
		}
	case "id":
		out = append(out, strings.ToUpper(v), strings.ToLower(v))
	case "email":
		out = append(out, strings.ToUpper(v), strings.ToLower(v))
	case "card":
		var groups []string
		for i := 0; i < len(v); i += 4 {
			groups = append(groups, v[i:min(i+4, len(v))])
		}
		out = append(out, strings.Join(groups, " "), strings.Join(groups, "-"))
	default:
		out = append(out, strings.ToLower(v), strings.ToUpper(v))
	}
	// JSON and Go escape non-ASCII text as \uXXXX; slog may quote it.
	if q := strconv.QuoteToASCII(v); q[1:len(q)-1] != v {
		out = append(out, q[1:len(q)-1])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// leaks returns "label (form)" for every form of every canary found in b.
func leaks(cs []canary, b []byte) []string {
	var out []string
	for _, c := range cs {
		for _, f := range c.forms() {
			if bytes.Contains(b, []byte(f)) {
				out = append(out, fmt.Sprintf("%s (%q)", c.label, f))
			}
		}
	}
	return out
}

// TestCanary is the non-negotiable (S3, S5, C5, R4): no plaintext personal
// data in logs, error messages, audit events, database files, key files or
// import reject files. Distinctive canary values go through every path —
// collection, refused variants, a duplicate, a correction, reads, lookups,
// records, an import with refused rows, audit reads and an erasure — and
// then every byte those paths leave behind is searched for every plausible
// form of every canary. The same search must find the canaries in a plain
// read response, so that a broken search cannot make the test pass.
func TestCanary(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	work := t.TempDir() // import file and reject file, outside the data dir
	logs := newSyncBuffer()
	srv := startServerOut(t, dir, logs, "--log-level", "debug")
	rec := &recordingTransport{base: http.DefaultTransport}
	admin := srv.client(srv.AdminKey)
	admin.HTTP.Transport = rec
	ps := createPrincipals(t, srv, admin)
	ps.App.HTTP.Transport, ps.CS.HTTP.Transport, ps.Marketing.HTTP.Transport = rec, rec, rec
	// A principal's name is stored in plain in the database: finding it in
	// the raw files proves the file search reads what the store wrote.
	const control = "plain-control-principal-r2d7"
	if err := admin.CreatePrincipal(ctx, &custos.Principal{Name: control, Kind: custos.KindService, Roles: []string{"auditor"}}); err != nil {
		t.Fatal(err)
	}

	// Canary A, collected through the API.
	idA := residentID("11010519900307128") // ends in X: its lower-case form is searched too
	cardA := luhn("622202987654321")
	a := struct{ name, mobile, email, id, card, address, password, health, order string }{
		name: "金丝雀甲乙", mobile: "13987651234", email: "canary.q7z@example.com", id: idA, card: cardA,
		address: "北京市朝阳区金丝雀路999号", password: "Canary#Pass2026", health: "canary-health-zq9", order: "canary-order-x8k",
	}
	// Canary B arrives through the import, C is an import row that is
	// refused, D an import row refused as a duplicate of A.
	idB := residentID("31010419880512246")
	idC := badResidentID(residentID("44030519770101358"))
	canaries := []canary{
		{"A name", a.name, "name"},
		{"A mobile", a.mobile, "mobile"},
		{"A email", a.email, "email"},
		{"A resident ID", a.id, "id"},
		{"A bank card", a.card, "card"},
		{"A address", a.address, "text"},
		{"A address (street)", "金丝雀路999号", "text"},
		{"A password", a.password, "text"},
		{"A health note", a.health, "text"},
		{"A order data", a.order, "text"},
		// Refused variants: values that never were stored must not be
		// kept anywhere either.
		{"bad mobile", "1398765123", "text"},
		{"bad resident ID", badResidentID(a.id), "id"},
		{"bad bank card", a.card[:len(a.card)-1] + string('0'+(a.card[len(a.card)-1]-'0'+1)%10), "card"},
		{"unknown field value", "canary-unknown-k4w", "text"},
		{"not-for-purpose value", "canary-notpurpose-m2p", "text"},
		{"duplicate name", "金丝雀重复", "name"},
		// The correction.
		{"A corrected mobile", "13987651299", "mobile"},
		{"A corrected address", "北京市朝阳区金丝雀路1000号", "text"},
		// The import.
		{"B name", "金丝雀丙丁", "name"},
		{"B mobile", "13987655678", "mobile"},
		{"B email", "canary.b8v@example.com", "email"},
		{"B resident ID", idB, "id"},
		{"B address", "上海市黄浦区金丝雀街7号", "text"},
		{"C name", "金丝雀戊己", "name"},
		{"C mobile", "13987659012", "mobile"},
		{"C email", "canary.c3x@example.com", "email"},
		{"C resident ID", idC, "id"},
		{"C address", "广东省深圳市金丝雀大道1号", "text"},
		{"D name", "金丝雀庚辛", "name"},
		{"D email", "canary.d5y@example.com", "email"},
		// So are a rights request's note, a relative's name and proof, and
		// a correction's value.
		{"rights note", "canary-rights-note-t6w", "text"},
		{"relative name", "金丝雀亲属", "name"},
		{"relative proof", "canary-proof-y2u", "text"},
		{"rights correction", "canary.fixed.h4k@example.com", "email"},
		// Consent evidence and a guardian's name are personal data too.
		{"A consent evidence", "canary-evidence-r5t", "text"},
		{"A guardian", "金丝雀监护人", "name"},
		{"refused consent evidence", "canary-refusedconsent-p3q", "text"},
	}
	prov := custos.Provenance{Collector: "canary-desk", Channel: "app", Source: "customer"}
	all := []string{"account", "fulfilment", "legal-obligation", "customer-service"}

	// Refused variants first: invalid values, an unknown field, a field
	// outside the purpose, an invalid lookup and an invalid correction.
	var raw [][]byte // error bodies of raw requests
	bad := custos.NewSubject{Fields: map[string]string{
		"name": a.name, "mobile": "1398765123", "email": a.email, "id_number": badResidentID(a.id),
		"bank_card": canaries[12].value, "password": a.password, "shoe_note": "canary-unknown-k4w",
	}, Provenance: prov}
	_, err := ps.App.CreateSubject(ctx, all, bad)
	e := wantCode(t, err, custos.EINVALID)
	if got, want := violationSet(e.Violations), []string{"bank_card:luhn", "id_number:resident_id_checksum", "mobile:mobile_format", "shoe_note:field_unknown"}; !slices.Equal(got, want) {
		t.Errorf("refused canary create: got violations %v, want %v", got, want)
	}
	r := rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects", ps.AppKey, strings.Join(all, ","), bad)
	raw = append(raw, r.Body)
	_, err = ps.App.CreateSubject(ctx, []string{"marketing"}, custos.NewSubject{Fields: map[string]string{
		"name": a.name, "mobile": a.mobile, "health_note": "canary-notpurpose-m2p"}, Provenance: prov})
	wantCode(t, err, custos.EINVALID)
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "1398765123")
	wantCode(t, err, custos.EINVALID)
	r = rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects/lookup", ps.AppKey, "account", map[string]string{"field": "mobile", "value": "1398765123"})
	raw = append(raw, r.Body)
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", a.mobile)
	wantCode(t, err, custos.ENOTFOUND)

	// Canary A is collected.
	aFields := map[string]string{
		"name": a.name, "mobile": a.mobile, "email": a.email, "id_number": a.id, "bank_card": a.card,
		"address": a.address, "password": a.password, "health_note": a.health,
	}
	subA, err := ps.App.CreateSubject(ctx, all, custos.NewSubject{Fields: aFields, Provenance: prov})
	if err != nil {
		t.Fatalf("create canary A: %v", err)
	}
	_, err = ps.App.CreateRecord(ctx, []string{"fulfilment"}, subA.ID, custos.NewRecord{
		Type: "order", OccurredAt: time.Now().Add(-time.Minute), Data: map[string]any{"item": a.order}, Provenance: prov})
	if err != nil {
		t.Fatalf("canary record: %v", err)
	}
	// An order of A completed four years ago, with canary values in the
	// attributes the retention sweep keeps when it anonymises (L2, S8).
	_, err = ps.App.CreateRecord(ctx, []string{"fulfilment"}, subA.ID, custos.NewRecord{
		Type: "order", OccurredAt: time.Now().AddDate(-4, 0, 0), Provenance: prov,
		Data: map[string]any{"item": a.order, "channel": a.name, "currency": a.email, "location": a.address, "status": a.mobile, "amount": "12.00"}})
	if err != nil {
		t.Fatalf("old canary record: %v", err)
	}
	// A duplicate of A, written another way.
	_, err = ps.App.CreateSubject(ctx, all, custos.NewSubject{Fields: map[string]string{
		"name": "金丝雀重复", "mobile": "+86 139-8765-1234", "email": "CANARY.Q7Z@EXAMPLE.COM"}, Provenance: prov})
	if e := wantCode(t, err, custos.ECONFLICT); e.ConflictID != string(subA.ID) {
		t.Errorf("duplicate canary: got conflict id %q, want %q", e.ConflictID, subA.ID)
	}

	// Reads and lookups by every lookup key, as each role.
	plain := rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID), ps.AppKey, strings.Join(all, ","), nil)
	if plain.Status != http.StatusOK {
		t.Fatalf("plain read: %d %s", plain.Status, plain.Body)
	}
	for _, l := range []struct{ field, value string }{{"mobile", "139 8765 1234"}, {"email", a.email}, {"id_number", strings.ToLower(a.id)}} {
		got, err := ps.App.FindSubjectByLookup(ctx, all, l.field, l.value)
		if err != nil || got.ID != subA.ID {
			t.Errorf("lookup canary A by %s: got %v, %v", l.field, got, err)
		}
	}
	csRead, err := ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, subA.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Consent: a refused (bundled) capture and a stored one, both carrying
	// personal data in evidence and guardian.
	publishNotice(t, srv.client(srv.AdminKey), testNotice())
	_, err = ps.App.CaptureConsent(ctx, subA.ID, custos.ConsentCapture{NoticeVersion: 1, Channel: "app", All: true, Evidence: "canary-refusedconsent-p3q",
		Decisions: []custos.ConsentDecision{decision("marketing", true)}})
	wantCode(t, err, custos.EINVALID)
	r = rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects/"+string(subA.ID)+"/consents", ps.AppKey, "", custos.ConsentCapture{NoticeVersion: 1,
		Channel: "app", All: true, Evidence: "canary-refusedconsent-p3q", Guardian: &custos.Guardian{Name: "金丝雀监护人"}})
	raw = append(raw, r.Body)
	if _, err := ps.App.CaptureConsent(ctx, subA.ID, custos.ConsentCapture{NoticeVersion: 1, Channel: "app", Evidence: "canary-evidence-r5t",
		Guardian:  &custos.Guardian{Name: "金丝雀监护人", Relation: "guardian", Evidence: "court order"},
		Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false)}}); err != nil {
		t.Fatalf("canary consent: %v", err)
	}
	masked := rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID), ps.MarketingKey, "marketing", nil)
	if masked.Status != http.StatusOK {
		t.Fatalf("marketing read: %d %s", masked.Status, masked.Body)
	}
	if l := leaks(canaries, masked.Body); len(l) > 0 {
		t.Errorf("a masked read (marketing) reveals %v:\n%s", l, masked.Body)
	}
	batch := rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects/read", ps.MarketingKey, "marketing", custoshttp.ReadRequest{IDs: []custos.SubjectID{subA.ID}})
	if batch.Status != http.StatusOK || !bytes.Contains(batch.Body, []byte(`"subject":{`)) {
		t.Fatalf("marketing batch read: %d %s", batch.Status, batch.Body)
	}
	if l := leaks(canaries, batch.Body); len(l) > 0 {
		t.Errorf("a masked batch read (marketing) reveals %v:\n%s", l, batch.Body)
	}
	r = rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects/read", ps.MarketingKey, "marketing", map[string][]string{"ids": {string(subA.ID), a.mobile}})
	raw = append(raw, r.Body)
	records := rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID)+"/records", ps.CSKey, "customer-service", nil)
	if records.Status != http.StatusOK {
		t.Fatalf("records: %d %s", records.Status, records.Body)
	}
	_, err = ps.Marketing.EraseSubject(ctx, []string{"marketing"}, subA.ID, "")
	wantCode(t, err, custos.EFORBIDDEN)

	// Corrections: one refused, one made.
	_, err = ps.App.UpdateSubject(ctx, all, subA.ID, custos.SubjectUpdate{Fields: map[string]*string{"mobile": ptr("1398765123")}, Provenance: prov})
	wantCode(t, err, custos.EINVALID)
	_, err = ps.CS.UpdateSubject(ctx, []string{"customer-service"}, subA.ID, custos.SubjectUpdate{
		Fields: map[string]*string{"mobile": ptr("13987651299"), "address": ptr("北京市朝阳区金丝雀路1000号")}, Provenance: prov})
	if err != nil {
		t.Fatalf("correct canary A: %v", err)
	}
	corrected := rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID), ps.AppKey, strings.Join(all, ","), nil)

	// The import: B is stored, C is refused, D duplicates A's mobile.
	csvPath := filepath.Join(work, "canaries.csv")
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, row := range [][]string{
		{"name", "mobile", "email", "id_number", "address"},
		{"金丝雀丙丁", "13987655678", "canary.b8v@example.com", idB, "上海市黄浦区金丝雀街7号"},
		{"金丝雀戊己", "13987659012", "canary.c3x@example.com", idC, "广东省深圳市金丝雀大道1号"},
		{"金丝雀庚辛", "139-8765-1299", "canary.d5y@example.com", "", ""},
	} {
		if err := w.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	if err := os.WriteFile(csvPath, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, proxied := recordingProxy(t, srv.URL)
	rejects := filepath.Join(work, "rejects.jsonl")
	code, out, errOut := runCLI(t, ctx, "import", csvPath, "-server", proxy, "-token", ps.AppKey,
		"-purpose", "account,fulfilment,legal-obligation", "-source", "canary-partner", "-rejects", rejects, "-batch", "2")
	if code != 0 || !strings.Contains(out, ": 1 stored, 1 rejected, 1 duplicate, 0 already") {
		t.Fatalf("import: code %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	cliOutput := out + errOut
	subB, err := ps.App.FindSubjectByLookup(ctx, []string{"account"}, "mobile", "13987655678")
	if err != nil {
		t.Fatalf("imported canary B: %v", err)
	}
	_, err = ps.App.FindSubjectByLookup(ctx, []string{"account"}, "email", "canary.c3x@example.com")
	wantCode(t, err, custos.ENOTFOUND)

	// Erasure of B.
	if _, err := admin.EraseSubject(ctx, []string{"account"}, subB.ID, "customer request"); err != nil {
		t.Fatalf("erase canary B: %v", err)
	}
	_, err = ps.App.FindSubjectByID(ctx, []string{"account"}, subB.ID)
	wantCode(t, err, custos.ENOTFOUND)

	// Rights requests for A: a correction with a note (fulfilled), a
	// relative's request (under review), an access request verified by a
	// one-time code (the notifier writes a file), a copy and its export.
	in := custos.NewRightsRequest{SubjectID: subA.ID, Type: custos.RightsCorrect, Channel: "phone", Verified: custos.VerifyStaff,
		Evidence: "called back", Note: "canary-rights-note-t6w", Values: map[string]string{"email": "canary.fixed.h4k@example.com"}}
	if q, err := ps.CS.FileRightsRequest(ctx, in); err != nil || q.Status != custos.RightsCompleted {
		t.Fatalf("canary correction: %v %+v", err, q)
	}
	in = custos.NewRightsRequest{SubjectID: subA.ID, Type: custos.RightsAccess, Channel: "counter", Verified: custos.VerifyStaff, Evidence: "ID card",
		Relative: &custos.Relative{Name: "金丝雀亲属", Relation: "daughter", Proof: "canary-proof-y2u"}}
	if _, err := ps.CS.FileRightsRequest(ctx, in); err != nil {
		t.Fatalf("canary relative: %v", err)
	}
	r = rawRequest(t, http.MethodPost, srv.URL+"/v1/rights-requests", ps.CSKey, "", custos.NewRightsRequest{SubjectID: subA.ID, Type: "forget-me",
		Note: "canary-rights-note-t6w", Relative: &custos.Relative{Name: "金丝雀亲属", Proof: "canary-proof-y2u"}})
	raw = append(raw, r.Body)
	q, err := ps.CS.FileRightsRequest(ctx, custos.NewRightsRequest{SubjectID: subA.ID, Type: custos.RightsAccess, Channel: "app"})
	if err != nil {
		t.Fatal(err)
	}
	cid, err := ps.CS.SendRightsCode(ctx, q.ID, "sms")
	if err != nil {
		t.Fatalf("canary code: %v", err)
	}
	if _, err := ps.CS.VerifyRightsRequest(ctx, q.ID, cid, lastCode(t, dir, subA.ID)); err != nil {
		t.Fatalf("canary verify: %v", err)
	}
	q, err = ps.CS.FileRightsRequest(ctx, custos.NewRightsRequest{SubjectID: subA.ID, Type: custos.RightsCopy, Channel: "phone", Verified: custos.VerifyStaff, Evidence: "x"})
	if err != nil {
		t.Fatal(err)
	}
	export, err := ps.CS.Export(ctx, q.ID)
	if err != nil || !strings.Contains(unzip(t, export)["fields.csv"], "canary.fixed.h4k@example.com") {
		t.Fatalf("canary export: %v", err)
	}

	// Audit reads, through the client and raw.
	events := allAuditEvents(t, admin, custos.AuditFilter{})
	auditRaw := rawRequest(t, http.MethodGet, srv.URL+"/v1/audit?limit=1000", srv.AdminKey, "", nil)
	subjectAudit := rawRequest(t, http.MethodGet, srv.URL+"/v1/audit?subject_id="+url.QueryEscape(string(subA.ID)), srv.AdminKey, "", nil)
	// Unauthenticated and unknown-route errors.
	raw = append(raw,
		rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID), "", "account", nil).Body,
		rawRequest(t, http.MethodGet, srv.URL+"/v1/subjects/"+string(subA.ID), "cst_not-a-key", "account", nil).Body,
		rawRequest(t, http.MethodPost, srv.URL+"/v1/subjects", ps.AppKey, "account", map[string]any{"fields": map[string]any{"name": 12}, "extra": a.name}).Body,
	)

	// Positive controls: the search finds the canaries where they are
	// allowed to be, so finding none elsewhere means something.
	for _, want := range []string{"A name", "A mobile", "A email", "A address"} {
		if !slices.ContainsFunc(leaks(canaries, plain.Body), func(s string) bool { return strings.HasPrefix(s, want+" ") }) {
			t.Errorf("positive control: the plain read does not show %s; the search is broken:\n%s", want, plain.Body)
		}
	}
	if !bytes.Contains(plain.Body, []byte(`"+8613987651234"`)) {
		t.Errorf("positive control: the plain read lacks the normalised mobile:\n%s", plain.Body)
	}
	if l := leaks(canaries, records.Body); !slices.Contains(l, `A order data ("canary-order-x8k")`) {
		t.Errorf("positive control: the record read does not show the order data (found %v):\n%s", l, records.Body)
	}
	if l := leaks(canaries, corrected.Body); !slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "A corrected mobile ") }) ||
		!slices.ContainsFunc(l, func(s string) bool { return strings.HasPrefix(s, "A corrected address ") }) {
		t.Errorf("positive control: the read after correction does not show the corrected values (found %v)", l)
	}
	if csRead.Fields["mobile"] != "+8613987651234" || csRead.Fields["name"] != a.name {
		t.Errorf("positive control: customer service read %v", csRead.Fields)
	}
	// Confidential fields are never shown in plain without a grant; the
	// search is the same function, and it does see them on the wire.
	sent := mustJSON(t, aFields)
	for _, lbl := range []string{"A resident ID", "A bank card", "A health note", "A password"} {
		if !slices.ContainsFunc(leaks(canaries, []byte(sent)), func(s string) bool { return strings.HasPrefix(s, lbl+" ") }) {
			t.Errorf("positive control: the search misses %s in the request body", lbl)
		}
	}

	// Stop the server (final checkpoint, WAL folded back) and search.
	dataWhileRunning := readTree(t, dir)
	backupFile := filepath.Join(work, "canary.cbk") // S7: a backup of the live store
	code, out, errOut = runCLI(t, ctx, "backup", "--out", backupFile, "--data", dir)
	if code != 0 {
		t.Fatalf("backup: code %d\n%s\n%s", code, out, errOut)
	}
	cliOutput += out + errOut
	// A read just before the stop, so that the read cache holds A and
	// serve leaves its list to be searched below.
	if _, err := ps.App.FindSubjectByID(ctx, []string{"account"}, subA.ID); err != nil {
		t.Fatal(err)
	}
	srv.stop(t)
	// The retention sweep anonymises A's old order: its dry run, run,
	// certificate list and verification print nothing personal, and the
	// anonymised table is in the files searched below.
	var retentionOut strings.Builder
	for _, args := range [][]string{{"run", "--dry-run"}, {"run"}, {"certificates"}} {
		code, out, errOut := runCLI(t, ctx, append(append([]string{"retention"}, args...), "--data", dir)...)
		if code != 0 {
			t.Fatalf("retention %v: code %d\n%s\n%s", args, code, out, errOut)
		}
		retentionOut.WriteString(out + errOut)
		if m := certRE.FindStringSubmatch(out); m != nil {
			code, out, errOut = runCLI(t, ctx, "retention", "verify", m[1], "--data", dir)
			if code != 0 {
				t.Fatalf("retention verify: code %d\n%s\n%s", code, out, errOut)
			}
			retentionOut.WriteString(out + errOut)
		}
	}
	if !strings.Contains(retentionOut.String(), "certificate cert_") || !strings.Contains(retentionOut.String(), `"anonymised":1`) {
		t.Errorf("positive control: the retention run anonymised nothing:\n%s", retentionOut.String())
	}
	dataAfter := readTree(t, dir)
	// serve left the list of customers its read cache held (issue #7):
	// it is searched with the rest, and must be there to be.
	if _, ok := dataAfter[filepath.Join(dir, "custos.db-readcache")]; !ok {
		t.Errorf("serve left no read cache list in %s to search", dir)
	}

	var corpusAll bytes.Buffer
	check := func(what string, b []byte) {
		t.Helper()
		corpusAll.Write(b)
		if l := leaks(canaries, b); len(l) > 0 {
			t.Errorf("%s contains personal data: %v", what, l)
		}
	}
	for _, files := range []map[string][]byte{dataWhileRunning, dataAfter} {
		for path, b := range files {
			check("data file "+path, b)
		}
	}
	if len(dataAfter) < 3 {
		t.Errorf("data dir holds only %v", slices.Collect(maps.Keys(dataAfter)))
	}
	var dbBytes []byte
	for path, b := range dataWhileRunning {
		if strings.HasPrefix(filepath.Base(path), "custos.db") {
			dbBytes = append(dbBytes, b...)
		}
	}
	if !bytes.Contains(dbBytes, []byte(control)) {
		t.Errorf("positive control: the plain principal name is not in the raw database files; the file search is broken")
	}
	// The backup file, its decrypted payload (only ciphertext, wrapped keys
	// and ids), and a store restored from it, with the restore's output.
	rawBackup, err := os.ReadFile(backupFile)
	if err != nil {
		t.Fatal(err)
	}
	check("backup file", rawBackup)
	if bytes.Contains(rawBackup, []byte(control)) {
		t.Errorf("the backup file holds the plain principal name: it is not encrypted")
	}
	payload := decryptBackup(t, dir, backupFile)
	check("decrypted backup payload", payload)
	if !bytes.Contains(payload, []byte(control)) || !bytes.Contains(payload, []byte(subA.ID)) {
		t.Errorf("positive control: the decrypted backup lacks the plain principal name or A's id; the payload search is broken")
	}
	restored := filepath.Join(t.TempDir(), "restored")
	copyKeys(t, dir, restored)
	code, out, errOut = runCLI(t, ctx, "restore", backupFile, "--data", restored, "--ledger", filepath.Join(dir, "shred-ledger.jsonl"))
	if code != 0 || !strings.Contains(out, "audit chain OK") {
		t.Fatalf("restore: code %d\n%s\n%s", code, out, errOut)
	}
	check("restore output", []byte(out+errOut))
	for path, b := range readTree(t, restored) {
		check("restored data file "+path, b)
	}
	rj, err := os.ReadFile(rejects)
	if err != nil {
		t.Fatal(err)
	}
	check("reject file", rj)
	if !regexp.MustCompile(`"line":3,"status":"rejected"`).Match(rj) || !regexp.MustCompile(`"line":4,"status":"duplicate","existing_id":"`+string(subA.ID)+`"`).Match(rj) {
		t.Errorf("reject file lacks lines 3 (rejected) and 4 (duplicate of A):\n%s", rj)
	}
	logBytes := logs.Bytes()
	check("server log", logBytes)
	if !bytes.Contains(logBytes, []byte("POST /v1/subjects")) || !bytes.Contains(logBytes, []byte("POST /v1/imports/{job}/rows")) {
		t.Errorf("positive control: the server log lacks the access log lines:\n%s", logBytes)
	}
	check("import CLI output", []byte(cliOutput))
	check("retention CLI output", []byte(retentionOut.String()))
	errBodies := append(rec.all(), raw...)
	if len(errBodies) < 12 {
		t.Errorf("only %d error bodies were captured", len(errBodies))
	}
	for i, b := range errBodies {
		check(fmt.Sprintf("error body %d", i), b)
	}
	joined := bytes.Join(errBodies, nil)
	for _, want := range []string{"resident_id_checksum", "field_unknown", "field_not_for_purpose", "mobile_format", `"existing_id":"` + string(subA.ID)} {
		if !bytes.Contains(joined, []byte(want)) {
			t.Errorf("positive control: no error body mentions %s", want)
		}
	}
	for i, b := range proxied() {
		check(fmt.Sprintf("import exchange %d", i), b)
	}
	evJSON := []byte(mustJSON(t, events))
	check("audit events (client)", evJSON)
	check("audit events (raw)", auditRaw.Body)
	check("audit events of A (raw)", subjectAudit.Body)
	if !bytes.Contains(evJSON, []byte(string(subA.ID))) || !bytes.Contains(evJSON, []byte(`"health_note"`)) ||
		!bytes.Contains(subjectAudit.Body, []byte(`"subject.erase"`)) {
		t.Errorf("positive control: the audit log lacks A's id, its field names or the denied erasure")
	}
	if corpusAll.Len() == 0 {
		t.Fatal("nothing was searched")
	}

	// And what the stopped node still has of B is unreadable: its key is
	// gone (R4), while A is still there after a restart.
	srv2 := startServer(t, dir)
	app2 := srv2.client(ps.AppKey)
	_, err = app2.FindSubjectByID(ctx, []string{"account"}, subB.ID)
	wantCode(t, err, custos.ENOTFOUND)
	gotA, err := app2.FindSubjectByID(ctx, []string{"account"}, subA.ID)
	if err != nil || gotA.Fields["mobile"] != "+8613987651299" {
		t.Errorf("canary A after restart: %v %v", gotA, err)
	}
	srv2.stop(t)
}

// recordingProxy is a reverse proxy to target that keeps every request and
// response body passing through it (the import CLI builds its own client).
func recordingProxy(t *testing.T, target string) (string, func() [][]byte) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bodies [][]byte
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if err := resp.Body.Close(); err != nil {
			return err
		}
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	ps := httptest.NewServer(rp)
	t.Cleanup(ps.Close)
	return ps.URL, func() [][]byte {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(bodies)
	}
}

// decryptBackup returns the decrypted dump inside a backup file, checked
// with the keys of the data directory dir.
func decryptBackup(t *testing.T, dir, file string) []byte {
	t.Helper()
	ring, err := keys.LoadKeyringFile(filepath.Join(dir, "master.keys"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := keys.LoadSignerPublicKey(filepath.Join(dir, "audit-signing.key"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if err := backup.Decrypt(f, ring, pub, &buf); err != nil {
		t.Fatalf("decrypt backup: %v", err)
	}
	return buf.Bytes()
}

// copyKeys copies the master keys and the audit signing key of data
// directory src into a new data directory dst, as an operator restoring
// onto a new host does.
func copyKeys(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"master.keys", "audit-signing.key"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
