package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// TestMain lets the test binary act as ldapscim itself, so tests can run, signal and kill -9
// the real program without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("LDAPSCIM_TEST_BE_MAIN") == "1" {
		// Profiles for `make bench` investigations: LDAPSCIM_TEST_CPUPROFILE=FILE.
		if path := os.Getenv("LDAPSCIM_TEST_CPUPROFILE"); path != "" {
			f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
			if err == nil && pprof.StartCPUProfile(f) == nil {
				defer func() { pprof.StopCPUProfile(); f.Close(); os.Exit(0) }()
			}
		}
		// LDAPSCIM_TEST_HEAPPROFILE=PREFIX writes a heap profile every 400 ms to PREFIX.0,
		// PREFIX.1, ...: what is live at the peak of a run, not only at its end.
		if path := os.Getenv("LDAPSCIM_TEST_HEAPPROFILE"); path != "" {
			go func() {
				for i := 0; ; i++ {
					time.Sleep(400 * time.Millisecond)
					f, err := os.Create(fmt.Sprintf("%s.%d", path, i))
					if err != nil {
						return
					}
					pprof.WriteHeapProfile(f)
					f.Close()
				}
			}()
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// command returns an exec.Cmd that runs ldapscim with args.
func command(ctx context.Context, args ...string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = append(os.Environ(), "LDAPSCIM_TEST_BE_MAIN=1")
	return cmd
}

// startServe starts `ldapscim serve --config cfg`, its stderr collected; it is killed when the
// test ends if it still runs.
func startServe(t testing.TB, cfg string) (*exec.Cmd, *testenv.Output) {
	t.Helper()
	stderr := &testenv.Output{}
	cmd := command(context.Background(), "serve", "--config", cfg)
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stderr
}

// writeConfig writes a config for sl with the cache in dir and returns its path.
func writeConfig(t testing.TB, sl *testenv.Slapd, dir string, extra string) string {
	t.Helper()
	pw := filepath.Join(dir, "bind.pw")
	if err := os.WriteFile(pw, []byte(sl.RootPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[cache]
dir = %q
[log]
level = "warn"
[ldap]
url = %q
bind_dn = %q
bind_password_file = %q
timeout = "10s"
[ldap.users]
base_dn = "ou=people,%s"
[ldap.groups]
base_dn = "ou=groups,%s"
[safety]
max_deletes = 100000
max_delete_percent = 100.0
%s`, filepath.Join(dir, "cache"), sl.URL, sl.RootDN, pw, sl.BaseDN, sl.BaseDN, extra)
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	err = run(context.Background(), args, &o, &e)
	return o.String(), e.String(), err
}

func TestCheckConfig(t *testing.T) {
	out, _, err := runCLI(t, "check-config", "--config", "../../config.toml.example")
	if err != nil || !strings.Contains(out, "is valid") || !strings.Contains(out, `page_size = 5000`) {
		t.Fatalf("check-config of the example: %v\n%s", err, out)
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[ldap]\nurl = \"http://x\"\nbind_dn = \"cn=a\"\nbind_password = \"s3cret-value\"\nshoe = 1\n"), 0o600)
	_, _, err = runCLI(t, "check-config", "--config", bad)
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("bad config: err %v, exit %d; want exit 2", err, exitCode(err))
	}
	for _, want := range []string{"ldap.shoe: unknown key", `scheme "http"`, "ldap.users.base_dn: is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret-value") {
		t.Fatal("error leaks the password")
	}
	good := filepath.Join(dir, "good.toml")
	os.WriteFile(good, []byte("[cache]\ndir=\"/tmp/x\"\n[ldap]\nurl = \"ldap://h\"\nbind_dn = \"cn=a\"\nbind_password = \"s3cret-value\"\n[ldap.users]\nbase_dn=\"dc=x\"\n[ldap.groups]\nbase_dn=\"dc=x\"\n"), 0o600)
	out, _, err = runCLI(t, "check-config", "--config", good)
	if err != nil || strings.Contains(out, "s3cret-value") || !strings.Contains(out, `bind_password = "<secret>"`) {
		t.Fatalf("effective config must show <secret>: %v\n%s", err, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"sync"}, {"deletes"}, {"deletes", "approve", "--config", "x"}} {
		_, _, err := runCLI(t, args...)
		if err == nil || exitCode(err) != 2 {
			t.Errorf("%v: err %v, exit %d; want a usage error", args, err, exitCode(err))
		}
	}
}

func TestSyncAndDeletesCommands(t *testing.T) {
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 50, Groups: 5, Seed: 3})}})
	cfg := writeConfig(t, sl, t.TempDir(), "")
	out, _, err := runCLI(t, "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "full pass") || !strings.Contains(out, "created 55") {
		t.Fatalf("first sync: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "sync", "--config", cfg)
	if err != nil || !strings.Contains(out, "delta pass") || !strings.Contains(out, "created 0") {
		t.Fatalf("second sync: %v\n%s", err, out)
	}
	out, _, err = runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "no held deletions") {
		t.Fatalf("deletes list: %v\n%s", err, out)
	}
	// A directory that cannot be reached: exit status 1 and a message naming it.
	sl.Stop(t)
	_, _, err = runCLI(t, "sync", "--config", cfg)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("sync against a stopped server: %v", err)
	}
	var ee *exec.ExitError
	_ = errors.As(err, &ee)
}
