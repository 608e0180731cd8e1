package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"custos"
)

// metric returns the value of a counter in srv's /metrics.
func metric(t *testing.T, srv *testServer, name string) int {
	t.Helper()
	return metricAt(t, srv.URL, name)
}

// metricAt returns the value of a counter in the /metrics of the node at
// url.
func metricAt(t *testing.T, url, name string) int {
	t.Helper()
	r := rawRequest(t, http.MethodGet, url+"/metrics", "", "", nil)
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindSubmatch(r.Body)
	if m == nil {
		t.Fatalf("/metrics (%d) has no %s:\n%s", r.Status, name, r.Body)
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// TestServeWarmsReadCache: serve leaves the list of the customers its read
// cache holds when it stops, and the next start reads them back into the
// cache in the background, so that the first read of each is a hit; the
// log says how far it got. Issue #7 (a node's first seconds after a
// start).
func TestServeWarmsReadCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	var ids []custos.SubjectID
	for i, name := range []string{"顾客甲", "顾客乙", "顾客丙", "顾客丁", "顾客戊"} {
		s, err := ps.App.CreateSubject(ctx, []string{"account"}, custos.NewSubject{
			Fields:     map[string]string{"name": name, "mobile": "1398765430" + strconv.Itoa(i)},
			Provenance: custos.Provenance{Collector: "test", Channel: "app", Source: "customer"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
		if _, err := ps.App.FindSubjectByID(ctx, []string{"account"}, s.ID); err != nil {
			t.Fatal(err)
		}
	}
	srv.stop(t)
	b, err := os.ReadFile(filepath.Join(dir, "custos.db-readcache"))
	if err != nil {
		t.Fatalf("serve left no read cache list: %v", err)
	}
	for _, id := range ids {
		if !strings.Contains(string(b), string(id)+"\n") {
			t.Errorf("the list lacks %s, read before the stop:\n%s", id, b)
		}
	}

	logs := newSyncBuffer()
	srv = startServerOut(t, dir, logs)
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(logs.String(), "read cache warmed") {
		if time.Now().After(deadline) {
			t.Fatalf("no warm-up logged within %v:\n%s", startTimeout, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !regexp.MustCompile(`msg="read cache warmed" loaded=5 listed=5 `).MatchString(logs.String()) {
		t.Errorf("the warm-up log does not say all 5 loaded:\n%s", logs)
	}
	if got := metric(t, srv, "custos_sqlite_read_cache_warmed_total"); got != 5 {
		t.Errorf("custos_sqlite_read_cache_warmed_total = %d, want 5", got)
	}
	hits := metric(t, srv, "custos_sqlite_read_cache_hits_total")
	misses := metric(t, srv, "custos_sqlite_read_cache_misses_total")
	app := srv.client(ps.AppKey) // the first start's key
	for _, id := range ids {
		if _, err := app.FindSubjectByID(ctx, []string{"account"}, id); err != nil {
			t.Fatal(err)
		}
	}
	if h, m := metric(t, srv, "custos_sqlite_read_cache_hits_total")-hits, metric(t, srv, "custos_sqlite_read_cache_misses_total")-misses; h != 5 || m != 0 {
		t.Errorf("the first reads after the start: %d hits and %d misses, want 5 and 0", h, m)
	}
}
