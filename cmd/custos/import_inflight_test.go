package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/seed"
)

// batchFirstLine reads the first line number of an import batch request
// and puts the body back for the proxy to forward.
func batchFirstLine(t *testing.T, r *http.Request) int {
	t.Helper()
	body, err := io.ReadAll(r.Body)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The import gave up on this batch while sending it: a failure
		// before it cancels the batches still on their way, and the
		// client cuts their bodies. Nothing is stored from it.
		return 0
	}
	if err != nil {
		t.Error(err)
		return 0
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		Rows []struct {
			Line int `json:"line"`
		} `json:"rows"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Rows) == 0 {
		t.Errorf("import request body: %v", err)
		return 0
	}
	return req.Rows[0].Line
}

// rejectLines returns the line numbers of the reject file, in file order.
func rejectLines(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r importReject
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reject line %q: %v", sc.Text(), err)
		}
		lines = append(lines, r.Line)
	}
	return lines
}

// inflightRows writes 60 customers (lines 2–61, six batches of 10) to a
// CSV, with a bad resident ID at each of bad, and returns the file and
// the rows.
func inflightRows(t *testing.T, seedV uint64, bad []int) (string, []map[string]string) {
	t.Helper()
	gen := seed.New(rand.New(rand.NewPCG(seedV, 1)))
	rows := make([]map[string]string, 60)
	for i := range rows {
		rows[i] = gen.Subject().Fields
	}
	for _, line := range bad {
		rows[line-2]["id_number"] = badResidentID(rows[line-2]["id_number"])
	}
	file := filepath.Join(t.TempDir(), "customers.csv")
	writeCSV(t, file, rows, nil)
	return file, rows
}

// TestImportInflightOrder: with three batches in flight and the answers
// arriving out of order (the first batch's answer is held back until the
// second's and third's have arrived), the reject file and the counts are
// still in line order and complete.
func TestImportInflightOrder(t *testing.T) {
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	bad := []int{5, 14, 27, 49} // in batches 1, 2, 3 and 5
	file, _ := inflightRows(t, 51, bad)
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")

	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	var (
		mu       sync.Mutex
		answered = map[int]bool{} // first line of a batch → answer sent
		later    = make(chan struct{})
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/imports/") {
			rp.ServeHTTP(w, r)
			return
		}
		first := batchFirstLine(t, r)
		if first == 2 {
			// Batch 1: let the server commit it, but answer only after
			// batches 2 and 3 (sent meanwhile) have been answered.
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
			select {
			case <-later:
			case <-time.After(startTimeout):
				t.Error("batches 2 and 3 were not sent while batch 1 was unanswered")
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return
		}
		rp.ServeHTTP(w, r)
		mu.Lock()
		answered[first] = true
		if answered[12] && answered[22] {
			select {
			case <-later:
			default:
				close(later)
			}
		}
		mu.Unlock()
	}))
	defer proxy.Close()

	counts, code, out, errOut := importCounts(t, context.Background(), file, "-server", proxy.URL, "-token", ps.AppKey,
		"-purpose", strings.Join(seedPurposes, ","), "-source", "crm", "-batch", "10", "-inflight", "3", "-rejects", rejects, "-quiet")
	if code != 0 || counts != [4]int{56, 4, 0, 0} {
		t.Fatalf("import: code %d, counts %v, want [56 4 0 0]\n%s\n%s", code, counts, out, errOut)
	}
	if got := rejectLines(t, rejects); !slices.Equal(got, bad) {
		t.Errorf("reject file lines: got %v, want %v (in line order)", got, bad)
	}
}

// TestImportInflightResume: with three batches in flight, the second
// batch fails after the third has been committed by the server; the run
// stops, and running it again stores every row exactly once and reports
// every refused line exactly once, in line order, including the one of
// the batch whose answer the first run never took.
func TestImportInflightResume(t *testing.T) {
	bg := context.Background()
	srv := startServer(t, t.TempDir())
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	bad := []int{6, 25, 36, 55} // batches 1, 3, 4 and 6
	file, rows := inflightRows(t, 53, bad)
	rejects := filepath.Join(t.TempDir(), "rejects.jsonl")

	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	third := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/imports/") {
			rp.ServeHTTP(w, r)
			return
		}
		switch batchFirstLine(t, r) {
		case 12: // batch 2 fails, once batch 3 is committed
			select {
			case <-third:
			case <-time.After(startTimeout):
				t.Error("batch 3 was not sent while batch 2 was unanswered")
			}
			http.Error(w, `{"error":{"code":"EINTERNAL","message":"proxy: batch 2 lost"}}`, http.StatusServiceUnavailable)
		case 22: // batch 3
			rp.ServeHTTP(w, r.WithContext(context.WithoutCancel(r.Context())))
			close(third)
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	defer proxy.Close()

	args := []string{file, "-token", ps.AppKey, "-purpose", strings.Join(seedPurposes, ","), "-source", "crm", "-batch", "10",
		"-inflight", "3", "-rejects", rejects, "-quiet"}
	_, code, out, errOut := importCounts(t, bg, append(args, "-server", proxy.URL)...)
	if code == 0 || !strings.Contains(errOut, "import stopped at line 12") || !strings.Contains(errOut, "run the same command again to resume") {
		t.Fatalf("first run: code %d, want non-zero, stopped at line 12 with a resume hint\n%s\n%s", code, out, errOut)
	}
	// Only batch 1 was answered in order before the failure: its refused
	// line is reported, batch 3's is not yet.
	if got := rejectLines(t, rejects); !slices.Equal(got, []int{6}) {
		t.Errorf("after the first run the reject file has lines %v, want [6]", got)
	}

	counts, code, out, errOut := importCounts(t, bg, append(args, "-server", srv.URL)...)
	// Batches 1 and 3 (and maybe 4, sent before the failure was seen)
	// were committed by the first run.
	if code != 0 || counts[0]+counts[1]+counts[3] != 60 || counts[2] != 0 || counts[3] < 20 {
		t.Fatalf("resumed run: code %d, counts %v, want every line stored, rejected or already (≥ 20 already)\n%s\n%s", code, counts, out, errOut)
	}
	if got := rejectLines(t, rejects); !slices.Equal(got, bad) {
		t.Errorf("after resuming, the reject file has lines %v, want %v (each once, in line order)", got, bad)
	}
	stored, denied := importAudit(t, admin)
	if len(stored) != 56 || denied != 4 {
		t.Errorf("got %d stored subjects and %d refused rows in the audit log, want 56 and 4", len(stored), denied)
	}
	for i, r := range rows {
		s, err := ps.App.FindSubjectByLookup(bg, []string{"account"}, "mobile", r["mobile"])
		switch {
		case slices.Contains(bad, i+2):
			if custos.ErrorCode(err) != custos.ENOTFOUND {
				t.Errorf("line %d was refused, but lookup gives %v, %v", i+2, s, err)
			}
		case err != nil || stored[s.ID] != 1:
			t.Errorf("line %d: lookup gives %v, %v; stored %d times", i+2, s, err, stored[s.ID])
		}
	}
}
