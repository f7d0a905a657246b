package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
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
	waitStopped(t, "slapd", s.proc.cmd.Process.Pid)
}

// waitStopped waits until the kernel reports every thread of pid stopped: kill(2) returns
// before a SIGSTOP takes effect, and on a busy machine the process could still answer a
// request or two.
func waitStopped(t testing.TB, name string, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !stopped(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("testenv: %s did not stop within 5 s of SIGSTOP", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stopped reports whether every thread of pid is in the stopped state (/proc/PID/task/*/stat).
func stopped(pid int) bool {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
		if err != nil {
			return false
		}
		// The state follows the command name in parentheses: "pid (slapd) T ...".
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
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
