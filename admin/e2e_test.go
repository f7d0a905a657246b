package admin_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/metrics"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/scimapi"
)

const nUsers = 10

// directory writes ou=people with nUsers users (uid=u00..) and ou=groups with one group of all.
func directory(t *testing.T) string {
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range nUsers {
		fmt.Fprintf(&b, "dn: uid=u%02d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%02d\ncn: User %02d\nsn: %02d\nmail: u%02d@example.com\n\n", i, i, i, i, i)
	}
	b.WriteString("dn: cn=staff,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\n")
	for i := range nUsers {
		fmt.Fprintf(&b, "member: uid=u%02d,ou=people,dc=example,dc=com\n", i)
	}
	p := filepath.Join(t.TempDir(), "dir.ldif")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

type stack struct {
	sl      *testenv.Slapd
	store   *cache.Store
	metrics *metrics.Metrics
	admin   *httptest.Server
	scim    *httptest.Server
}

// newStack wires what serve wires: a Syncer observed by metrics and history, the SCIM API
// observed by metrics, and the admin server, over real slapd and a real cache.
func newStack(t *testing.T) *stack {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{directory(t)}})
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg := ldapsync.DefaultConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword = sl.URL, sl.RootDN, confval.NewSecret(sl.RootPassword)
	cfg.Users.BaseDN, cfg.Groups.BaseDN = "ou=people,"+sl.BaseDN, "ou=groups,"+sl.BaseDN
	cfg.Timeout = confval.Duration(10 * time.Second)
	m := metrics.New(st, metrics.Options{})
	hist := admin.NewHistory(0)
	s, err := ldapsync.New(cfg, ldapsync.SafetyConfig{MaxDeletes: 2, MaxDeletePercent: 100}, st,
		ldapsync.Options{Observers: []ldapsync.Observer{m.ObservePass, hist.Observe}})
	if err != nil {
		t.Fatal(err)
	}
	acfg := admin.DefaultConfig()
	if errs := append(acfg.ResolveToken(), acfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	local, err := ops.NewLocal(ops.LocalOptions{LDAP: cfg, Store: st, Log: slog.New(slog.DiscardHandler), Syncer: s})
	if err != nil {
		t.Fatal(err)
	}
	as := admin.New(admin.Options{Config: acfg, Store: st, Ops: local, Source: s.Endpoint(), History: hist, Metrics: m.Handler(),
		ConfigPath: "/etc/ldapscim/config.toml", CacheDir: "/var/lib/ldapscim"})
	scfg := scimapi.DefaultConfig()
	scfg.BaseURL = "http://scim.example.com/scim/v2"
	scfg.Tokens = []scimapi.Token{{Name: "t", TokenSHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}} // "test"
	if errs := append(scfg.ResolveTokens(), scfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	api := scimapi.New(scfg, st, scimapi.Options{RequestObservers: []scimapi.RequestObserver{m.HTTPObserver("scim")}})
	k := &stack{sl: sl, store: st, metrics: m, admin: httptest.NewServer(as), scim: httptest.NewServer(api)}
	t.Cleanup(k.admin.Close)
	t.Cleanup(k.scim.Close)
	return k
}

func (k *stack) post(t *testing.T, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(k.admin.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (k *stack) get(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetricsAfterAKnownScenario: readiness before and after the first pass, a full pass of 11
// entries, one change, one delta pass, SCIM requests, then held deletions; the scrape shows
// exactly those numbers.
func TestMetricsAfterAKnownScenario(t *testing.T) {
	k := newStack(t)
	if code := k.get(t, k.admin.URL+"/readyz", ""); code != 503 {
		t.Fatalf("readyz before the first pass: %d", code)
	}
	code, sum := k.post(t, "/admin/v1/sync", "")
	if code != 200 || sum["full"] != true || sum["created"] != float64(nUsers+1) {
		t.Fatalf("first pass: %d %v", code, sum)
	}
	if code := k.get(t, k.admin.URL+"/readyz", ""); code != 200 {
		t.Fatalf("readyz after the first pass: %d", code)
	}
	k.sl.Modify(t, "dn: uid=u03,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Boss\n")
	code, sum = k.post(t, "/admin/v1/sync", "")
	if code != 200 || sum["full"] != false || sum["updated"] != float64(1) {
		t.Fatalf("delta pass: %d %v", code, sum)
	}
	for range 3 {
		if code := k.get(t, k.scim.URL+"/scim/v2/Users?count=2", "test"); code != 200 {
			t.Fatalf("SCIM Users: %d", code)
		}
	}
	k.get(t, k.scim.URL+"/scim/v2/Users/nope", "test")
	k.get(t, k.scim.URL+"/scim/v2/Users", "wrong")

	want := map[string]float64{
		`ldapscim_sync_passes_total{kind="full",result="success"}`:                                        1,
		`ldapscim_sync_passes_total{kind="delta",result="success"}`:                                       1,
		`ldapscim_sync_entries_total{outcome="created"}`:                                                  nUsers + 1,
		`ldapscim_sync_entries_total{outcome="updated"}`:                                                  1,
		`ldapscim_sync_entries_total{outcome="deleted"}`:                                                  0,
		`ldapscim_sync_entries_total{outcome="held"}`:                                                     0,
		`ldapscim_sync_pass_duration_seconds_count{kind="full"}`:                                          1,
		`ldapscim_sync_pass_duration_seconds_count{kind="delta"}`:                                         1,
		`ldapscim_cache_journal_head`:                                                                     nUsers + 2,
		`ldapscim_cache_resources{type="User"}`:                                                           nUsers,
		`ldapscim_cache_resources{type="Group"}`:                                                          1,
		`ldapscim_sync_held_deletions`:                                                                    0,
		`ldapscim_http_requests_total{code="200",method="GET",route="/scim/v2/Users",server="scim"}`:      3,
		`ldapscim_http_requests_total{code="404",method="GET",route="/scim/v2/Users/:id",server="scim"}`:  1,
		`ldapscim_http_requests_total{code="401",method="GET",route="/scim/v2/Users",server="scim"}`:      1,
		`ldapscim_http_request_duration_seconds_count{method="GET",route="/scim/v2/Users",server="scim"}`: 4,
		`ldapscim_cache_scrape_error`:                                                                     0,
	}
	got := scrapeMetrics(t, k.admin.URL+"/metrics")
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", series, g, ok, v)
		}
	}
	if age, ok := got["ldapscim_sync_watermark_age_seconds"]; !ok || age < 0 || age > 60 {
		t.Errorf("watermark age: %v %v", age, ok)
	}
	if reads := got[`ldapscim_sync_entries_total{outcome="read"}`]; reads < nUsers+1 {
		t.Errorf("entries read: %v", reads)
	}

	// Three users leave; MaxDeletes is 2, so a full pass holds them.
	for _, u := range []string{"u07", "u08", "u09"} {
		k.sl.Modify(t, "dn: uid="+u+",ou=people,dc=example,dc=com\nchangetype: delete\n")
	}
	code, sum = k.post(t, "/admin/v1/sync?full=true", "")
	if code != 200 || sum["held"] != float64(3) || sum["deleted"] != float64(0) {
		t.Fatalf("full pass over 3 deletions: %d %v", code, sum)
	}
	got = scrapeMetrics(t, k.admin.URL+"/metrics")
	for series, v := range map[string]float64{
		`ldapscim_sync_passes_total{kind="full",result="success"}`: 2,
		`ldapscim_sync_entries_total{outcome="held"}`:              3,
		`ldapscim_sync_held_deletions`:                             3,
		`ldapscim_cache_resources{type="User"}`:                    nUsers,
	} {
		if got[series] != v {
			t.Errorf("after holding: %s = %v, want %v", series, got[series], v)
		}
	}
	testStatusPageInChromium(t, k)

	code, res := k.post(t, "/admin/v1/holds/approve", `{"all":true}`)
	if code != 200 || res["Deleted"] != float64(3) {
		t.Fatalf("approve: %d %v", code, res)
	}
	got = scrapeMetrics(t, k.admin.URL+"/metrics")
	if got[`ldapscim_sync_held_deletions`] != 0 || got[`ldapscim_cache_resources{type="User"}`] != nUsers-3 {
		t.Errorf("after approving: held %v, users %v", got[`ldapscim_sync_held_deletions`], got[`ldapscim_cache_resources{type="User"}`])
	}
}

// scrapeMetrics fetches url and returns every sample by its series as written (labels sorted
// by name, as client_golang writes them).
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d", resp.StatusCode)
	}
	text, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(text), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err != nil {
			t.Fatalf("scrape line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// testStatusPageInChromium loads /status in real headless Chromium and checks the DOM it
// renders: the held deletions, the approve command, the chart. It also takes a screenshot
// (kept in LDAPSCIM_SCREENSHOT_DIR when set, for a human to look at).
func testStatusPageInChromium(t *testing.T, k *stack) {
	t.Helper()
	ch := testenv.FindChromium(t)
	dom := ch.DumpDOM(t, k.admin.URL+"/status")
	for _, want := range []string{
		`<pre id="approve-all">ldapscim deletes approve --config /etc/ldapscim/config.toml --all</pre>`,
		"uid=u07,ou=people,dc=example,dc=com", "uid=u08,ou=people,dc=example,dc=com", "uid=u09,ou=people,dc=example,dc=com",
		`<svg id="changes-chart"`, `class="bar"`,
		`class="badge ready"`,
		`class="badge success"`,
		k.sl.URL,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered status page lacks %q", want)
		}
	}
	if n := strings.Count(dom, `<tr class="hold">`); n != 3 {
		t.Errorf("rendered status page lists %d holds, want 3", n)
	}
	dir := os.Getenv("LDAPSCIM_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	ch.Screenshot(t, k.admin.URL+"/status", filepath.Join(dir, "status.png"), 1280, 1400)
}
