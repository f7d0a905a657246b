package testenv

import (
	"encoding/json"
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

const etcdHint = "run `make test` (it installs it) or `scripts/install-deps.sh etcd`"

// etcdReadyTimeout is how long a cluster gets to elect a raft leader; 2–4 s is usual here, but
// three members on two busy cores can take longer.
const etcdReadyTimeout = 30 * time.Second

// Etcd is a private etcd cluster (Debian etcd-server 3.4): one process per member, each on its
// own free 127.0.0.1 client and peer ports with its data in t.TempDir(). Fields are read-only.
type Etcd struct {
	// Endpoints are the members' client URLs (http://127.0.0.1:PORT), in member order.
	Endpoints []string
	Members   []*EtcdMember
	bin       string
}

// EtcdMember is one member of an Etcd cluster.
type EtcdMember struct {
	Name      string // n1, n2, ...
	ClientURL string // http://127.0.0.1:PORT
	PeerURL   string // http://127.0.0.1:PORT
	Dir       string // data directory
	args      []string
	proc      *process // nil when not running
	paused    bool
	stderr    *Output
}

// StartEtcd starts a cluster of members etcd processes and stops them in t.Cleanup. It fails
// the test if etcd is not installed or the cluster is not healthy (every member answers
// /health with a raft leader) within 30 s. Members can be stopped, killed and paused one at a
// time to test what a client does when the cluster loses a member or its quorum.
func StartEtcd(t testing.TB, members int) *Etcd {
	t.Helper()
	if members < 1 {
		t.Fatalf("testenv: StartEtcd needs at least one member, got %d", members)
	}
	e := &Etcd{bin: findEtcd(t)}
	t.Cleanup(func() {
		for _, m := range e.Members {
			m.cleanup(t)
		}
	})
	dir := t.TempDir()
	// A port picked free can be taken before etcd binds it; retry the whole cluster on new ones.
	for attempt := 1; ; attempt++ {
		err := e.start(t, dir, members, attempt)
		if err == nil {
			return e
		}
		busy := strings.Contains(e.output(), "address already in use")
		for _, m := range e.Members {
			m.cleanup(t)
		}
		if attempt == 3 || !busy {
			t.Fatalf("testenv: etcd cluster did not start: %v\n%s", err, e.output())
		}
	}
}

func findEtcd(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/etcd"); err == nil {
		return "/usr/bin/etcd"
	}
	t.Fatalf("etcd not found: %s", etcdHint)
	return ""
}

// start configures members fresh members in dir/attemptN and waits until all are healthy.
func (e *Etcd) start(t testing.TB, dir string, members, attempt int) error {
	t.Helper()
	e.Members, e.Endpoints = nil, nil
	var cluster []string
	for i := 1; i <= members; i++ {
		m := &EtcdMember{
			Name:      fmt.Sprintf("n%d", i),
			ClientURL: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			PeerURL:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
			Dir:       filepath.Join(dir, fmt.Sprintf("attempt%d", attempt), fmt.Sprintf("n%d", i)),
		}
		e.Members = append(e.Members, m)
		e.Endpoints = append(e.Endpoints, m.ClientURL)
		cluster = append(cluster, m.Name+"="+m.PeerURL)
	}
	token := fmt.Sprintf("ldapscim-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	for _, m := range e.Members {
		m.args = []string{
			"--name", m.Name, "--data-dir", m.Dir,
			"--listen-client-urls", m.ClientURL, "--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL, "--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", token,
			"--log-level", "warn", "--logger", "zap",
		}
		if err := m.spawn(e.bin); err != nil {
			return fmt.Errorf("%s: %w", m.Name, err)
		}
	}
	return e.waitHealthy(etcdReadyTimeout)
}

// WaitHealthy waits until every running, unpaused member reports a raft leader.
func (e *Etcd) WaitHealthy(t testing.TB) {
	t.Helper()
	if err := e.waitHealthy(etcdReadyTimeout); err != nil {
		t.Fatalf("testenv: etcd not healthy: %v\n%s", err, e.output())
	}
}

func (e *Etcd) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		for _, m := range e.Members {
			if m.proc == nil || m.paused {
				continue
			}
			select {
			case <-m.proc.exited:
				return fmt.Errorf("%s exited: %v", m.Name, m.proc.cmd.ProcessState)
			default:
			}
			if err = m.health(); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// health asks the member's /health endpoint, which says true only while it sees a raft leader.
func (m *EtcdMember) health() error {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(m.ClientURL + "/health")
	if err != nil {
		return fmt.Errorf("%s: %w", m.Name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"health":"true"`) {
		return fmt.Errorf("%s: /health answered %d %s", m.Name, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

func (m *EtcdMember) spawn(bin string) error {
	m.stderr = &Output{}
	cmd := exec.Command(bin, m.args...)
	cmd.Stdout = m.stderr
	cmd.Stderr = m.stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	m.proc = &process{cmd: cmd, exited: exited}
	m.paused = false
	return nil
}

func (e *Etcd) output() string {
	var b strings.Builder
	for _, m := range e.Members {
		if m.stderr != nil {
			fmt.Fprintf(&b, "--- etcd %s output:\n%s", m.Name, m.stderr.String())
		}
	}
	return b.String()
}

func (m *EtcdMember) cleanup(t testing.TB) {
	if m.proc == nil {
		return
	}
	if m.paused {
		m.proc.cmd.Process.Signal(syscall.SIGCONT)
	}
	m.proc.stop(t, "etcd "+m.Name)
	m.proc = nil
}

func (e *Etcd) member(t testing.TB, i int) *EtcdMember {
	t.Helper()
	if i < 0 || i >= len(e.Members) {
		t.Fatalf("testenv: no etcd member %d (cluster of %d)", i, len(e.Members))
	}
	return e.Members[i]
}

// Stop sends SIGTERM to member i (0-based) and waits for it to exit. Its data stays.
func (e *Etcd) Stop(t testing.TB, i int) {
	t.Helper()
	m := e.member(t, i)
	if m.proc == nil {
		t.Fatalf("testenv: etcd %s is not running", m.Name)
	}
	m.cleanup(t)
}

// Kill stops member i at once with SIGKILL, as a crash would.
func (e *Etcd) Kill(t testing.TB, i int) {
	t.Helper()
	m := e.member(t, i)
	if m.proc == nil {
		t.Fatalf("testenv: etcd %s is not running", m.Name)
	}
	m.proc.kill()
	m.proc = nil
}

// Start starts a stopped or killed member i again with its data; it rejoins the cluster. It
// does not wait for health: call WaitHealthy when the test needs it.
func (e *Etcd) Start(t testing.TB, i int) {
	t.Helper()
	m := e.member(t, i)
	if m.proc != nil {
		t.Fatalf("testenv: etcd %s is already running", m.Name)
	}
	if err := m.spawn(e.bin); err != nil {
		t.Fatalf("testenv: etcd %s did not start again: %v", m.Name, err)
	}
}

// Pause stops member i with SIGSTOP: its connections stay open and nothing answers, as with a
// hung VM. Resume continues it.
func (e *Etcd) Pause(t testing.TB, i int) {
	t.Helper()
	m := e.member(t, i)
	if m.proc == nil || m.paused {
		t.Fatalf("testenv: etcd %s is not running or already paused", m.Name)
	}
	if err := m.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("testenv: pausing etcd %s: %v", m.Name, err)
	}
	m.paused = true
	waitStopped(t, "etcd "+m.Name, m.proc.cmd.Process.Pid)
}

// Resume continues member i after Pause with SIGCONT.
func (e *Etcd) Resume(t testing.TB, i int) {
	t.Helper()
	m := e.member(t, i)
	if m.proc == nil || !m.paused {
		t.Fatalf("testenv: etcd %s is not paused", m.Name)
	}
	if err := m.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("testenv: resuming etcd %s: %v", m.Name, err)
	}
	m.paused = false
}

// RaftLeader returns the index of the member that is the raft leader now, asking each running,
// unpaused member's /v3/maintenance/status; it fails the test when none answers with one.
func (e *Etcd) RaftLeader(t testing.TB) int {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	for _, m := range e.Members {
		if m.proc == nil || m.paused {
			continue
		}
		resp, err := c.Post(m.ClientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
		if err != nil {
			continue
		}
		var st struct {
			Header struct {
				MemberID string `json:"member_id"`
			} `json:"header"`
			Leader string `json:"leader"`
		}
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Leader == "" || st.Leader == "0" {
			continue
		}
		for i, o := range e.Members {
			if o.proc == nil || o.paused {
				continue
			}
			resp, err := c.Post(o.ClientURL+"/v3/maintenance/status", "application/json", strings.NewReader("{}"))
			if err != nil {
				continue
			}
			var ost struct {
				Header struct {
					MemberID string `json:"member_id"`
				} `json:"header"`
			}
			err = json.NewDecoder(resp.Body).Decode(&ost)
			resp.Body.Close()
			if err == nil && ost.Header.MemberID == st.Leader {
				return i
			}
		}
	}
	t.Fatalf("testenv: no etcd member names a running raft leader")
	return -1
}
