package http

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	nethttp "net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"custos"
)

// encodingJSON is what json.Encoder (HTML escaping on) writes for v.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// nasty strings: HTML, quotes, controls, invalid UTF-8, separators,
// Chinese text.
var nasty = []string{"", "张伟", "a<b>&c", `q"\`, "\x00\x01\x1f\x7f", "\b\f\n\r\t", "\xff\xfe", "\u2028\u2029",
	"138****5678", "上海市浦东新区", "x\xe4\xb8", "emoji 😀", "</script>"}

func randomSubject(r *rand.Rand) *custos.Subject {
	pick := func() string { return nasty[r.IntN(len(nasty))] + nasty[r.IntN(len(nasty))] }
	loc := time.FixedZone("", (r.IntN(48)-24)*1800)
	at := func() time.Time { return time.Unix(r.Int64N(4e9), r.Int64N(1e9)).In(loc) }
	s := &custos.Subject{ID: custos.SubjectID(pick()), CreatedAt: at(), UpdatedAt: at()}
	if r.IntN(8) > 0 {
		s.Fields = map[string]string{}
	}
	for range r.IntN(6) {
		if s.Fields != nil {
			s.Fields[pick()] = pick()
		}
	}
	if r.IntN(3) > 0 {
		s.Decisions = map[string]custos.FieldDecision{}
		for range r.IntN(6) {
			s.Decisions[pick()] = custos.FieldDecision{Outcome: custos.Outcome(pick()), Reason: pick()}
		}
	}
	if r.IntN(3) > 0 {
		s.Provenance = map[string]custos.Provenance{}
		for range r.IntN(4) {
			s.Provenance[pick()] = custos.Provenance{Collector: pick(), Channel: pick(), Location: pick(), Source: pick(), Plan: pick(), Time: at()}
		}
	}
	return s
}

// TestAppendSubject: the reflection-free encoder writes what
// encoding/json writes, byte for byte, for subjects full of strings that
// need escaping, and hands back what it does not cover.
func TestAppendSubject(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		s := randomSubject(r)
		got, ok := appendSubject(nil, s)
		if !ok {
			t.Fatalf("subject %d: not encoded", i)
		}
		if want := encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Fatalf("subject %d:\n got %s\nwant %s", i, got, want)
		}
	}
	// Not covered: a receipt, a time encoding/json refuses.
	if _, ok := appendSubject(nil, &custos.Subject{ConsentReceipt: &custos.ConsentReceipt{}}); ok {
		t.Error("a subject with a consent receipt was encoded")
	}
	if b, ok := appendSubject([]byte("x"), &custos.Subject{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}); ok || string(b) != "x" {
		t.Errorf("year 10000: %q, %v; want the buffer untouched and false", b, ok)
	}
}

// FuzzAppendSubject holds the encoder to encoding/json on arbitrary
// strings.
func FuzzAppendSubject(f *testing.F) {
	for _, s := range nasty {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, id, k, v string) {
		s := &custos.Subject{ID: custos.SubjectID(id), Fields: map[string]string{k: v, v: k},
			Decisions:  map[string]custos.FieldDecision{k: {Outcome: custos.Outcome(v), Reason: id}},
			Provenance: map[string]custos.Provenance{v: {Collector: k, Channel: id, Location: v, Source: k, Time: time.Unix(1, 2)}},
			CreatedAt:  time.Unix(3, 4).UTC(), UpdatedAt: time.Unix(5, 6)}
		got, ok := appendSubject(nil, s)
		if !ok {
			t.Fatal("not encoded")
		}
		if want := encodingJSON(t, s); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
	})
}

// TestAppendReadResponse holds the batch read's encoder to encoding/json:
// subjects and problems mixed, an empty and a nil list; a result whose
// subject the encoder does not cover leaves the buffer as it was.
func TestAppendReadResponse(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		rs := &ReadResponse{Results: []ReadResult{}}
		for j := range r.IntN(6) {
			res := ReadResult{ID: custos.SubjectID(nasty[r.IntN(len(nasty))])}
			if r.IntN(3) == 0 {
				res.Error = &Problem{Type: ProblemTypeBase + custos.ENOTFOUND, Title: "Not Found", Status: 404, Code: custos.ENOTFOUND,
					Detail: nasty[r.IntN(len(nasty))], Errors: []custos.Violation{{Field: "subject", Rule: nasty[j%len(nasty)]}}}
			} else {
				res.Subject = randomSubject(r)
			}
			rs.Results = append(rs.Results, res)
		}
		got, ok := appendReadResponse(nil, rs)
		if !ok {
			t.Fatalf("response %d: not encoded", i)
		}
		if want := encodingJSON(t, rs); !bytes.Equal(got, want) {
			t.Fatalf("response %d:\n got %s\nwant %s", i, got, want)
		}
	}
	if got, ok := appendReadResponse(nil, &ReadResponse{}); !ok || !bytes.Equal(got, encodingJSON(t, &ReadResponse{})) {
		t.Errorf("nil results: %s, %v", got, ok)
	}
	bad := &ReadResponse{Results: []ReadResult{{ID: "sub_a", Subject: randomSubject(r)}, {ID: "sub_b", Subject: &custos.Subject{ConsentReceipt: &custos.ConsentReceipt{}}}}}
	if b, ok := appendReadResponse([]byte("x"), bad); ok || string(b) != "x" {
		t.Errorf("a subject with a receipt: %q, %v; want the buffer untouched and false", b, ok)
	}
}

// TestEncodeConcurrent holds encode's pooled buffers to one answer each:
// answers encoded at once from many goroutines (subjects, batch answers
// past the pool's size bound, and subjects encoding/json writes) each come
// out exactly as encoding/json writes them.
func TestEncodeConcurrent(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler)}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 5))
			for i := range 300 {
				var v any
				switch i % 10 {
				case 0: // a batch answer that outgrows maxPooledEncode
					rs := &ReadResponse{}
					for range 200 {
						rs.Results = append(rs.Results, ReadResult{ID: "sub_x", Subject: randomSubject(r)})
					}
					v = rs
				case 1: // not covered by appendSubject: encoding/json writes it
					v = &custos.Subject{ID: "sub_r", ConsentReceipt: &custos.ConsentReceipt{ReceiptID: "rcp_" + nasty[r.IntN(len(nasty))]}}
				default:
					v = randomSubject(r)
				}
				rec := httptest.NewRecorder()
				s.encode(rec, httptest.NewRequest("GET", "/", nil), 200, v)
				if want := encodingJSON(t, v); !bytes.Equal(rec.Body.Bytes(), want) {
					errs <- fmt.Sprintf("goroutine %d, answer %d:\n got %.200s\nwant %.200s", g, i, rec.Body.Bytes(), want)
					return
				}
				if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
					errs <- fmt.Sprintf("goroutine %d, answer %d: Content-Length %q, body of %s bytes", g, i, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestEncodeSendsLength: over a real connection, an answer longer than
// net/http's 2,048-byte buffer (a masked read's is about 2.2 KB) arrives
// with its Content-Length, not chunked, whichever encoder wrote it; an
// answer that cannot be encoded is a 500 problem document, not a 200
// with half a body.
func TestEncodeSendsLength(t *testing.T) {
	s := &Server{Logger: slog.New(slog.DiscardHandler)}
	big := &custos.Subject{ID: "sub_big", Fields: map[string]string{}, CreatedAt: time.Unix(1, 0).UTC(), UpdatedAt: time.Unix(2, 0).UTC()}
	for i := range 40 {
		big.Fields[fmt.Sprintf("field_%02d", i)] = "上海市浦东新区世纪大道100号"
	}
	receipt := &custos.Subject{ID: "sub_r", Fields: big.Fields, ConsentReceipt: &custos.ConsentReceipt{ReceiptID: "rcp_1"}}
	cases := []struct {
		name   string
		v      any
		status int
	}{
		{"a subject, by appendSubject", big, 200},
		{"a read response, by appendReadResponse", &ReadResponse{Results: []ReadResult{{ID: "sub_big", Subject: big}}}, 200},
		{"a subject with a receipt, by encoding/json", receipt, 201},
		{"a value encoding/json refuses", map[string]float64{"x": math.NaN()}, 500},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				s.encode(w, r, c.status, c.v)
			}))
			defer srv.Close()
			resp, err := nethttp.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := new(bytes.Buffer)
			if _, err := body.ReadFrom(resp.Body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d; body %.300s", resp.StatusCode, c.status, body)
			}
			if len(resp.TransferEncoding) != 0 || resp.ContentLength != int64(body.Len()) {
				t.Fatalf("Transfer-Encoding %q, Content-Length %d, body of %d bytes", resp.TransferEncoding, resp.ContentLength, body.Len())
			}
			if c.status == 500 {
				var p Problem
				if err := json.Unmarshal(body.Bytes(), &p); err != nil || p.Code != custos.EINTERNAL ||
					resp.Header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("answer %q (%s), want an internal-error problem document", body, resp.Header.Get("Content-Type"))
				}
				return
			}
			if body.Len() <= 2048 {
				t.Fatalf("answer of %d bytes: the case needs one longer than net/http's buffer", body.Len())
			}
			if want := encodingJSON(t, c.v); !bytes.Equal(body.Bytes(), want) {
				t.Fatalf("got %.200s\nwant %.200s", body, want)
			}
		})
	}
}
