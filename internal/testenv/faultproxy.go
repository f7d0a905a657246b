package testenv

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is a way a FaultProxy breaks a request.
type Fault string

// The faults a FaultProxy injects.
const (
	Fault429     Fault = "429"     // 429 Too Many Requests with Retry-After: 1
	Fault500     Fault = "500"     // 500 with a JSON body, the target untouched
	FaultTimeout Fault = "timeout" // no answer for FaultProxy.Hang (past the client's timeout)
	// FaultDropped lets the target commit, then closes the connection without an answer: the
	// client cannot know the change arrived.
	FaultDropped Fault = "dropped"
	// FaultReset closes the connection with a TCP reset before the target sees the request.
	FaultReset Fault = "reset"
	Fault401   Fault = "401" // 401 Unauthorized, as an expired or revoked token gets
)

// FaultProxy is a reverse proxy in front of a push target that breaks every Every-th request,
// with its Faults in turn, and forwards the others.
type FaultProxy struct {
	URL string // the proxy's URL with the target's path: use it as the target URL

	rp     *httputil.ReverseProxy
	every  int64
	faults []Fault
	n      atomic.Int64
	off    atomic.Bool
	seen   sync.Map // Fault → *atomic.Int64

	// Hang is how long FaultTimeout holds a request; default 700 ms. Set it before use.
	Hang time.Duration
}

// NewFaultProxy starts a proxy to target (a URL with a path, e.g. a SCIM base URL) on a
// 127.0.0.1 port and stops it in t.Cleanup.
func NewFaultProxy(t testing.TB, target string, every int64, faults ...Fault) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil || every < 1 || len(faults) == 0 {
		t.Fatalf("testenv: NewFaultProxy(%q, %d, %v): want a URL, every ≥ 1 and a fault", target, every, faults)
	}
	p := &FaultProxy{rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host}),
		every: every, faults: faults, Hang: 700 * time.Millisecond}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL + u.Path
	return p
}

// SetOff turns the faults off (true) or back on: every request is forwarded while off.
func (p *FaultProxy) SetOff(off bool) { p.off.Store(off) }

// Seen returns how many times the proxy injected f.
func (p *FaultProxy) Seen(f Fault) int64 {
	if v, ok := p.seen.Load(f); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (p *FaultProxy) count(f Fault) {
	v, _ := p.seen.LoadOrStore(f, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	if p.off.Load() || n%p.every != 0 {
		p.rp.ServeHTTP(w, r)
		return
	}
	f := p.faults[(n/p.every)%int64(len(p.faults))]
	p.count(f)
	switch f {
	case Fault429:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case Fault500:
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"detail":"injected"}`)
	case Fault401:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"injected"}`)
	case FaultTimeout:
		select {
		case <-time.After(p.Hang):
		case <-r.Context().Done():
		}
	case FaultDropped:
		p.rp.ServeHTTP(httptest.NewRecorder(), r)
		hijack(w, false)
	case FaultReset:
		hijack(w, true)
	}
}

// hijack closes the client's connection without an answer; reset makes it a TCP RST (linger 0)
// instead of an orderly close.
func hijack(w http.ResponseWriter, reset bool) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("testenv: FaultProxy needs an http.Hijacker")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	conn.Close()
}
