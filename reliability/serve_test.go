//go:build reliability

package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
)

// setup is what a config file for one trial kind says.
type setup struct {
	dir       string // holds the config, the password file and (by default) the cache
	cacheDir  string // default dir/cache
	sl        *testenv.Slapd
	admin     string // host:port of the admin server; "" turns it off
	scim      string // host:port of the SCIM API; "" turns it off
	targetURL string // a [[targets]] entry when set
	token     string // the target's bearer token
	timeout   string // [ldap] timeout; default 30s
	extra     string // appended as is
}

const scimToken = "reliability-token"

// write writes the config file and returns its path.
func (s setup) write(t testing.TB, name string) string {
	t.Helper()
	if s.cacheDir == "" {
		s.cacheDir = filepath.Join(s.dir, "cache")
	}
	pw := filepath.Join(s.dir, "bind.pw")
	if err := os.WriteFile(pw, []byte(s.sl.RootPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `[cache]
dir = %q
[log]
level = "warn"
[ldap]
url = %q
bind_dn = %q
bind_password_file = %q
timeout = %q
[ldap.users]
base_dn = "ou=people,%s"
[ldap.groups]
base_dn = "ou=groups,%s"
[schedule]
delta = "@every 24h"
full = ""
[safety]
max_deletes = 100000000
max_delete_percent = 100.0
[admin]
listen = %q
`, s.cacheDir, s.sl.URL, s.sl.RootDN, pw, cmpOr(s.timeout, "30s"), s.sl.BaseDN, s.sl.BaseDN, s.admin)
	if s.scim != "" {
		fmt.Fprintf(&b, `[scim]
listen = %q
base_url = "http://%s/scim/v2"
max_results = 1000
[[scim.tokens]]
name = "reliability"
token_sha256 = %q
`, s.scim, s.scim, sha256hex(scimToken))
	}
	if s.targetURL != "" {
		fmt.Fprintf(&b, `[[targets]]
name = "scimmy"
url = %q
token = %q
groups = true
timeout = "2s"
backoff_base = "50ms"
backoff_max = "1s"
max_attempts = 8
concurrency = 4
poll_interval = "200ms"
# a 401 quarantines the target at once; probe again soon, not after the default 5 minutes
quarantine_retry = "2s"
`, s.targetURL, s.token)
	}
	b.WriteString(s.extra)
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// server is a running `ldapscim serve`.
type server struct {
	cmd    *exec.Cmd
	stderr *testenv.Output
	exited chan struct{}
	admin  string // http://host:port of its admin server
	cache  string // its cache directory
}

// startServe starts `bin serve --config cfg` and waits until its admin server answers.
func startServe(t testing.TB, bin, cfg string, s setup) *server {
	t.Helper()
	srv := launchServe(t, bin, cfg, s)
	srv.waitAdmin(t)
	return srv
}

// launchServe starts `bin serve --config cfg` and returns at once: its first pass starts with
// the process, before the admin server answers.
func launchServe(t testing.TB, bin, cfg string, s setup) *server {
	t.Helper()
	srv := &server{stderr: &testenv.Output{}, exited: make(chan struct{}), admin: "http://" + s.admin,
		cache: cmpOr(s.cacheDir, filepath.Join(s.dir, "cache"))}
	srv.cmd = exec.Command(bin, "serve", "--config", cfg)
	srv.cmd.Stderr = srv.stderr
	if err := srv.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { srv.cmd.Wait(); close(srv.exited) }()
	t.Cleanup(srv.kill)
	return srv
}

func (srv *server) waitAdmin(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(srv.admin + "/healthz")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-srv.exited:
			t.Fatalf("serve exited at start: %v\n%s", srv.cmd.ProcessState, srv.stderr)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve's admin server did not answer in 30 s: %v\n%s", err, srv.stderr)
		}
	}
}

// kill is kill -9: the process gets no chance to flush or close anything.
func (s *server) kill() {
	select {
	case <-s.exited:
	default:
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.exited
	}
}

// stop is SIGTERM and a clean exit within a minute.
func (s *server) stop(t testing.TB) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(time.Minute):
		s.kill()
		t.Errorf("serve did not exit a minute after SIGTERM\n%s", s.stderr)
	}
}

// passRuns and passFailures count the passes the suite asked serve for and those that failed.
var passRuns, passFailures atomic.Int64

// retryPass runs a pass and, when it fails, up to two more, as the schedule would; when a delta
// pass still fails, a full pass, as the nightly one would. Each failure is counted and logged
// with the end of serve's log: it is a finding even when a retry succeeds.
func (s *server) retryPass(t testing.TB, ctx context.Context, full bool) error {
	t.Helper()
	var err error
	for i := range 4 {
		if i == 3 {
			full = true
		}
		passRuns.Add(1)
		if err = s.pass(ctx, full); err == nil {
			return nil
		}
		passFailures.Add(1)
		t.Logf("a pass failed (retrying): %v\nserve's log ends:\n%s", err, tail(s.stderr.String(), 1000))
	}
	return err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// pass asks serve for a pass through the admin API and waits for it (it queues behind one
// that runs).
func (s *server) pass(ctx context.Context, full bool) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/admin/v1/sync?full=%t", s.admin, full), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var res struct {
		Error string `json:"error"`
	}
	json.NewDecoder(resp.Body).Decode(&res)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pass: %s: %s", resp.Status, res.Error)
	}
	return nil
}

// pushStatus is the target's row of the running push workers' status, from the admin API.
func (s *server) pushStatus(ctx context.Context) (push.Status, error) {
	ts, err := admin.NewClient(strings.TrimPrefix(s.admin, "http://"), "").TargetsStatus(ctx)
	if err != nil {
		return push.Status{}, err
	}
	if !ts.Live || len(ts.Targets) == 0 {
		return push.Status{}, fmt.Errorf("targets status: live %v, %d rows", ts.Live, len(ts.Targets))
	}
	return ts.Targets[0], nil
}

// settle runs a pass, then waits until the push cursor reaches the journal head as of a
// status written after the pass, and stops serve cleanly.
func (s *server) settle(t testing.TB, timeout time.Duration) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := s.retryPass(t, ctx, false); err != nil {
		return err
	}
	after := time.Now()
	for {
		st, err := s.pushStatus(ctx)
		if err == nil && st.Time.After(after) && st.Cursor == st.JournalHead {
			s.stop(t)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("push did not catch up in %v (last status %+v, %v)", timeout, st, err)
		case <-s.exited:
			return errors.New("serve exited while settling: " + s.stderr.String())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
