package testenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitReady waits, after cmd started, until ping answers, polling every poll for up to ready.
// It returns a channel closed when cmd exits (nil if cmd has already exited); when ping never
// answers in time it kills cmd and waits for it.
func waitReady(cmd *exec.Cmd, ping func() error, ready, poll time.Duration) (<-chan struct{}, error) {
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(ready)
	for {
		err := ping()
		if err == nil {
			return exited, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("%s exited: %v", cmd.Path, cmd.ProcessState)
		case <-time.After(poll):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("not ready after %v: %v", ready, err)
		}
	}
}

// process is a running server: its command and a channel closed when it exits.
type process struct {
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// stop sends SIGTERM and waits for the exit, killing the process after stopTimeout; it reports
// whether p was running.
func (p *process) stop(t testing.TB, name string) bool {
	if p == nil {
		return false
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Errorf("testenv: %s did not exit %v after SIGTERM; killing it", name, stopTimeout)
		p.kill()
	}
	return true
}

// kill stops p at once, as a crash would, and waits for the exit.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// Output collects a child process's output: exec copies into it from another goroutine while a
// test reads it.
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}
