// Package metrics is ldapscim's Prometheus instrumentation: sync passes (an ldapsync.Observer),
// the cache (journal head, resources, held deletions, watermark age, read at scrape time), HTTP
// requests of the SCIM API (a scimapi.RequestObserver) and
// push delivery (hooks the push workers call, plus per-target cursor lag and dead letters read
// from the cache at scrape time) and which build is running (ldapscim_build_info).
//
// Every metric is named ldapscim_*; New registers them on a private registry together with the
// Go runtime and process collectors, and Handler serves it.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// Store is what the scrape-time collector reads; *cache.Store implements it. All methods are
// safe for concurrent use and return cache errors.
type Store interface {
	Stats(ctx context.Context) (cache.Stats, error)
	Watermark(ctx context.Context, source string) ([]byte, error)
	PushSummary(ctx context.Context, target string) (cache.PushSummary, error)
}

// Metrics holds ldapscim's collectors. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	passes       *prometheus.CounterVec   // kind, result
	passDuration *prometheus.HistogramVec // kind
	entries      *prometheus.CounterVec   // outcome

	httpRequests *prometheus.CounterVec   // server, route, method, code
	httpDuration *prometheus.HistogramVec // server, route, method

	pushResults  *prometheus.CounterVec   // target, status
	pushLimited  *prometheus.CounterVec   // target
	pushDuration *prometheus.HistogramVec // target
	pushOutbox   *prometheus.GaugeVec     // target
}

// Options are the optional parts of Metrics.
type Options struct {
	// Targets names the push targets whose cursor lag and dead letters are exported; it is
	// called at every scrape. Nil: none.
	Targets func() []string
}

// New creates the collectors and registers them, with a collector that reads store at scrape
// time.
func New(store Store, opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapscim_sync_passes_total",
			Help: "Sync passes by kind (full, delta) and result (success, partial, failure).",
		}, []string{"kind", "result"}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ldapscim_sync_pass_duration_seconds",
			Help:    "Duration of sync passes, successful or not, by kind.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"kind"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapscim_sync_entries_total",
			Help: "Directory entries handled by sync passes, by outcome: read, created, updated, deactivated, deleted, held (deletions and deactivations), held_members (group members a held mass removal kept), unchanged, skipped.",
		}, []string{"outcome"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapscim_http_requests_total",
			Help: "HTTP requests by server (scim), route pattern, method and status code.",
		}, []string{"server", "route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ldapscim_http_request_duration_seconds",
			Help:    "HTTP request latency by server, route pattern and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"server", "route", "method"}),
		pushResults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapscim_push_requests_total",
			Help: "Requests to push targets by target and HTTP status (\"error\" when no response came).",
		}, []string{"target", "status"}),
		pushLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ldapscim_push_rate_limited_total",
			Help: "429 Too Many Requests answers from push targets.",
		}, []string{"target"}),
		pushDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ldapscim_push_request_duration_seconds",
			Help:    "Latency of requests to push targets.",
			Buckets: prometheus.DefBuckets,
		}, []string{"target"}),
		pushOutbox: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ldapscim_push_outbox_depth",
			Help: "Changes a push target's worker has taken from the journal but not delivered yet.",
		}, []string{"target"}),
	}
	m.reg.MustRegister(m.passes, m.passDuration, m.entries, m.httpRequests, m.httpDuration,
		m.pushResults, m.pushLimited, m.pushDuration, m.pushOutbox,
		&storeCollector{store: store, targets: opts.Targets},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry, for tests and for registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObservePass records one sync pass; it is an ldapsync.Observer.
func (m *Metrics) ObservePass(sum ldapsync.Summary, err error) {
	kind := "delta"
	if sum.Full {
		kind = "full"
	}
	m.passes.WithLabelValues(kind, PassResult(sum, err)).Inc()
	m.passDuration.WithLabelValues(kind).Observe(sum.Duration.Seconds())
	for outcome, n := range map[string]int{
		"read": sum.Read, "created": sum.Created, "updated": sum.Updated, "deactivated": sum.Deactivated,
		"deleted": sum.Deleted, "held": sum.Held, "held_members": sum.HeldMembers, "unchanged": sum.Unchanged,
		"skipped": sum.Skipped,
	} {
		// Add(0) too, so every outcome series exists from the first pass on.
		m.entries.WithLabelValues(outcome).Add(float64(n))
	}
}

// PassResult classifies a pass: "success", "partial" (the read was incomplete; what was read
// is applied, nothing deleted) or "failure".
func PassResult(sum ldapsync.Summary, err error) string {
	switch {
	case err == nil:
		return "success"
	case sum.Partial != "":
		return "partial"
	}
	return "failure"
}

// HTTPObserver returns a request observer for the HTTP server named server; it has the
// signature of a scimapi.RequestObserver. route is the matched route pattern ("" when no
// route matched), so ids never become label values.
//
// Every label value comes from a fixed set, whatever the client sends (unauthenticated
// requests are observed too): the method is one of HTTPMethods or "other", the status a
// three-digit number or "other", and the route a pattern (at most maxRoutes distinct ones per
// observer, each at most maxRouteLen bytes; beyond that "other"), "" being "unmatched".
func (m *Metrics) HTTPObserver(server string) func(route, method string, status int, d time.Duration) {
	routes := &routeSet{seen: map[string]bool{}}
	return func(route, method string, status int, d time.Duration) {
		route = routes.label(route)
		method = MethodLabel(method)
		m.httpRequests.WithLabelValues(server, route, method, StatusLabel(status)).Inc()
		m.httpDuration.WithLabelValues(server, route, method).Observe(d.Seconds())
	}
}

// HTTPMethods are the request methods that are label values as they are; any other is "other".
var HTTPMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete, http.MethodOptions,
}

// MethodLabel maps a request method to its label value: one of HTTPMethods, else "other".
// Methods are case-sensitive (RFC 9110), so "get" is "other" too.
func MethodLabel(method string) string {
	for _, k := range HTTPMethods {
		if method == k {
			return k
		}
	}
	return "other"
}

// StatusLabel maps an HTTP status to its label value: the number for 100-599, else "other".
func StatusLabel(status int) string {
	if status < 100 || status > 599 {
		return "other"
	}
	return strconv.Itoa(status)
}

const (
	maxRoutes   = 64  // distinct route label values per HTTP observer
	maxRouteLen = 128 // bytes of a route label value
)

// routeSet bounds the route label values of one observer: route patterns come from the
// server's route table, so they are few; the bound keeps a mistake there (a raw path passed
// for a pattern) from growing the scrape without limit.
type routeSet struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *routeSet) label(route string) string {
	switch {
	case route == "":
		return "unmatched"
	case len(route) > maxRouteLen || !strings.HasPrefix(route, "/") || !utf8.ValidString(route):
		return "other"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[route] {
		return route
	}
	if len(s.seen) >= maxRoutes {
		return "other"
	}
	s.seen[route] = true
	return route
}

// ObservePush records one request to push target: status is the HTTP status, 0 when no
// response came (network error, timeout). A 429 also counts as rate limited. Push workers call
// it once per request.
func (m *Metrics) ObservePush(target string, status int, d time.Duration) {
	s := "error"
	if status > 0 {
		s = StatusLabel(status)
	}
	m.pushResults.WithLabelValues(target, s).Inc()
	m.pushDuration.WithLabelValues(target).Observe(d.Seconds())
	if status == http.StatusTooManyRequests {
		m.pushLimited.WithLabelValues(target).Inc()
	}
}

// SetOutboxDepth records how many changes target's worker holds in memory, undelivered.
func (m *Metrics) SetOutboxDepth(target string, n int) {
	m.pushOutbox.WithLabelValues(target).Set(float64(n))
}
