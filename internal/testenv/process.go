package testenv

import (
	"bytes"
	"fmt"
	"os/exec"
	"sync"
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
