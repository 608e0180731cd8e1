package http

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// metrics is a small Prometheus text-format exporter for request counts
// and latencies by route pattern; labels never hold URLs or values.
type metrics struct {
	mu      sync.Mutex
	start   time.Time
	count   map[[2]string]uint64 // route, status → requests
	buckets map[string][]uint64  // route → cumulative per bound
	sum     map[string]float64
	n       map[string]uint64
}

var latencyBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

func newMetrics() *metrics {
	return &metrics{start: time.Now(), count: map[[2]string]uint64{}, buckets: map[string][]uint64{},
		sum: map[string]float64{}, n: map[string]uint64{}}
}

func (m *metrics) observe(route string, status int, d time.Duration) {
	sec := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.count[[2]string{route, strconv.Itoa(status)}]++
	b := m.buckets[route]
	if b == nil {
		b = make([]uint64, len(latencyBounds))
		m.buckets[route] = b
	}
	for i, le := range latencyBounds {
		if sec <= le {
			b[i]++
		}
	}
	m.sum[route] += sec
	m.n[route]++
}

func (m *metrics) write(w *strings.Builder) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# HELP custos_uptime_seconds Seconds since the node started.\n# TYPE custos_uptime_seconds gauge\ncustos_uptime_seconds %g\n", time.Since(m.start).Seconds())
	fmt.Fprintf(w, "# HELP custos_http_requests_total HTTP requests by route and status.\n# TYPE custos_http_requests_total counter\n")
	keys := make([][2]string, 0, len(m.count))
	for k := range m.count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) })
	for _, k := range keys {
		fmt.Fprintf(w, "custos_http_requests_total{route=%q,status=%q} %d\n", k[0], k[1], m.count[k])
	}
	fmt.Fprintf(w, "# HELP custos_http_request_duration_seconds HTTP request latency by route.\n# TYPE custos_http_request_duration_seconds histogram\n")
	routes := make([]string, 0, len(m.n))
	for r := range m.n {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		for i, le := range latencyBounds {
			fmt.Fprintf(w, "custos_http_request_duration_seconds_bucket{route=%q,le=%q} %d\n", r, strconv.FormatFloat(le, 'g', -1, 64), m.buckets[r][i])
		}
		fmt.Fprintf(w, "custos_http_request_duration_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", r, m.n[r])
		fmt.Fprintf(w, "custos_http_request_duration_seconds_sum{route=%q} %g\n", r, m.sum[r])
		fmt.Fprintf(w, "custos_http_request_duration_seconds_count{route=%q} %d\n", r, m.n[r])
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	s.metrics.write(&b)
	if s.ExtraMetrics != nil {
		s.ExtraMetrics(&b)
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if _, err := w.Write([]byte(b.String())); err != nil {
		s.Logger.Debug("writing metrics failed", "err", err)
	}
}
