package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// fakeOps runs no directory pass and pushes nothing (the end-to-end tests in cmd/ldapscim
// run ops.Local through this server against slapd and SCIMMY); holds, dead letters and audit
// records are the real cache's, approved with the real ldapsync.ApproveHolds.
type fakeOps struct {
	store     *cache.Store
	sum       ldapsync.Summary
	err       error
	holdsErr  error
	fullCalls int
	onceCalls int
	replayed  []string
}

var _ ops.Operations = (*fakeOps)(nil)

func (f *fakeOps) Sync(ctx context.Context, full bool) (ldapsync.Summary, error) {
	s := f.sum
	if full {
		f.fullCalls++
		s.Full = true
	} else {
		f.onceCalls++
	}
	return s, f.err
}

func (f *fakeOps) Reconcile(_ context.Context, req ops.ReconcileRequest) (*push.ReconcileReport, error) {
	if req.Target != "scimmy" {
		return nil, ops.Errorf(ops.Invalid, "reconcile: no [[targets]] entry is named %q", req.Target)
	}
	return &push.ReconcileReport{Target: req.Target, Applied: req.Apply, Missing: 1, Drifts: []push.Drift{}}, nil
}

func (f *fakeOps) Holds(ctx context.Context) ([]cache.Hold, error) {
	if f.holdsErr != nil {
		return nil, f.holdsErr
	}
	return f.store.Holds(ctx)
}

func (f *fakeOps) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	res, err := ldapsync.ApproveHolds(ctx, f.store, ids)
	if errors.Is(err, ingest.ErrNotHeld) {
		err = &ops.Error{Code: ops.NotFound, Msg: err.Error()}
	}
	return res, err
}

func (f *fakeOps) Plan(_ context.Context, req ops.PlanRequest) (*ops.Plan, error) {
	switch req.Target {
	case "nope":
		return nil, ops.Errorf(ops.Invalid, "plan: no [[targets]] entry is named %q", req.Target)
	case "down":
		return &ops.Plan{PlanReport: &ldapsync.PlanReport{Summary: ldapsync.Summary{Pass: "p3", Read: 3}}},
			errors.New("reading users: connection reset")
	}
	return &ops.Plan{PlanReport: &ldapsync.PlanReport{Summary: ldapsync.Summary{Pass: "p4", Full: req.Full}},
		Targets: []ops.TargetPlan{{Target: req.Target}}}, nil
}

func (f *fakeOps) Explain(_ context.Context, user string) (*ops.Explanation, error) {
	if user != "ann" {
		return nil, ops.Errorf(ops.Invalid, "no user with id or userName %q", user)
	}
	return &ops.Explanation{ID: "u1", UserName: "ann"}, nil
}

func (f *fakeOps) Audit(ctx context.Context, id string) (*ops.AuditHistory, error) {
	h := &ops.AuditHistory{ID: id, Sync: []cache.AuditRecord{}, Push: []cache.PushAudit{}}
	s, err := f.store.Audit(ctx, id)
	h.Sync = append(h.Sync, s...)
	return h, err
}

func (f *fakeOps) known(target string) error {
	if target != "okta" {
		return ops.Errorf(ops.NotFound, "no such target: %q", target)
	}
	return nil
}

func (f *fakeOps) DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error) {
	if err := f.known(target); err != nil {
		return nil, err
	}
	dl, err := f.store.DeadLetters(ctx, target)
	return append([]cache.DeadLetter{}, dl...), err
}

func (f *fakeOps) ReplayDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	if err := f.known(target); err != nil {
		return 0, err
	}
	f.replayed = append(f.replayed, ids...)
	return 7, nil
}

func (f *fakeOps) SkipDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	if err := f.known(target); err != nil {
		return 0, err
	}
	return f.store.DropDeadLetters(ctx, target, ids)
}

func (f *fakeOps) TargetsStatus(ctx context.Context) (*ops.TargetsStatus, error) {
	return &ops.TargetsStatus{Live: true, Targets: []push.Status{{Name: "okta", Kind: "target", Delivered: 3}}}, nil
}

func (f *fakeOps) Import(ctx context.Context, source string, file io.ReadSeeker, dryRun bool) (*hrsync.Summary, error) {
	if source != "hr" {
		return nil, ops.Errorf(ops.Invalid, "no [[csv]] source is named %q", source)
	}
	b, err := io.ReadAll(file)
	return &hrsync.Summary{Source: "csv:hr", Rows: strings.Count(string(b), "\n") - 1, DryRun: dryRun}, err
}

type fakePush struct{}

func (p *fakePush) Targets() []string { return []string{"okta"} }
func (p *fakePush) Health(ctx context.Context) []TargetHealth {
	return []TargetHealth{{Name: "okta", Delivered: 3, Quarantined: true, Failures: 4, LastError: "HTTP 503 from okta"}}
}

const testToken = "admin-test-token"

func tokenHash(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

type fixture struct {
	store *cache.Store
	sync  *fakeOps
	push  *fakePush
	srv   *Server
}

// newFixture builds a server over a real in-memory cache holding two users, one held.
func newFixture(t *testing.T, tweak func(*Config)) *fixture {
	t.Helper()
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := DefaultConfig()
	cfg.TokenSHA256 = tokenHash(testToken)
	if tweak != nil {
		tweak(&cfg)
	}
	if errs := append(cfg.ResolveToken(), cfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	f := &fixture{store: st, sync: &fakeOps{store: st}, push: &fakePush{}}
	ctx := context.Background()
	users := []*scim.Resource{user("u1", "ann"), user("u2", "bob")}
	holds := []cache.Hold{{ID: "u2", Type: scim.UserType, Name: "bob", DN: "uid=bob,ou=people,dc=example,dc=com",
		Pass: "p1", Reason: "delete: pass would delete 1 of 2 resources", HeldAt: time.Now()}}
	if _, err := st.Apply(ctx, cache.Batch{Source: ldapsync.Source, Pass: "p1", Upserts: users, Holds: &holds}); err != nil {
		t.Fatal(err)
	}
	f.srv = New(Options{Config: cfg, Store: st, Ops: f.sync, Push: f.push, Source: ldapsync.Endpoint{
		URL: "ldap://dir.example.com/", Dialect: "openldap", BindDN: "cn=reader,dc=example,dc=com"}, ConfigPath: "/etc/ldapscim/config.toml",
		CacheDir: "/var/lib/ldapscim", Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("ldapscim_up 1\n"))
		})})
	return f
}

func user(id, name string) *scim.Resource {
	return &scim.Resource{Type: scim.UserType, ID: id, DN: "uid=" + name + ",ou=people,dc=example,dc=com",
		Attributes: map[string]any{"userName": name, "active": true}}
}

// setWatermark stores a watermark as a pass of ldapsync would, with its LastPass.
func (f *fixture) setWatermark(t *testing.T, last time.Time) {
	t.Helper()
	raw, _ := json.Marshal(map[string]any{"mode": "syncrepl", "lastFull": last.Add(-time.Minute), "lastPass": last})
	if _, err := f.store.Apply(context.Background(), cache.Batch{Source: ldapsync.Source, Pass: "wm", Watermark: raw}); err != nil {
		t.Fatal(err)
	}
}

type call struct {
	method, path, body string
	remote             string // default: a non-loopback address
	auth               string // Authorization header
	host               string // Host; default 127.0.0.1:9090, as the CLI sends it
	header             http.Header
}

func (f *fixture) do(t *testing.T, c call) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	if c.remote != "" {
		req.RemoteAddr = c.remote
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	req.Host = "127.0.0.1:9090"
	if c.host != "" {
		req.Host = c.host
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	f.srv.ServeHTTP(rec, req)
	var body map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", c.method, c.path, err, rec.Body)
		}
	}
	return rec, body
}

const (
	loopback = "127.0.0.1:40000"
	remote   = "192.0.2.7:40000"
)

func bearer(tok string) string { return "Bearer " + tok }

func basic(tok string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("admin", tok)
	return r.Header.Get("Authorization")
}

func TestAccess(t *testing.T) {
	protected := []string{"/metrics", "/status", "/admin/v1/info", "/admin/v1/holds"}
	cases := []struct {
		name   string
		tweak  func(*Config)
		remote string
		auth   string
		want   int
	}{
		{"loopback without token", nil, loopback, "", 200},
		{"loopback with a wrong token still passes", nil, loopback, bearer("nope"), 200},
		{"remote without token", nil, remote, "", 401},
		{"remote with wrong token", nil, remote, bearer("nope"), 401},
		{"remote with bearer token", nil, remote, bearer(testToken), 200},
		{"remote with basic auth password", nil, remote, basic(testToken), 200},
		{"remote with lower-case scheme", nil, remote, "bearer " + testToken, 200},
		{"remote with empty bearer", nil, remote, "Bearer ", 401},
		{"loopback not allowed, no token", func(c *Config) { c.AllowLoopback = false }, loopback, "", 401},
		{"loopback not allowed, token", func(c *Config) { c.AllowLoopback = false }, loopback, bearer(testToken), 200},
		{"no token configured, remote", func(c *Config) { c.TokenSHA256 = "" }, remote, bearer(testToken), 403},
		{"no token configured, loopback", func(c *Config) { c.TokenSHA256 = "" }, loopback, "", 200},
		{"ipv6 loopback", nil, "[::1]:40000", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.tweak)
			for _, p := range protected {
				rec, _ := f.do(t, call{method: "GET", path: p, remote: tc.remote, auth: tc.auth})
				if rec.Code != tc.want {
					t.Errorf("GET %s: %d, want %d: %s", p, rec.Code, tc.want, rec.Body)
				}
				if rec.Code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Basic") {
					t.Errorf("GET %s: 401 without a WWW-Authenticate challenge", p)
				}
				if strings.Contains(rec.Body.String(), testToken) {
					t.Errorf("GET %s: the answer contains the token", p)
				}
			}
			// The probes never need a token.
			for _, p := range []string{"/healthz", "/readyz"} {
				rec, _ := f.do(t, call{method: "GET", path: p, remote: remote})
				if rec.Code == 401 || rec.Code == 403 {
					t.Errorf("GET %s from remote: %d", p, rec.Code)
				}
			}
		})
	}
}

func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "admin.token")
	os.WriteFile(path, []byte(testToken+"\n"), 0o600)
	f := newFixture(t, func(c *Config) { c.TokenSHA256, c.TokenFile = "", path })
	if rec, _ := f.do(t, call{method: "GET", path: "/admin/v1/holds", remote: remote, auth: bearer(testToken)}); rec.Code != 200 {
		t.Fatalf("token from token_file: %d", rec.Code)
	}
	if tok, ok := f.srv.cfg.Token(); !ok || tok.Reveal() != testToken || tok.String() != "<secret>" {
		t.Fatalf("Token(): %q %v", tok.Reveal(), ok)
	}
}

func TestConfigProblems(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: "nope", ReadyMaxAge: confval.Duration(time.Hour)}, "admin.listen"},
		{Config{Listen: "", ReadyMaxAge: 0}, "admin.ready_max_age"},
		{Config{TokenSHA256: "abc", ReadyMaxAge: confval.Duration(time.Hour)}, "admin.token_sha256"},
		{Config{TokenSHA256: tokenHash("x"), TokenFile: "/x", ReadyMaxAge: confval.Duration(time.Hour)}, "not both"},
		{Config{TokenFile: "/nonexistent/token", ReadyMaxAge: confval.Duration(time.Hour)}, "admin.token_file"},
	} {
		errs := append(tc.cfg.ResolveToken(), tc.cfg.Validate()...)
		if len(errs) == 0 || !strings.Contains(errors.Join(errs...).Error(), tc.want) {
			t.Errorf("%+v: %v, want a problem naming %s", tc.cfg, errs, tc.want)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := newFixture(t, nil)
	if rec, body := f.do(t, call{method: "GET", path: "/healthz", remote: remote}); rec.Code != 200 || body["status"] != "ok" {
		t.Fatalf("healthz: %d %v", rec.Code, body)
	}
	rec, body := f.do(t, call{method: "GET", path: "/readyz", remote: remote})
	if rec.Code != 503 || body["ready"] != false || !strings.Contains(body["reason"].(string), "no sync pass") {
		t.Fatalf("readyz before any pass: %d %v", rec.Code, body)
	}
	f.setWatermark(t, time.Now().Add(-10*time.Minute))
	rec, body = f.do(t, call{method: "GET", path: "/readyz", remote: remote})
	if rec.Code != 200 || body["ready"] != true || body["age"] != "10m0s" || body["maxAge"] != "1h0m0s" {
		t.Fatalf("readyz after a pass 10m ago: %d %v", rec.Code, body)
	}
	f.srv.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	rec, body = f.do(t, call{method: "GET", path: "/readyz", remote: remote})
	if rec.Code != 503 || !strings.Contains(body["reason"].(string), "older than ready_max_age") {
		t.Fatalf("readyz with a stale pass: %d %v", rec.Code, body)
	}
}

func TestSyncEndpoint(t *testing.T) {
	f := newFixture(t, nil)
	f.sync.sum = ldapsync.Summary{Pass: "p9", Mode: "syncrepl", Read: 3, Updated: 2, Duration: 1500 * time.Millisecond}
	rec, body := f.do(t, call{method: "POST", path: "/admin/v1/sync", remote: loopback})
	if rec.Code != 200 || body["pass"] != "p9" || body["updated"] != float64(2) || body["full"] != false || f.sync.onceCalls != 1 {
		t.Fatalf("sync: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/sync?full=true", remote: loopback})
	if rec.Code != 200 || body["full"] != true || f.sync.fullCalls != 1 {
		t.Fatalf("full sync: %d %v", rec.Code, body)
	}
	if rec, _ := f.do(t, call{method: "POST", path: "/admin/v1/sync?full=maybe", remote: loopback}); rec.Code != 400 {
		t.Fatalf("full=maybe: %d", rec.Code)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/admin/v1/sync", remote: loopback}); rec.Code != 404 && rec.Code != 405 {
		t.Fatalf("GET sync: %d", rec.Code)
	}
	f.sync.err = errors.New("pass p10: dial ldap://127.0.0.1:1: connection refused")
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/sync", remote: loopback})
	if rec.Code != 502 || !strings.Contains(body["error"].(string), "connection refused") || body["pass"] != "p9" {
		t.Fatalf("failed sync: %d %v", rec.Code, body)
	}
}

func TestHoldsAndApprove(t *testing.T) {
	f := newFixture(t, nil)
	rec, body := f.do(t, call{method: "GET", path: "/admin/v1/holds", remote: loopback})
	hs, _ := body["holds"].([]any)
	if rec.Code != 200 || len(hs) != 1 || hs[0].(map[string]any)["id"] != "u2" {
		t.Fatalf("holds: %d %v", rec.Code, body)
	}
	for _, bad := range []string{``, `{}`, `{"all":true,"ids":["u2"]}`, `{"ids":[]}`, `{"everything":true}`, `[1]`} {
		if rec, _ := f.do(t, call{method: "POST", path: "/admin/v1/holds/approve", body: bad, remote: loopback}); rec.Code != 400 {
			t.Errorf("approve %q: %d, want 400", bad, rec.Code)
		}
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/holds/approve", body: `{"ids":["u9"]}`, remote: loopback})
	if rec.Code != 404 || !strings.Contains(body["error"].(string), "not held: u9") {
		t.Fatalf("approve unknown: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/holds/approve", body: `{"ids":["u2"]}`, remote: loopback})
	if rec.Code != 200 || body["Deleted"] != float64(1) {
		t.Fatalf("approve u2: %d %v", rec.Code, body)
	}
	if _, err := f.store.Get(context.Background(), scim.UserType, "u2"); !errors.Is(err, cache.ErrNotFound) {
		t.Fatalf("u2 after approval: %v", err)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/holds/approve", body: `{"all":true}`, remote: loopback})
	if rec.Code != 200 || body["Deleted"] != float64(0) {
		t.Fatalf("approve all of none: %d %v", rec.Code, body)
	}
}

func TestDeadLetters(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	err := f.store.RecordPush(ctx, "okta", []cache.PushOutcome{{ID: "u1", DeadLetter: &cache.DeadLetter{
		ID: "u1", Type: scim.UserType, Seq: 1, Op: "create", Status: 400, Error: "uniqueness", Attempts: 1, Time: time.Now()}}})
	if err != nil {
		t.Fatal(err)
	}
	rec, body := f.do(t, call{method: "GET", path: "/admin/v1/targets/okta/deadletters", remote: loopback})
	if dl, _ := body["deadLetters"].([]any); rec.Code != 200 || len(dl) != 1 {
		t.Fatalf("dead letters: %d %v", rec.Code, body)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/admin/v1/targets/entra/deadletters", remote: loopback}); rec.Code != 404 {
		t.Fatalf("unknown target: %d", rec.Code)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/targets/okta/deadletters/replay", body: `{"ids":["u1"]}`, remote: loopback})
	if rec.Code != 200 || body["replayed"] != float64(7) || len(f.sync.replayed) != 1 {
		t.Fatalf("replay: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/targets/okta/deadletters/skip", body: `{"all":true}`, remote: loopback})
	if rec.Code != 200 || body["skipped"] != float64(1) {
		t.Fatalf("skip: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "GET", path: "/admin/v1/targets", remote: loopback})
	if ts, _ := body["targets"].([]any); rec.Code != 200 || body["live"] != true || len(ts) != 1 {
		t.Fatalf("targets status: %d %v", rec.Code, body)
	}
}

func TestPlanAndExplainEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	rec, body := f.do(t, call{method: "POST", path: "/admin/v1/plan", body: `{"full":true,"target":"app"}`, remote: loopback})
	if sum, _ := body["summary"].(map[string]any); rec.Code != 200 || sum["full"] != true || !strings.Contains(rec.Body.String(), `"target": "app"`) {
		t.Fatalf("plan: %d %v", rec.Code, body)
	}
	if rec, body = f.do(t, call{method: "POST", path: "/admin/v1/plan", remote: loopback}); rec.Code != 200 || body["summary"].(map[string]any)["full"] != false {
		t.Fatalf("plan with no body: %d %v", rec.Code, body)
	}
	if rec, body = f.do(t, call{method: "POST", path: "/admin/v1/plan", body: `{"full":"yes"}`, remote: loopback}); rec.Code != 400 {
		t.Fatalf("plan with a bad body: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/plan", body: `{"target":"nope"}`, remote: loopback})
	if rec.Code != 400 || body["error"] != `plan: no [[targets]] entry is named "nope"` {
		t.Fatalf("plan of an unknown target: %d %v", rec.Code, body)
	}
	rec, body = f.do(t, call{method: "POST", path: "/admin/v1/plan", body: `{"target":"down"}`, remote: loopback})
	if sum, _ := body["summary"].(map[string]any); rec.Code != 502 || body["error"] != "reading users: connection reset" || sum["read"] != float64(3) {
		t.Fatalf("failed plan: %d %v", rec.Code, body)
	}
	if rec, body = f.do(t, call{method: "GET", path: "/admin/v1/explain/ann", remote: loopback}); rec.Code != 200 || body["userName"] != "ann" {
		t.Fatalf("explain: %d %v", rec.Code, body)
	}
	if rec, body = f.do(t, call{method: "GET", path: "/admin/v1/explain/bob", remote: loopback}); rec.Code != 400 {
		t.Fatalf("explain of an unknown user: %d %v", rec.Code, body)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/admin/v1/explain/ann"}); rec.Code != 401 {
		t.Fatalf("explain without the token from afar: %d", rec.Code)
	}
}

func TestMiscEndpoints(t *testing.T) {
	f := newFixture(t, nil)
	rec, body := f.do(t, call{method: "GET", path: "/admin/v1/info", remote: loopback})
	if rec.Code != 200 || body["cacheDir"] != "/var/lib/ldapscim" || body["pid"] != float64(os.Getpid()) {
		t.Fatalf("info: %d %v", rec.Code, body)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/metrics", remote: loopback}); rec.Code != 200 || rec.Body.String() != "ldapscim_up 1\n" {
		t.Fatalf("metrics: %d %s", rec.Code, rec.Body)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/nope", remote: loopback}); rec.Code != 404 {
		t.Fatalf("unknown path: %d", rec.Code)
	}
	if rec, _ := f.do(t, call{method: "GET", path: "/", remote: loopback}); rec.Code != 302 || rec.Header().Get("Location") != "/status" {
		t.Fatalf("/: %d %s", rec.Code, rec.Header().Get("Location"))
	}
	f.srv.opts.Metrics = nil
	if rec, _ := f.do(t, call{method: "GET", path: "/metrics", remote: loopback}); rec.Code != 404 {
		t.Fatalf("metrics off: %d", rec.Code)
	}
}

func TestStatusPage(t *testing.T) {
	f := newFixture(t, nil)
	f.setWatermark(t, time.Now())
	h := NewHistory(0)
	f.srv.opts.History = h
	h.Observe(ldapsync.Summary{Pass: "p1", Full: true, Mode: "syncrepl", Read: 2, Created: 2, Duration: time.Second}, nil)
	h.Observe(ldapsync.Summary{Pass: "p2"}, errors.New("pass p2: dial: connection <refused>"))
	rec, _ := f.do(t, call{method: "GET", path: "/status", remote: loopback})
	page := rec.Body.String()
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("status: %d %s", rec.Code, page)
	}
	for _, want := range []string{
		"ldap://dir.example.com/",
		`<pre id="approve-all">ldapscim deletes approve --config /etc/ldapscim/config.toml --all</pre>`,
		"ldapscim deletes approve --config /etc/ldapscim/config.toml u2",
		"uid=bob,ou=people,dc=example,dc=com",
		`<svg id="changes-chart"`,
		"connection &lt;refused&gt;", // escaped
		`class="badge failure"`,
		`<tr class="target"><td>okta</td>`,
		"quarantined", "HTTP 503 from okta",
		"ready",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Errorf("status page references scripts or external assets")
	}
}

func TestChartCountsJournalPerHour(t *testing.T) {
	f := newFixture(t, nil) // the fixture's Apply wrote 2 creates
	now := time.Now()
	bars, err := f.srv.chart.hourly(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != chartHours || bars[len(bars)-1].Changes != 2 {
		t.Fatalf("bars: %+v", bars)
	}
	// More changes are read incrementally.
	if _, err := f.store.Apply(context.Background(), cache.Batch{Source: ldapsync.Source, Pass: "p2",
		Upserts: []*scim.Resource{user("u3", "cy")}}); err != nil {
		t.Fatal(err)
	}
	bars, _ = f.srv.chart.hourly(context.Background(), now)
	if bars[len(bars)-1].Changes != 3 || f.srv.chart.seq != 3 {
		t.Fatalf("after one more change: %+v seq %d", bars[len(bars)-1], f.srv.chart.seq)
	}
	// A window that starts after every record finds none.
	c := newChart(f.store)
	bars, _ = c.hourly(context.Background(), now.Add(48*time.Hour))
	for _, b := range bars {
		if b.Changes != 0 {
			t.Fatalf("changes in a future window: %+v", b)
		}
	}
	if c.seq != 3 {
		t.Fatalf("first record of a future window: seq %d, want 3 (all before)", c.seq)
	}
}

func TestClient(t *testing.T) {
	f := newFixture(t, nil)
	f.sync.sum = ldapsync.Summary{Pass: "p5", Created: 4}
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	ctx := context.Background()
	c := NewClient(strings.TrimPrefix(ts.URL, "http://"), "")
	inf, err := c.Info(ctx)
	if err != nil || inf.CacheDir != "/var/lib/ldapscim" {
		t.Fatalf("info: %+v %v", inf, err)
	}
	res, err := c.Sync(ctx, true)
	if err != nil || res.Pass != "p5" || !res.Full || res.Created != 4 {
		t.Fatalf("sync: %+v %v", res, err)
	}
	f.sync.err = errors.New("pass p6: boom")
	res, err = c.Sync(ctx, false)
	if err == nil || err.Error() != "pass p6: boom" || res.Pass != "p5" {
		t.Fatalf("failing sync: %+v %v", res, err)
	}
	hs, err := c.Holds(ctx)
	if err != nil || len(hs) != 1 || hs[0].ID != "u2" {
		t.Fatalf("holds: %+v %v", hs, err)
	}
	if _, err := c.ApproveHolds(ctx, []string{"zz"}); err == nil || !strings.Contains(err.Error(), "not held: zz") {
		t.Fatalf("approve unknown: %v", err)
	}
	r, err := c.ApproveHolds(ctx, nil)
	if err != nil || r.Deleted != 1 {
		t.Fatalf("approve all: %+v %v", r, err)
	}
	if n, err := c.SkipDeadLetters(ctx, "okta", nil); err != nil || n != 0 {
		t.Fatalf("skip: %d %v", n, err)
	}
	if n, err := c.ReplayDeadLetters(ctx, "okta", []string{"u1"}); err != nil || n != 7 {
		t.Fatalf("replay: %d %v", n, err)
	}
	if dl, err := c.DeadLetters(ctx, "okta"); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters: %+v %v", dl, err)
	}
	if _, err := c.DeadLetters(ctx, "entra"); err == nil || !strings.Contains(err.Error(), "no such target") {
		t.Fatalf("dead letters of an unknown target: %v", err)
	}
	// bob (u2) was created by pass p1 and deleted by the approval above.
	h, err := c.Audit(ctx, "u2")
	if err != nil || h.ID != "u2" || len(h.Sync) != 2 || h.Sync[0].Op != cache.OpCreated || h.Sync[0].Pass != "p1" ||
		h.Sync[1].Op != cache.OpDeleted || len(h.Push) != 0 {
		t.Fatalf("audit of u2: %+v %v", h, err)
	}
	if h, err := c.Audit(ctx, "nobody"); err != nil || len(h.Sync) != 0 || h.Push == nil {
		t.Fatalf("audit of an unknown id: %+v %v", h, err)
	}
	// An import sends the file as text/csv; JSON or a form to the import route is refused.
	sum, err := c.Import(ctx, "hr", strings.NewReader("Employee ID,Email\n1,a@x\n2,b@x\n"), true)
	if err != nil || sum.Rows != 2 || !sum.DryRun {
		t.Fatalf("import: %+v %v", sum, err)
	}
	if _, err := c.Import(ctx, "payroll", strings.NewReader("x\n"), false); ops.CodeOf(err) != ops.Invalid {
		t.Fatalf("import to an unknown source: %v", err)
	}
	for _, ct := range []string{"application/json", "text/plain", "application/x-www-form-urlencoded"} {
		resp, err := http.Post(ts.URL+"/admin/v1/import/hr", ct, strings.NewReader("Employee ID\n1\n"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("import as %s: %d", ct, resp.StatusCode)
		}
	}
	ts.Close()
	if _, err := c.Info(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("info of a closed server: %v", err)
	}
	if got := NewClient("0.0.0.0:9090", "").base; got != "http://127.0.0.1:9090" {
		t.Fatalf("unspecified host: %s", got)
	}
}

// TestBusyCacheAnswers503 checks that an operation that meets a first sync's bulk load
// (cache.ErrBusy for a few seconds) gets 503 with Retry-After and says why, instead of a 500
// that sends the admin to the log; the CLI shows the reason.
func TestBusyCacheAnswers503(t *testing.T) {
	f := newFixture(t, nil)
	f.sync.holdsErr = fmt.Errorf("reading holds: %w", cache.ErrBusy)
	rec, body := f.do(t, call{method: "GET", path: "/admin/v1/holds", remote: loopback})
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" {
		t.Fatalf("holds while busy: %d Retry-After %q, want 503 and 5", rec.Code, rec.Header().Get("Retry-After"))
	}
	if msg, _ := body["error"].(string); !strings.Contains(msg, "busy writing a first sync") {
		t.Fatalf("error text %q does not say the cache is busy", msg)
	}
	ts := httptest.NewServer(f.srv)
	defer ts.Close()
	c := NewClient(strings.TrimPrefix(ts.URL, "http://"), "")
	if _, err := c.Holds(context.Background()); err == nil || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("client: %v, want the busy reason", err)
	}
	f.sync.holdsErr = nil
	if hs, err := c.Holds(context.Background()); err != nil || len(hs) != 1 {
		t.Fatalf("holds after the load: %+v %v", hs, err)
	}
}
