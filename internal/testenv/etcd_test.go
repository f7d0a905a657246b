package testenv

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// etcdPut writes key=value through member m's JSON gateway (etcd 3.4: /v3/kv/put, with
// base64 key and value) and reports the error.
func etcdPut(m *EtcdMember, key, value string) error {
	body := fmt.Sprintf(`{"key":%q,"value":%q}`, b64(key), b64(value))
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Post(m.ClientURL+"/v3/kv/put", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("put: %d %s", resp.StatusCode, b)
	}
	return nil
}

// etcdPutWithin retries etcdPut for up to d: after a leader member stops, the others need an
// election timeout or two before they take writes again.
func etcdPutWithin(m *EtcdMember, key, value string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := etcdPut(m, key, value)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestStartEtcd(t *testing.T) {
	t.Parallel()
	e := StartEtcd(t, 3)
	if len(e.Endpoints) != 3 || len(e.Members) != 3 {
		t.Fatalf("endpoints %v, members %d", e.Endpoints, len(e.Members))
	}
	for _, ep := range e.Endpoints {
		u, err := url.Parse(ep)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Fatalf("endpoint %q is not on 127.0.0.1", ep)
		}
	}
	if err := etcdPut(e.Members[0], "/k", "v"); err != nil {
		t.Fatalf("write on a healthy cluster: %v", err)
	}

	// One member paused or stopped: the other two keep a quorum and take writes.
	e.Pause(t, 0)
	if err := etcdPutWithin(e.Members[1], "/k", "paused", 15*time.Second); err != nil {
		t.Fatalf("write with n1 paused: %v", err)
	}
	e.Resume(t, 0)
	e.Stop(t, 2)
	if err := etcdPutWithin(e.Members[1], "/k", "stopped", 15*time.Second); err != nil {
		t.Fatalf("write with n3 stopped: %v", err)
	}

	// Two of three gone: no quorum, no write.
	e.Kill(t, 1)
	if err := etcdPut(e.Members[0], "/k", "no quorum"); err == nil {
		t.Fatalf("a write succeeded with two of three members down")
	}

	// Back: the restarted members rejoin with their data and the cluster takes writes again.
	e.Start(t, 1)
	e.Start(t, 2)
	e.WaitHealthy(t)
	if err := etcdPutWithin(e.Members[2], "/k", "again", 15*time.Second); err != nil {
		t.Fatalf("write after the restart: %v", err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
