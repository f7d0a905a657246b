package testenv

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// BuildLdapscim builds the real binary (`go build ./cmd/ldapscim`, not a test binary acting as
// it) into t.TempDir() and returns its path.
func BuildLdapscim(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// go test puts its own GOROOT/bin first in the PATH of the test binary.
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("testenv: the go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "ldapscim")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/ldapscim")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: go build ./cmd/ldapscim: %v\n%s", err, out)
	}
	return bin
}

// FreeAddr returns "127.0.0.1:PORT" with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// Freeze stops slapd with SIGSTOP: connections stay open and nothing answers, as with a hung
// server or a long GC pause. Thaw resumes it.
func (s *Slapd) Freeze(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP)
}

// Thaw resumes a frozen slapd with SIGCONT.
func (s *Slapd) Thaw(t testing.TB) {
	t.Helper()
	s.signal(t, syscall.SIGCONT)
}

func (s *Slapd) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if s.proc == nil {
		t.Fatalf("testenv: slapd is not running")
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testenv: signalling slapd: %v", err)
	}
}

// Start starts a stopped or killed slapd again on the same ports with the same data.
func (s *Slapd) Start(t testing.TB) {
	t.Helper()
	if s.proc != nil {
		t.Fatalf("testenv: slapd is already running")
	}
	if err := s.start(findSlapd(t)); err != nil {
		t.Fatalf("testenv: slapd did not start again: %v\nslapd stderr:\n%s", err, s.stderr.String())
	}
}
