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
// cacheCounts reads srv's read cache hits and misses for store ("sqlite"
// or "pg") now, and returns a func giving the hits and misses counted
// since.
func cacheCounts(t *testing.T, srv *testServer, store string) (since func() (hits, misses int)) {
	t.Helper()
	hits, misses := "custos_"+store+"_read_cache_hits_total", "custos_"+store+"_read_cache_misses_total"
	h0, m0 := metric(t, srv, hits), metric(t, srv, misses)
	return func() (int, int) {
		t.Helper()
		return metric(t, srv, hits) - h0, metric(t, srv, misses) - m0
	}
}

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

// waitWarmed waits until logs say the read cache's warm-up finished.
func waitWarmed(t *testing.T, logs *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(logs.String(), "read cache warmed") {
		if time.Now().After(deadline) {
			t.Fatalf("no warm-up logged within %v:\n%s", startTimeout, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	waitWarmed(t, logs)
	if !regexp.MustCompile(`msg="read cache warmed" loaded=5 listed=5 `).MatchString(logs.String()) {
		t.Errorf("the warm-up log does not say all 5 loaded:\n%s", logs)
	}
	if got := metric(t, srv, "custos_sqlite_read_cache_warmed_total"); got != 5 {
		t.Errorf("custos_sqlite_read_cache_warmed_total = %d, want 5", got)
	}
	counted := cacheCounts(t, srv, "sqlite")
	app := srv.client(ps.AppKey) // the first start's key
	for _, id := range ids {
		if _, err := app.FindSubjectByID(ctx, []string{"account"}, id); err != nil {
			t.Fatal(err)
		}
	}
	if h, m := counted(); h != 5 || m != 0 {
		t.Errorf("the first reads after the start: %d hits and %d misses, want 5 and 0", h, m)
	}
}

// TestServeWarmsReadCachePostgres: a PostgreSQL node leaves no list; at
// its start it reads the customers of the audit log's latest reads and
// lookups back into its read cache, with their blind-index keys
// (postgres/warm.go), so that the first reads and lookups after a restart
// are hits, of customers read by id before it too. Issue #7 (a node's
// first seconds after a start).
func TestServeWarmsReadCachePostgres(t *testing.T) {
	store := scaleSchema(t) // skips when CUSTOS_TEST_POSTGRES is unset
	ctx := context.Background()
	dir := t.TempDir()
	pg := []string{"--store", store, "--migrate"}
	srv := startServer(t, dir, pg...)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	account := []string{"account"}
	var ids []custos.SubjectID
	mobile := func(i int) string { return "1398765431" + strconv.Itoa(i) }
	for i, name := range []string{"顾客甲", "顾客乙", "顾客丙", "顾客丁", "顾客戊"} {
		s, err := ps.App.CreateSubject(ctx, account, custos.NewSubject{
			Fields:     map[string]string{"name": name, "mobile": mobile(i)},
			Provenance: custos.Provenance{Collector: "test", Channel: "app", Source: "customer"}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, s.ID)
		if i < 3 {
			_, err = ps.App.FindSubjectByID(ctx, account, s.ID)
		} else {
			_, err = ps.App.FindSubjectByLookup(ctx, account, "mobile", mobile(i))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.stop(t)
	if _, err := os.Stat(filepath.Join(dir, "custos.db-readcache")); err == nil {
		t.Error("a PostgreSQL node wrote a read cache list")
	}

	logs := newSyncBuffer()
	srv = startServerOut(t, dir, logs, pg...)
	waitWarmed(t, logs)
	if !regexp.MustCompile(`msg="read cache warmed" loaded=5 listed=5 already=0 gone=0 no_room=0 lookup_keys=5 `).MatchString(logs.String()) {
		t.Errorf("the warm-up log does not say all 5 loaded, with their 5 mobiles' keys:\n%s", logs)
	}
	if !strings.Contains(logs.String(), `list="the audit log's latest reads and lookups"`) {
		t.Errorf("the warm-up log does not say where its list came from:\n%s", logs)
	}
	if got := metric(t, srv, "custos_pg_read_cache_warmed_total"); got != 5 {
		t.Errorf("custos_pg_read_cache_warmed_total = %d, want 5", got)
	}
	counted := cacheCounts(t, srv, "pg")
	app := srv.client(ps.AppKey) // the first start's key
	for i, id := range ids {
		if _, err := app.FindSubjectByID(ctx, account, id); err != nil {
			t.Fatal(err)
		}
		if s, err := app.FindSubjectByLookup(ctx, account, "mobile", mobile(i)); err != nil || s.ID != id {
			t.Fatalf("lookup after the start: %v", err)
		}
	}
	if h, m := counted(); h != 10 || m != 0 {
		t.Errorf("the first 5 reads and 5 lookups after the start (3 of them of customers only read by id before): %d hits and %d misses, want 10 and 0", h, m)
	}
}
