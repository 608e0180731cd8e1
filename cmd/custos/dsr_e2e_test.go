package main

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	custoshttp "custos/http"
	"custos/notify"
	"custos/webhook"
	"custos/workday"
)

// flakyReceiver is a downstream system that answers 503 to the first
// failures deliveries of each event and then acknowledges, checking every
// signature.
type flakyReceiver struct {
	mu       sync.Mutex
	secret   string
	failures int
	calls    map[string]int // event id → deliveries seen
	acked    []string       // event ids acknowledged
	badSig   int
}

func (f *flakyReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := r.Header.Get(webhook.HeaderEventID)
	f.calls[id]++
	if err := webhook.Verify([]byte(f.secret), r.Header, body, time.Now(), 5*time.Minute); err != nil {
		f.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if f.calls[id] <= f.failures {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	f.acked = append(f.acked, id)
}

// lastCode reads the newest one-time code the file notifier wrote for sub.
func lastCode(tb testing.TB, dir string, sub custos.SubjectID) string {
	tb.Helper()
	f, err := os.Open(filepath.Join(dir, notify.FileName))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	code := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec notify.FileRecord
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			tb.Fatal(err)
		}
		if rec.SubjectID == sub && rec.Code != "" {
			code = rec.Code
		}
	}
	if code == "" {
		tb.Fatalf("no one-time code for %s in the notifier's file", sub)
	}
	return code
}

// TestRightsEndToEnd files every kind of rights request through the API of
// a real server (R1–R7; PIPL Art. 44–50): access, copy, correct,
// supplement, withdraw, restrict, delete (with data kept restricted for a
// legal minimum), close account (with a downstream system that fails twice
// before acknowledging), identity by one-time code, and a deceased
// customer's relative refused with a stated reason.
func TestRightsEndToEnd(t *testing.T) { testRights(t) }

// TestRightsEndToEndPostgres is TestRightsEndToEnd on PostgreSQL.
func TestRightsEndToEndPostgres(t *testing.T) {
	testRights(t, "--store", scaleSchema(t), "--migrate") // skips when CUSTOS_TEST_POSTGRES is unset
}

func testRights(t *testing.T, extra ...string) {
	ctx := context.Background()
	dir := t.TempDir()
	calFile, cal := companyCalendar(t)
	srv := startServer(t, dir, append([]string{"--webhook-interval", "100ms", "--webhook-retry-base", "50ms", "--calendar", calFile}, extra...)...)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	prov := custos.Provenance{Collector: "app-signup", Channel: "app", Source: "customer", Location: "online"}
	publishNotice(t, admin, testNotice())

	recv := &flakyReceiver{failures: 2, calls: map[string]int{}}
	rs := httptest.NewServer(recv)
	defer rs.Close()
	rcp, err := admin.CreateWebhookRecipient(ctx, custoshttp.WebhookRecipientRequest{Name: "crm", URL: rs.URL, Events: []string{"*"}})
	if err != nil {
		t.Fatalf("register recipient: %v", err)
	}
	recv.mu.Lock()
	recv.secret = rcp.Secret
	recv.mu.Unlock()

	newCustomer := func(name, mobile string, order time.Time) custos.SubjectID {
		t.Helper()
		sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment", "marketing"}, custos.NewSubject{
			Fields: map[string]string{"name": name, "mobile": mobile, "address": "杭州市西湖区文三路100号"}, Provenance: prov,
			Consent: &custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
				Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false)}}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if !order.IsZero() {
			if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order", OccurredAt: order,
				Data: map[string]any{"amount": "199.00", "sku": "TEA-1"}, Provenance: prov}); err != nil {
				t.Fatal(err)
			}
		}
		return sub.ID
	}
	staff := func(sub custos.SubjectID, typ string) custos.NewRightsRequest {
		return custos.NewRightsRequest{SubjectID: sub, Type: typ, Channel: "phone", Verified: custos.VerifyStaff, Evidence: "called back on the number on file"}
	}
	file := func(in custos.NewRightsRequest) *custos.RightsRequest {
		t.Helper()
		q, err := ps.CS.FileRightsRequest(ctx, in)
		if err != nil {
			t.Fatalf("file %s: %v", in.Type, err)
		}
		return q
	}

	a := newCustomer("周小川", "13911110001", time.Now().Add(-24*time.Hour))

	// Roles: marketing may not file or see requests.
	_, err = ps.Marketing.FileRightsRequest(ctx, staff(a, custos.RightsAccess))
	wantCode(t, err, custos.EFORBIDDEN)

	// Access: the report says what is held (masked), from where, for which
	// purposes, and for how long.
	q := file(staff(a, custos.RightsAccess))
	if q.Status != custos.RightsCompleted {
		t.Fatalf("access: status %s", q.Status)
	}
	// The deadline is 15 working days on the company's calendar: two
	// extra days off and a Saturday made a working day (调休) move it
	// one day later than on the shipped calendar alone.
	if want := cal.Deadline(q.FiledAt, 15); !q.Deadline.Equal(want) {
		t.Errorf("deadline %v, want %v (15 working days on the company calendar)", q.Deadline, want)
	}
	if plain := workday.Default().Deadline(q.FiledAt, 15); !q.Deadline.After(plain) {
		t.Errorf("deadline %v is not later than on the shipped calendar (%v): the company calendar was not used", q.Deadline, plain)
	}
	rep, err := ps.CS.AccessReport(ctx, q.ID)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var mobile *custos.AccessField
	for i := range rep.Fields {
		if rep.Fields[i].Name == "mobile" {
			mobile = &rep.Fields[i]
		}
	}
	if mobile == nil || mobile.Masked != "139****0001" || !slices.Contains(mobile.Purposes, "fulfilment") || mobile.Source.Collector != "app-signup" {
		t.Errorf("report mobile: %+v", mobile)
	}
	if rep.Records["order"] != 1 || rep.Retention["fulfilment"] == "" || !slices.Contains(rep.Recipients, "crm") || len(rep.Consents) != 2 {
		t.Errorf("report: records %v retention %v recipients %v consents %d", rep.Records, rep.Retention, rep.Recipients, len(rep.Consents))
	}

	// Copy: a zip of JSON and CSV with the values in full.
	q = file(staff(a, custos.RightsCopy))
	zb, err := ps.CS.Export(ctx, q.ID)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	files := unzip(t, zb)
	for _, name := range []string{"README.txt", "subject.json", "fields.csv", "records.json", "records.csv", "consents.json", "consents.csv"} {
		if _, ok := files[name]; !ok {
			t.Errorf("export lacks %s", name)
		}
	}
	if !strings.Contains(files["fields.csv"], "周小川") || !strings.Contains(files["records.json"], "TEA-1") || !strings.Contains(files["consents.csv"], "marketing,,granted") {
		t.Errorf("export contents:\n%s\n%s\n%s", files["fields.csv"], files["records.json"], files["consents.csv"])
	}

	// Correct and supplement, validated as at collection.
	in := staff(a, custos.RightsCorrect)
	in.Values = map[string]string{"mobile": "1391111000"}
	q = file(in)
	if q.Status != custos.RightsRefused || !strings.Contains(q.Refusal, "mobile: mobile_format") {
		t.Errorf("bad correction: status %s refusal %q", q.Status, q.Refusal)
	}
	in.Values = map[string]string{"mobile": "13911110009"}
	if q = file(in); q.Status != custos.RightsCompleted {
		t.Fatalf("correction: %+v", q)
	}
	got, err := ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, a)
	if err != nil || got.Fields["mobile"] != "+8613911110009" {
		t.Errorf("after correction: %v %v", err, got)
	}
	in = staff(a, custos.RightsSupplement)
	in.Values = map[string]string{"email": "zhou.xc@example.com"}
	if q = file(in); q.Status != custos.RightsCompleted {
		t.Fatalf("supplement: %+v", q)
	}
	in.Values = map[string]string{"name": "周大川"}
	if q = file(in); q.Status != custos.RightsRefused || !strings.Contains(q.Refusal, "already_held") {
		t.Errorf("supplementing a held field: %+v", q)
	}

	// Withdraw: effective on the next read.
	in = staff(a, custos.RightsWithdraw)
	in.Purposes = []string{"marketing"}
	if q = file(in); q.Status != custos.RightsCompleted {
		t.Fatalf("withdraw: %+v", q)
	}
	got, err = ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, a)
	if err != nil || got.Decisions["mobile"].Reason != "consent_withdrawn" {
		t.Errorf("marketing read after withdrawal request: %v %v", err, got.Decisions)
	}
	in.Purposes = []string{"fulfilment"}
	_, err = ps.CS.FileRightsRequest(ctx, in)
	wantViolations(t, "withdraw a contract purpose", err, "purposes[0]:not_consent_based")

	// Identity by one-time code: an unverified request waits; a wrong code
	// is refused; the right one verifies and fulfils it.
	q, err = ps.CS.FileRightsRequest(ctx, custos.NewRightsRequest{SubjectID: a, Type: custos.RightsAccess, Channel: "app"})
	if err != nil || q.Status != custos.RightsReceived || q.Verified != "" {
		t.Fatalf("unverified: %v %+v", err, q)
	}
	cid, err := ps.CS.SendRightsCode(ctx, q.ID, "sms")
	if err != nil {
		t.Fatalf("send code: %v", err)
	}
	_, err = ps.CS.VerifyRightsRequest(ctx, q.ID, cid, "000000")
	wantCode(t, err, custos.EFORBIDDEN)
	if q, err = ps.CS.VerifyRightsRequest(ctx, q.ID, cid, lastCode(t, dir, a)); err != nil || q.Status != custos.RightsCompleted || q.Verified != custos.VerifyOTP {
		t.Fatalf("verified: %v %+v", err, q)
	}

	// A deceased customer's relative: staff review, refused with a reason.
	in = staff(a, custos.RightsDelete)
	in.Relative = &custos.Relative{Name: "周父", Relation: "father", Proof: "death certificate"}
	q = file(in)
	if q.Status != custos.RightsReview {
		t.Fatalf("relative: %+v", q)
	}
	_, err = ps.CS.DecideRightsRequest(ctx, q.ID, custos.RightsDecision{})
	wantViolations(t, "refusal without reason", err, "reason:required")
	q, err = ps.CS.DecideRightsRequest(ctx, q.ID, custos.RightsDecision{Reason: "the certificate does not show the relationship"})
	if err != nil || q.Status != custos.RightsRefused || q.Refusal != "the certificate does not show the relationship" {
		t.Errorf("refused relative: %v %+v", err, q)
	}

	// Restrict: reviewed, then the data is locked for every use.
	b := newCustomer("吴小莉", "13911110002", time.Time{})
	q = file(staff(b, custos.RightsRestrict))
	if q.Status != custos.RightsReview {
		t.Fatalf("restrict: %+v", q)
	}
	if q, err = ps.CS.DecideRightsRequest(ctx, q.ID, custos.RightsDecision{Approve: true}); err != nil || q.Status != custos.RightsCompleted {
		t.Fatalf("restrict approved: %v %+v", err, q)
	}
	_, err = ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, b)
	wantCode(t, err, custos.EFORBIDDEN)
	// Staff lift it when the customer asks: reads work again.
	if err := ps.CS.LiftRestriction(ctx, b, ""); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("lift without a reason: %v", err)
	}
	if err := ps.CS.LiftRestriction(ctx, b, "the customer asked to lift it"); err != nil {
		t.Fatalf("lift: %v", err)
	}
	if _, err = ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, b); err != nil {
		t.Errorf("read after lifting: %v", err)
	}

	// Delete with an order inside its 3-year legal minimum: the order is
	// kept, restricted, and the customer told until when; everything else
	// goes; the customer is gone from reads and lookups.
	q = file(staff(a, custos.RightsDelete))
	if q.Status != custos.RightsCompleted || len(q.Retained) != 1 || q.Retained[0].Category != "transaction" || q.Retained[0].Count != 1 ||
		q.Retained[0].Until.Before(time.Now().AddDate(2, 11, 0)) || !strings.Contains(q.Retained[0].Reason, "E-commerce Law") {
		t.Fatalf("delete with a legal minimum: %+v", q)
	}
	_, err = ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, a)
	wantCode(t, err, custos.EFORBIDDEN)
	_, err = ps.CS.FindSubjectByLookup(ctx, []string{"customer-service"}, "mobile", "13911110009")
	wantCode(t, err, custos.ENOTFOUND)
	_, err = ps.CS.FindRecords(ctx, []string{"fulfilment"}, a, "")
	wantCode(t, err, custos.EFORBIDDEN)
	// A legal-minimum restriction cannot be lifted early.
	wantViolations(t, "lift a legal minimum", ps.CS.LiftRestriction(ctx, a, "please"), "subject:legal_minimum")

	// Close an account with nothing to keep: crypto-shredded, and the
	// downstream system, failing twice, is retried until it acknowledges.
	c := newCustomer("郑小雨", "13911110003", time.Time{})
	q = file(staff(c, custos.RightsClose))
	if q.Status != custos.RightsCompleted || len(q.Retained) != 0 || q.EventID == "" {
		t.Fatalf("close: %+v", q)
	}
	_, err = ps.CS.FindSubjectByID(ctx, []string{"customer-service"}, c)
	wantCode(t, err, custos.ENOTFOUND)
	deadline := time.Now().Add(20 * time.Second)
	for {
		q, err = ps.CS.RightsRequest(ctx, q.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(q.Deliveries) == 1 && q.Deliveries[0].Status == custos.DeliveryDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("close: deliveries %+v never delivered", q.Deliveries)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recv.mu.Lock()
	if q.Deliveries[0].Attempts != 3 || recv.badSig != 0 || !slices.Contains(recv.acked, q.EventID) {
		t.Errorf("delivery: attempts %d, bad signatures %d, acked %v; want 3, 0, %s", q.Deliveries[0].Attempts, recv.badSig, recv.acked, q.EventID)
	}
	recv.mu.Unlock()

	// The queue lists open requests only: every request above has ended.
	open, err := ps.CS.RightsRequests(ctx, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range open {
		t.Errorf("request %s (%s) still open: %s", o.ID, o.Type, o.Status)
	}
	done, err := ps.CS.RightsRequests(ctx, custos.RightsCompleted, "", 0)
	if err != nil || len(done) != 9 {
		t.Errorf("completed requests: %d, %v", len(done), err)
	}
}

// companyCalendar writes a company calendar laid over the shipped one:
// the second and third weekdays from tomorrow are days off, and the first
// Saturday after them is a make-up working day. It returns the file and
// the calendar the server should compute with.
func companyCalendar(t *testing.T) (string, *workday.Calendar) {
	t.Helper()
	day := time.Now().In(workday.Shanghai).AddDate(0, 0, 1)
	var off []time.Time
	for len(off) < 3 {
		if wd := day.Weekday(); wd != time.Saturday && wd != time.Sunday {
			off = append(off, day)
		}
		day = day.AddDate(0, 0, 1)
	}
	off = off[1:]
	sat := off[1]
	for sat.Weekday() != time.Saturday {
		sat = sat.AddDate(0, 0, 1)
	}
	type entry struct {
		Name string `json:"name"`
		From string `json:"from,omitempty"`
		To   string `json:"to,omitempty"`
		Date string `json:"date,omitempty"`
	}
	years := map[int]map[string][]entry{}
	add := func(d time.Time, kind string, e entry) {
		if years[d.Year()] == nil {
			years[d.Year()] = map[string][]entry{}
		}
		years[d.Year()][kind] = append(years[d.Year()][kind], e)
	}
	for _, d := range off {
		ds := d.Format(time.DateOnly)
		add(d, "holidays", entry{Name: "公司年会", From: ds, To: ds})
	}
	add(sat, "workdays", entry{Name: "年会调休", Date: sat.Format(time.DateOnly)})
	var doc struct {
		Version int              `json:"version"`
		Years   []map[string]any `json:"years"`
	}
	doc.Version = 1
	for y, kinds := range years {
		m := map[string]any{"year": y, "source": "company calendar (test)"}
		for k, v := range kinds {
			m[k] = v
		}
		doc.Years = append(doc.Years, m)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "calendar.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cal, err := workday.LoadFile(path)
	if err != nil {
		t.Fatalf("company calendar: %v", err)
	}
	return path, cal
}

func unzip(tb testing.TB, b []byte) map[string]string {
	tb.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		tb.Fatalf("export is not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			tb.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			tb.Fatal(err)
		}
		out[f.Name] = string(data)
	}
	return out
}
