package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// TestStagingAndHeldDeletionAlerts: with [safety] staging = true, serve syncs but sends nothing
// to its targets; without it, the same config pushes, and a pass that holds deletions tells the
// alert webhook how to review them.
func TestStagingAndHeldDeletionAlerts(t *testing.T) {
	var targetRequests atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetRequests.Add(1)
		w.Header().Set("Content-Type", "application/scim+json")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer target.Close()
	chat := startChat(t)

	for _, staging := range []bool{true, false} {
		sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{"../../ldapsync/testdata/small.ldif"}})
		dir := t.TempDir()
		addr := freeAddr(t)
		extra := fmt.Sprintf(`[admin]
listen = %q
[[targets]]
name = "app"
url = %q
token = "x"
max_attempts = 1000
poll_interval = "100ms"
[[webhooks]]
name = "ops-chat"
url = %q
format = "slack"
`, addr, target.URL+"/scim/v2", chat.srv.URL)
		cfg := adminConfig(t, sl, dir, dir+"/cache", extra)
		if staging {
			cfg = adminConfig(t, sl, dir, dir+"/cache", "staging = true\n"+extra)
		}
		cmd, stderr := startServe(t, cfg)
		waitFirstPass(t, "http://"+addr, stderr)
		before := targetRequests.Load()
		// Three deletions against max_deletes = 2: held, and the alert names the commands.
		sl.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: delete\n\ndn: uid=bob,ou=people,dc=example,dc=com\nchangetype: delete\n\ndn: uid=carl,ou=people,dc=example,dc=com\nchangetype: delete\n")
		if out, _, err := runCLI(t, "sync", "--config", cfg); err != nil || !strings.Contains(out, "held 3") {
			t.Fatalf("sync through serve: %v\n%s", err, out)
		}
		time.Sleep(time.Second) // the workers poll every 100 ms here
		if !staging {
			checkPushWiring(t, "http://"+addr, dir+"/cache")
		}
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("serve exit: %v\n%s", err, stderr.String())
		}
		alerts := chat.texts()
		gotAlert := len(alerts) > 0 && strings.Contains(alerts[len(alerts)-1], "deletes approve --config "+cfg+" --all")
		if staging {
			if n := targetRequests.Load(); n != 0 {
				t.Fatalf("staging: the target got %d requests", n)
			}
			if gotAlert {
				t.Fatal("staging: an alert was sent")
			}
			if !strings.Contains(stderr.String(), "staging") {
				t.Fatalf("staging not logged:\n%s", stderr.String())
			}
			continue
		}
		if targetRequests.Load() == before && before == 0 {
			t.Fatal("without staging the target got no request: the staging check proves nothing")
		}
		if !gotAlert {
			t.Fatalf("no held-deletion alert; alerts: %q", chat.texts())
		}
	}
}

// checkPushWiring checks what serve wires into its push workers: the metrics see their
// requests and read their targets' lag at scrape time, and `targets status` through the admin
// API reports the running workers.
func checkPushWiring(t *testing.T, base, cacheDir string) {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ldapscim_push_requests_total{status="503",target="app"}`, `ldapscim_push_cursor_lag{target="app"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s:\n%s", want, body)
		}
	}
	ts, err := admin.NewClient(strings.TrimPrefix(base, "http://"), "").TargetsStatus(context.Background())
	if err != nil || !ts.Live || len(ts.Targets) != 1 || ts.Targets[0].Name != "app" {
		t.Fatalf("targets status of the running workers: %+v %v", ts, err)
	}
}

// waitFirstPass waits until /readyz says a pass succeeded and serve has run its first pass.
func waitFirstPass(t *testing.T, base string, stderr *testenv.Output) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		// /readyz answers 200 at once when the cache is fresh (a `sync` just ran): wait for
		// serve's own first pass too, which /metrics counts, so that it cannot run into a
		// change the test makes next.
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				if resp, err := http.Get(base + "/metrics"); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if regexp.MustCompile(`(?m)^ldapscim_sync_passes_total\{`).Match(b) {
						return
					}
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve never became ready; stderr:\n%s", stderr.String())
}

// chat is an alert webhook receiver: every body it got, in order.
type chat struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []string
}

func startChat(t *testing.T) *chat {
	c := &chat{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.bodies = append(c.bodies, string(b))
		c.mu.Unlock()
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *chat) texts() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.bodies)
}
