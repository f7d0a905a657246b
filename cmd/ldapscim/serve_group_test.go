package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// waitExit waits up to d for cmd to exit and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, d time.Duration, stderr *testenv.Output) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		t.Fatalf("serve still runs after %v:\n%s", d, stderr)
		return -1
	}
}

// A component that fails stops the others: the SCIM API cannot load its certificate, so serve
// stops its admin server, schedule and push workers and exits 1 with the API's error.
func TestServeStopsWhenAComponentFails(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 10, Groups: 1, Seed: 6})}})
	sc := testenv.StartScimmy(t)
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	adminAddr, apiAddr := freeAddr(t), freeAddr(t)
	cfg := writeConfig(t, sl, dir, fmt.Sprintf(`[admin]
listen = %q
[scim]
listen = %q
base_url = "https://%s/scim/v2"
tls_cert_file = %q
tls_key_file = %q
[[scim.tokens]]
name = "t"
token_sha256 = %q
[[targets]]
name = "scimmy"
url = %q
token = %q
poll_interval = "100ms"
`, adminAddr, apiAddr, apiAddr, cert, cert, strings.Repeat("0", 64), sc.URL, sc.Token))
	cmd, stderr := startServe(t, cfg)
	if code := waitExit(t, cmd, 20*time.Second, stderr); code != 1 {
		t.Fatalf("serve exited %d, want 1:\n%s", code, stderr)
	}
	last := strings.TrimSpace(stderr.String())
	last = last[strings.LastIndex(last, "\n")+1:]
	if !strings.HasPrefix(last, "ldapscim: scim api: loading TLS certificate") {
		t.Errorf("serve's error is not the API's: %q\n%s", last, stderr)
	}
	if _, err := http.Get("http://" + adminAddr + "/healthz"); err == nil {
		t.Errorf("the admin server still answers after serve exited")
	}
}

// SIGTERM stops every component and serve exits 0. When the default admin address is taken,
// serve runs without the admin server and says so.
func TestServeWithoutAdminWhenDefaultAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", admin.DefaultListen)
	if err == nil { // else it is in use already, which is what the test wants
		defer ln.Close()
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 10, Groups: 1, Seed: 7})}})
	sc := testenv.StartScimmy(t)
	dir := t.TempDir()
	apiAddr := freeAddr(t)
	cfg := writeConfig(t, sl, dir, fmt.Sprintf(`[scim]
listen = %q
base_url = "http://%s/scim/v2"
[[scim.tokens]]
name = "t"
token_sha256 = %q
[[targets]]
name = "scimmy"
url = %q
token = %q
poll_interval = "100ms"
`, apiAddr, apiAddr, strings.Repeat("0", 64), sc.URL, sc.Token))
	cmd, stderr := startServe(t, cfg)
	deadline := time.Now().Add(30 * time.Second)
	for len(sc.State(t).Users) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing pushed in 30 s:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "admin server off: its default address is in use") {
		t.Errorf("serve does not say the admin server is off:\n%s", stderr)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 15*time.Second, stderr); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM, want 0:\n%s", code, stderr)
	}
	if _, err := http.Get("http://" + apiAddr + "/scim/v2/ServiceProviderConfig"); err == nil {
		t.Errorf("the SCIM API still answers after serve exited")
	}
}
