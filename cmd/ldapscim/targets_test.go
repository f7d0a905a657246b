package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

func pushConfig(sc *testenv.Scimmy) string {
	return fmt.Sprintf(`[admin]
listen = ""
[[targets]]
name = "scimmy"
url = %q
token = %q
concurrency = 8
groups = true
poll_interval = "100ms"
backoff_base = "50ms"
backoff_max = "1s"
`, sc.URL, sc.Token)
}

// kill -9 of `ldapscim serve` in the middle of pushing 5k users, then a restart: the target
// ends up with exactly 5k users, none twice, and every group with its members once.
func TestKill9DuringPushCreatesNoDuplicates(t *testing.T) {
	const n = 5000
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: n, Groups: 10, Seed: 5})}})
	sc := testenv.StartScimmy(t)
	dir := t.TempDir()
	cfg := writeConfig(t, sl, dir, strings.Replace(pushConfig(sc), `listen = ""`, fmt.Sprintf("listen = %q", freeAddr(t)), 1))
	ctx := context.Background()

	serve := command(ctx, "serve", "--config", cfg)
	var serveErr bytes.Buffer
	serve.Stderr = &serveErr
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for len(sc.State(t).Users) < n/4 {
		if time.Now().After(deadline) {
			serve.Process.Kill()
			t.Fatalf("push did not get going; serve said:\n%s", serveErr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := serve.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = serve.Wait()
	before := len(sc.State(t).Users)
	t.Logf("killed with %d of %d users pushed", before, n)
	if before >= n {
		t.Fatal("the push finished before the kill; the test proves nothing")
	}

	serve = command(ctx, "serve", "--config", cfg)
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	for {
		if st := sc.State(t); len(st.Users) >= n && groupsDone(st) {
			break
		}
		if time.Now().After(deadline) {
			serve.Process.Kill()
			t.Fatalf("after the restart the target has %d users", len(sc.State(t).Users))
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything in flight lands
	// While serve runs, `targets status` asks its push workers (the admin API), which know
	// what the cache does not: delivered since start and their health.
	out, _, err := runCLI(t, "targets", "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "serve is running; its push workers report:") ||
		!regexp.MustCompile(`(?m)^scimmy +target +ok +\d+ +\d+ +[1-9]\d*`).MatchString(out) {
		t.Fatalf("targets status through serve: %v\n%s", err, out)
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := serve.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}

	st := sc.State(t)
	seen := map[string]bool{}
	for _, u := range st.Users {
		name := strings.ToLower(fmt.Sprint(u["userName"]))
		if seen[name] {
			t.Fatalf("user %s exists twice at the target", name)
		}
		seen[name] = true
	}
	if len(st.Users) != n {
		t.Fatalf("target has %d users, want exactly %d", len(st.Users), n)
	}
	for _, g := range st.Groups {
		ids := map[string]bool{}
		for _, m := range g["members"].([]any) {
			v := fmt.Sprint(m.(map[string]any)["value"])
			if ids[v] {
				t.Fatalf("group %v lists %s twice", g["displayName"], v)
			}
			ids[v] = true
		}
	}

	// The CLI sees the pushed state once serve is gone.
	out, _, err = runCLI(t, "targets", "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "serve is not running") || !strings.Contains(out, fmt.Sprint(n+len(st.Groups))) {
		t.Fatalf("targets status: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "targets", "deadletters", "list", "--config", cfg, "--target", "scimmy")
	if err != nil || !strings.Contains(out, "no dead letters") {
		t.Fatalf("deadletters list: %v\n%s", err, out)
	}
}

// groupsDone reports whether every group at the target has members (sampledata puts users in
// every group).
func groupsDone(st testenv.ScimmyState) bool {
	if len(st.Groups) == 0 {
		return false
	}
	for _, g := range st.Groups {
		if list, _ := g["members"].([]any); len(list) == 0 {
			return false
		}
	}
	return true
}

func TestTargetsAndAuditCommands(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 5, Groups: 1, Seed: 2})}})
	sc := testenv.StartScimmy(t)
	cfg := writeConfig(t, sl, t.TempDir(), pushConfig(sc))
	if _, _, err := runCLI(t, "sync", "--config", cfg); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "targets", "status", "--config", cfg)
	if err != nil || !strings.Contains(out, "scimmy") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if strings.Contains(out, sc.Token) {
		t.Fatal("status leaks the token")
	}
	out, _, err = runCLI(t, "check-config", "--config", cfg)
	if err != nil || strings.Contains(out, sc.Token) || !strings.Contains(out, `token = "<secret>"`) {
		t.Fatalf("check-config must hide the token: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"targets"}, {"targets", "deadletters", "list", "--config", cfg}, {"targets", "deadletters", "replay", "--config", cfg, "--target", "scimmy"}, {"audit", "--config", cfg}} {
		if _, _, err := runCLI(t, args...); err == nil || exitCode(err) != 2 {
			t.Errorf("%v: want a usage error, got %v", args, err)
		}
	}
	out, _, err = runCLI(t, "audit", "--config", cfg, "--resource", "no-such-id")
	if err != nil || !strings.Contains(out, "no history") {
		t.Fatalf("audit: %v\n%s", err, out)
	}
}
