package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// adminLDIF is ou=people with n users uid=u00.. and ou=groups with one group of all of them.
func adminLDIF(t *testing.T, n int) string {
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=u%02d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%02d\ncn: User %02d\nsn: %02d\n\n", i, i, i, i)
	}
	p := filepath.Join(t.TempDir(), "admin.ldif")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// adminConfig writes a config whose serve holds at most 2 deletions, with [admin] as given.
func adminConfig(t *testing.T, sl *testenv.Slapd, dir, cacheDir, adminSection string) string {
	t.Helper()
	pw := filepath.Join(dir, "bind.pw")
	os.WriteFile(pw, []byte(sl.RootPassword), 0o600)
	cfg := fmt.Sprintf(`[cache]
dir = %q
[log]
level = "warn"
[ldap]
url = %q
bind_dn = %q
bind_password_file = %q
[ldap.users]
base_dn = "ou=people,%s"
[ldap.groups]
base_dn = "ou=groups,%s"
[schedule]
delta = "@every 1h"
full = ""
[safety]
max_deletes = 2
max_delete_percent = 100.0
%s`, cacheDir, sl.URL, sl.RootDN, pw, sl.BaseDN, sl.BaseDN, adminSection)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCLIUsesTheRunningServe: while `serve` holds the cache (Badger allows one process),
// `sync` and `deletes list|approve` go through its admin API with the token from token_file,
// print what they print without it, and never act on another serve's cache.
func TestCLIUsesTheRunningServe(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{adminLDIF(t, 20)}})
	dir := t.TempDir()
	addr := freeAddr(t)
	tok := filepath.Join(dir, "admin.token")
	os.WriteFile(tok, []byte("cli-admin-token\n"), 0o600)
	cfg := adminConfig(t, sl, dir, filepath.Join(dir, "cache"), fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\nallow_loopback = false\n", addr, tok))

	cmd, stderr := startServe(t, cfg)
	waitReady(t, "http://"+addr, "cli-admin-token", stderr)

	out, _, err := runCLI(t, "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "delta pass") || !strings.Contains(out, "created 0") {
		t.Fatalf("sync through serve: %v\n%s\nserve:\n%s", err, out, stderr.String())
	}
	for _, u := range []string{"u17", "u18", "u19"} {
		sl.Modify(t, "dn: uid="+u+",ou=people,dc=example,dc=com\nchangetype: delete\n")
	}
	out, _, err = runCLI(t, "sync", "--config", cfg, "--full")
	if err != nil || !strings.HasPrefix(out, "full pass") || !strings.Contains(out, "held 3") || !strings.Contains(out, "changes are held") {
		t.Fatalf("full sync through serve: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "ID  ") || !strings.Contains(out, "uid=u18,ou=people,dc=example,dc=com") ||
		!strings.Contains(out, "3 held. Apply with: ldapscim deletes approve --config "+cfg+" --all") {
		t.Fatalf("deletes list through serve: %v\n%s", err, out)
	}
	id := regexp.MustCompile(`(?m)^([0-9a-f-]{36}) .*uid=u17,`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("no id for u17 in:\n%s", out)
	}
	if _, _, err = runCLI(t, "deletes", "approve", "--config", cfg, "no-such-id"); err == nil || !strings.Contains(err.Error(), "not held: no-such-id") {
		t.Fatalf("approve an unknown id: %v", err)
	}
	out, _, err = runCLI(t, "deletes", "approve", "--config", cfg, id[1])
	if err != nil || out != "approved: deleted 1, deactivated 0, removed 0 group member(s)\n" {
		t.Fatalf("approve one through serve: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "deletes", "approve", "--config", cfg, "--all")
	if err != nil || out != "approved: deleted 2, deactivated 0, removed 0 group member(s)\n" {
		t.Fatalf("approve all through serve: %v\n%s", err, out)
	}
	// audit reads a person's history through serve as well: u17 was created, then deleted.
	out, _, err = runCLI(t, "audit", "--config", cfg, "--resource", id[1])
	if err != nil || !regexp.MustCompile(`(?s)sync +created .*sync +deleted `).MatchString(out) {
		t.Fatalf("audit through serve: %v\n%s", err, out)
	}
	// So do dead letters; this serve pushes nowhere, so the target is unknown to the CLI.
	if _, _, err = runCLI(t, "targets", "deadletters", "list", "--config", cfg, "--target", "nowhere"); err == nil ||
		!strings.Contains(err.Error(), `no [[targets]] or [[webhooks]] entry named "nowhere"`) {
		t.Fatalf("dead letters of an unknown target: %v", err)
	}

	// Without the token the serve refuses, and the cache is locked: the error says both.
	noTok := adminConfig(t, sl, t.TempDir(), filepath.Join(dir, "cache"), fmt.Sprintf("[admin]\nlisten = %q\n", addr))
	_, _, err = runCLI(t, "deletes", "list", "--config", noTok)
	if err == nil || !strings.Contains(err.Error(), "refused this command") || !strings.Contains(err.Error(), "401") ||
		!strings.Contains(err.Error(), "in use by another process") || !strings.Contains(err.Error(), "is `ldapscim serve` running on it?") {
		t.Fatalf("without the token: %v", err)
	}
	// A config for another cache ignores this serve and opens its own cache.
	other := adminConfig(t, sl, t.TempDir(), filepath.Join(t.TempDir(), "cache"), fmt.Sprintf("[admin]\nlisten = %q\ntoken_file = %q\n", addr, tok))
	out, _, err = runCLI(t, "deletes", "list", "--config", other)
	if err != nil || out != "no held deletions\n" {
		t.Fatalf("another cache: %v\n%s", err, out)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exited with %v; stderr:\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "cli-admin-token") {
		t.Errorf("the admin token is logged:\n%s", stderr.String())
	}
	// With serve gone, the same commands open the cache directly.
	out, _, err = runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil || out != "no held deletions\n" {
		t.Fatalf("after serve stopped: %v\n%s", err, out)
	}
}

// waitReady waits for serve's first pass (waitReadyz), and checks /healthz and that /metrics
// wants the token (allow_loopback = false).
func waitReady(t *testing.T, base, token string, stderr *testenv.Output) {
	t.Helper()
	waitReadyz(t, base, stderr)
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	resp.Body.Close()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("metrics without the token (allow_loopback = false): %v %v", err, resp)
	}
	resp.Body.Close()
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics with the token: %v %v", err, resp)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "\nldapscim_build_info{") {
		t.Fatal("/metrics lacks ldapscim_build_info")
	}
}

// waitReadyz polls /readyz (no token needed) until serve's first pass is in.
func waitReadyz(t *testing.T, base string, stderr *testenv.Output) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var rd map[string]any
			json.NewDecoder(resp.Body).Decode(&rd)
			resp.Body.Close()
			if resp.StatusCode == 200 && rd["ready"] == true {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve never became ready; stderr:\n%s", stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
