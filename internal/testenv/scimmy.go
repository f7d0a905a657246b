package testenv

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed scimmy/server.cjs
var scimmyServer []byte

// ScimmyModulesEnv overrides where the SCIMMY target's node_modules are looked for.
const ScimmyModulesEnv = "LDAPSCIM_SCIMMY_MODULES"

const scimmyHint = "run `make test` (it installs it) or `scripts/install-deps.sh scimmy`"

// Scimmy is a running SCIMMY SCIM service provider (npm scimmy 1.3.5 + scimmy-routers 1.3.2 +
// express 4) with an in-memory store: a real third-party push target. Fields are read-only.
type Scimmy struct {
	URL   string // base URL of the SCIM API: http://127.0.0.1:PORT/scim/v2
	Token string // the bearer token it accepts
	root  string // http://127.0.0.1:PORT
	proc  *exec.Cmd
	done  chan struct{}
}

// ScimmyState is everything the target holds.
type ScimmyState struct {
	Users  []map[string]any `json:"users"`
	Groups []map[string]any `json:"groups"`
	Stats  struct {
		Requests int `json:"requests"`
		Created  int `json:"created"`
	} `json:"stats"`
}

// StartScimmy starts a SCIMMY target on a free 127.0.0.1 port and stops it in t.Cleanup. It
// fails the test, saying how to install them, when node or the npm packages are missing.
func StartScimmy(t testing.TB) *Scimmy {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found: install Node.js (apt-get install nodejs npm), then %s", scimmyHint)
	}
	modules := scimmyModules(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "server.cjs")
	if err := os.WriteFile(script, scimmyServer, 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Scimmy{Token: "scimmy-test-token", done: make(chan struct{})}
	s.proc = exec.Command(node, script)
	s.proc.Env = append(os.Environ(), "NODE_PATH="+modules, "PORT=0", "TOKEN="+s.Token)
	stderr := &Output{}
	s.proc.Stderr = stderr
	out, err := s.proc.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.proc.Start(); err != nil {
		t.Fatalf("starting SCIMMY: %v", err)
	}
	go func() { _ = s.proc.Wait(); close(s.done) }()
	t.Cleanup(s.stop)
	port, err := readPort(out, s.done)
	if err != nil {
		t.Fatalf("SCIMMY did not start: %v\n%s", err, stderr.String())
	}
	s.root = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.URL = s.root + "/scim/v2"
	return s
}

// readPort waits for the server's "listening PORT" line.
func readPort(out io.Reader, done <-chan struct{}) (int, error) {
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		var port int
		if !ok {
			return 0, errors.New("server exited before listening")
		}
		if _, err := fmt.Sscanf(l, "listening %d", &port); err != nil {
			return 0, fmt.Errorf("unexpected first line %q", l)
		}
		return port, nil
	case <-done:
		return 0, errors.New("server exited")
	case <-time.After(readyTimeout):
		return 0, errors.New("not listening after " + readyTimeout.String())
	}
}

func (s *Scimmy) stop() {
	_ = s.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		_ = s.proc.Process.Kill()
		<-s.done
	}
}

// State returns everything the target holds.
func (s *Scimmy) State(t testing.TB) ScimmyState {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.root+"/_state", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SCIMMY state: %v", err)
	}
	defer resp.Body.Close()
	var st ScimmyState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("SCIMMY state: %v", err)
	}
	return st
}

// scimmyModules finds the node_modules directory that holds scimmy, scimmy-routers and
// express: $LDAPSCIM_SCIMMY_MODULES, else .cache/scimmy/node_modules in the repository.
func scimmyModules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(ScimmyModulesEnv)
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("SCIMMY: %v", err)
		}
		dir = filepath.Join(root, ".cache", "scimmy", "node_modules")
	}
	for _, pkg := range []string{"scimmy", "scimmy-routers", "express"} {
		if _, err := os.Stat(filepath.Join(dir, pkg, "package.json")); err != nil {
			t.Fatalf("SCIMMY target: npm package %s not found in %s: %s", pkg, dir, scimmyHint)
		}
	}
	return dir
}

// repoRoot is the directory with go.mod above the working directory (tests run in their
// package's directory).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || strings.TrimSpace(parent) == "" {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// ScimmyStats are the target's counters: requests served (all of them, errors too) and
// resources created.
type ScimmyStats struct {
	Requests int `json:"requests"`
	Created  int `json:"created"`
}

// Stats returns the target's counters without its content, cheap enough to poll; polling
// it does not count as a request.
func (s *Scimmy) Stats() (ScimmyStats, error) {
	var st ScimmyStats
	req, _ := http.NewRequest(http.MethodGet, s.root+"/_stats", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}
