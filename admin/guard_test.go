package admin

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/ops"
)

// browserReq is one request as a web page (or a client) would send it to the admin server
// over real HTTP, from loopback.
type browserReq struct {
	method, path, body string
	host               string // "" keeps the server's own address
	header             map[string]string
}

func send(t *testing.T, ts *httptest.Server, b browserReq) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if b.body != "" {
		body = strings.NewReader(b.body)
	}
	req, err := http.NewRequest(b.method, ts.URL+b.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if b.host != "" {
		req.Host = b.host
	}
	for k, v := range b.header {
		req.Header.Set(k, v)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp, string(data)
}

// holdsLeft reports how many held deletions the fixture's cache still has.
func (f *fixture) holdsLeft(t *testing.T) int {
	t.Helper()
	hs, err := f.store.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(hs)
}

// TestCrossSiteWrites: the attacks of a page in the admin's browser, from loopback with the
// default allow_loopback, none of which may approve the hold or start a pass.
func TestCrossSiteWrites(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	self := strings.TrimPrefix(ts.URL, "http://")
	textForm := map[string]string{"Content-Type": "text/plain"}
	for _, tc := range []struct {
		name string
		req  browserReq
		want int
	}{
		{"text/plain form posting JSON-ish", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}=`, "", textForm}, 415},
		{"urlencoded form", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}=`, "",
			map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}, 415},
		{"text/plain empty form starting a pass", browserReq{"POST", "/admin/v1/sync?full=true", "", "", textForm}, 415},
		{"body without a Content-Type", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}`, "", nil}, 415},
		{"foreign Origin", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}`, "",
			map[string]string{"Content-Type": "application/json", "Origin": "http://attacker.example"}}, 403},
		{"foreign Origin starting a pass", browserReq{"POST", "/admin/v1/sync", "", "",
			map[string]string{"Origin": "http://attacker.example"}}, 403},
		{"null Origin", browserReq{"POST", "/admin/v1/sync", "", "", map[string]string{"Origin": "null"}}, 403},
		{"same host, other port", browserReq{"POST", "/admin/v1/sync", "", "",
			map[string]string{"Origin": "http://127.0.0.1:1"}}, 403},
		{"Sec-Fetch-Site cross-site", browserReq{"POST", "/admin/v1/sync", "", "",
			map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
		{"Sec-Fetch-Site same-site", browserReq{"POST", "/admin/v1/sync", "", "",
			map[string]string{"Sec-Fetch-Site": "same-site"}}, 403},
		{"DNS rebinding", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}`, "attacker.example:" + strings.Split(self, ":")[1],
			map[string]string{"Content-Type": "application/json", "Origin": "http://attacker.example:" + strings.Split(self, ":")[1]}}, 421},
		{"trailing data", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}=`, "",
			map[string]string{"Content-Type": "application/json"}}, 400},
		{"two values", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true}{"all":true}`, "",
			map[string]string{"Content-Type": "application/json"}}, 400},
		{"unknown field", browserReq{"POST", "/admin/v1/holds/approve", `{"all":true,"force":1}`, "",
			map[string]string{"Content-Type": "application/json"}}, 400},
		{"plan with trailing data", browserReq{"POST", "/admin/v1/plan", `{"full":true} x`, "",
			map[string]string{"Content-Type": "application/json"}}, 400},
		{"plan with an unknown field", browserReq{"POST", "/admin/v1/plan", `{"full":true,"dry":false}`, "",
			map[string]string{"Content-Type": "application/json"}}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, ts, tc.req)
			if resp.StatusCode != tc.want {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if f.holdsLeft(t) != 1 || f.sync.onceCalls+f.sync.fullCalls != 0 {
				t.Fatalf("the request acted: holds left %d, passes %d", f.holdsLeft(t), f.sync.onceCalls+f.sync.fullCalls)
			}
		})
	}
	// What the CLI and a same-origin page send still works.
	for _, ok := range []browserReq{
		{"POST", "/admin/v1/sync", "", "", nil},
		{"POST", "/admin/v1/sync", "", "", map[string]string{"Origin": ts.URL, "Sec-Fetch-Site": "same-origin"}},
		{"POST", "/admin/v1/plan", `{"full":true}` + "\n", "", map[string]string{"Content-Type": "application/json; charset=utf-8"}},
		{"POST", "/admin/v1/holds/approve", `{"all":true}`, "localhost:" + strings.Split(self, ":")[1],
			map[string]string{"Content-Type": "application/json"}},
	} {
		if resp, body := send(t, ts, ok); resp.StatusCode != 200 {
			t.Errorf("%s %s %v: %d %s", ok.method, ok.path, ok.header, resp.StatusCode, body)
		}
	}
	if f.holdsLeft(t) != 0 {
		t.Error("the JSON approval did not approve")
	}
}

// TestDNSRebindingReads: a page on attacker.example resolving to 127.0.0.1 cannot read the
// status page or the API; the token still works with any Host, and the probes stay open.
func TestDNSRebindingReads(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Listen = "admin.internal:9090" })
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	port := ts.URL[strings.LastIndexByte(ts.URL, ':')+1:]
	for _, p := range []string{"/status", "/admin/v1/info", "/admin/v1/holds", "/metrics"} {
		for _, host := range []string{"attacker.example", "attacker.example:" + port, "localhost.attacker.example:" + port, "127.0.0.1.nip.io:" + port} {
			resp, body := send(t, ts, browserReq{method: "GET", path: p, host: host})
			if resp.StatusCode != http.StatusMisdirectedRequest || strings.Contains(body, "/var/lib/ldapscim") || strings.Contains(body, "uid=bob") {
				t.Errorf("GET %s Host %s: %d %s", p, host, resp.StatusCode, body)
			}
		}
		for _, host := range []string{"", "localhost:" + port, "LOCALHOST", "127.0.0.1:" + port, "[::1]:" + port, "127.0.0.2", "admin.internal:9090"} {
			if resp, body := send(t, ts, browserReq{method: "GET", path: p, host: host}); resp.StatusCode != 200 {
				t.Errorf("GET %s Host %q: %d %s", p, host, resp.StatusCode, body)
			}
		}
		resp, body := send(t, ts, browserReq{method: "GET", path: p, host: "attacker.example",
			header: map[string]string{"Authorization": bearer(testToken)}})
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the token and a foreign Host: %d %s", p, resp.StatusCode, body)
		}
		resp, _ = send(t, ts, browserReq{method: "GET", path: p, host: "attacker.example",
			header: map[string]string{"Authorization": bearer("wrong")}})
		if resp.StatusCode != 401 {
			t.Errorf("GET %s with a wrong token and a foreign Host: %d", p, resp.StatusCode)
		}
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if resp, _ := send(t, ts, browserReq{method: "GET", path: p, host: "attacker.example"}); resp.StatusCode == 421 || resp.StatusCode == 403 {
			t.Errorf("probe %s refused: %d", p, resp.StatusCode)
		}
	}
	// A cross-site read (an <img>, a no-cors fetch) is refused even with a good Host.
	resp, _ := send(t, ts, browserReq{method: "GET", path: "/status", header: map[string]string{"Sec-Fetch-Site": "cross-site"}})
	if resp.StatusCode != 403 {
		t.Errorf("cross-site GET /status: %d", resp.StatusCode)
	}
}

// TestSecurityHeaders: the status page and every other answer cannot be framed or sniffed.
func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, nil)
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	for _, p := range []string{"/status", "/admin/v1/info", "/healthz", "/nope", "/"} {
		req, _ := http.NewRequest("GET", ts.URL+p, nil)
		resp, err := (&http.Transport{}).RoundTrip(req) // no redirects
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" ||
			!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s: %d, headers %v", p, resp.StatusCode, h)
		}
		if p == "/status" && (resp.StatusCode != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'")) {
			t.Errorf("status: %d, CSP %q", resp.StatusCode, h.Get("Content-Security-Policy"))
		}
	}
}

// TestClientThroughGuards: the CLI's client passes the checks for every listen form it is
// given, sending JSON bodies with their content type.
func TestClientThroughGuards(t *testing.T) {
	f := newFixture(t, nil)
	var seen []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.ContentLength > 0 {
			seen = append(seen, r.Header.Get("Content-Type"))
		}
		f.srv.ServeHTTP(w, r)
	}))
	defer ts.Close()
	port := ts.URL[strings.LastIndexByte(ts.URL, ':')+1:]
	ctx := context.Background()
	for _, listen := range []string{"127.0.0.1:" + port, "localhost:" + port, "0.0.0.0:" + port, ":" + port} {
		c := NewClient(listen, "")
		if _, err := c.Info(ctx); err != nil {
			t.Fatalf("%s: info: %v", listen, err)
		}
		if _, err := c.Sync(ctx, false); err != nil {
			t.Fatalf("%s: sync: %v", listen, err)
		}
		if p, err := c.Plan(ctx, ops.PlanRequest{Full: true, Target: "app"}); err != nil || len(p.Targets) != 1 || p.Targets[0].Target != "app" {
			t.Fatalf("%s: plan: %+v %v", listen, p, err)
		}
		if _, err := c.SkipDeadLetters(ctx, "okta", nil); err != nil {
			t.Fatalf("%s: skip: %v", listen, err)
		}
	}
	if _, err := NewClient("127.0.0.1:"+port, "").ApproveHolds(ctx, nil); err != nil || f.holdsLeft(t) != 0 {
		t.Fatalf("approve all: %v", err)
	}
	for _, ct := range seen {
		if ct != "application/json" {
			t.Fatalf("the client sent a body as %q", ct)
		}
	}
	if len(seen) == 0 {
		t.Fatal("no body seen")
	}
}
