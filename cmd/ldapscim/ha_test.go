package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// replica is one `serve` of an HA test: its process, its log and its admin address.
type replica struct {
	name   string
	admin  string
	cmd    *exec.Cmd
	stderr *testenv.Output
}

// readiness reads the replica's /readyz body (200 or 503 alike); ok is false when it does not
// answer.
func (r *replica) readiness() (admin.Readiness, bool) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + r.admin + "/readyz")
	if err != nil {
		return admin.Readiness{}, false
	}
	defer resp.Body.Close()
	var rd admin.Readiness
	if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
		return admin.Readiness{}, false
	}
	return rd, true
}

// waitLeader waits up to d until exactly one of the live replicas says it leads and every
// other names it, and returns it.
func waitLeader(t *testing.T, live []*replica, d time.Duration) *replica {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		var leaders []*replica
		named := map[string]int{}
		for _, r := range live {
			rd, ok := r.readiness()
			if !ok {
				continue
			}
			if rd.HA.Role == "leader" {
				leaders = append(leaders, r)
			}
			named[rd.HA.Leader]++
		}
		if len(leaders) == 1 && named[leaders[0].name] == len(live) {
			return leaders[0]
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, r := range live {
				rd, _ := r.readiness()
				fmt.Fprintf(&b, "%s: %+v\n%s\n", r.name, rd.HA, r.stderr)
			}
			t.Fatalf("no single leader named by all after %v:\n%s", d, b.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two serve replicas, each with its own cache, on one directory, one SCIMMY target and a
// 3-member etcd: exactly one leads and pushes, the target gets each user once; the leader is
// killed with -9, a user changes in the directory, and the other replica pushes the change
// within lease_ttl + 5 s + its delta schedule.
func TestHATwoReplicasFailover(t *testing.T) {
	const users = 20
	const ttl = 3 * time.Second
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: users, Groups: 2, Seed: 14})}})
	sc := testenv.StartScimmy(t)
	etcd := testenv.StartEtcd(t, 3)
	endpoints, _ := json.Marshal(etcd.Endpoints)
	var reps []*replica
	for _, name := range []string{"replica-a", "replica-b"} {
		r := &replica{name: name, admin: freeAddr(t)}
		cfg := writeConfig(t, sl, t.TempDir(), fmt.Sprintf(`[schedule]
delta = "@every 1s"
full = ""
[admin]
listen = %q
[ha]
etcd_endpoints = %s
election = "/ldapscim-test/pusher"
lease_ttl = %q
node = %q
[[targets]]
name = "scimmy"
url = %q
token = %q
poll_interval = "100ms"
`, r.admin, endpoints, ttl.String(), name, sc.URL, sc.Token))
		r.cmd, r.stderr = startServe(t, cfg)
		reps = append(reps, r)
	}
	leader := waitLeader(t, reps, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for len(sc.State(t).Users) < users {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d users pushed in 30 s:\n%s", len(sc.State(t).Users), users, leader.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a second pusher, if there were one, would duplicate by now
	state := sc.State(t)
	seen := map[string]int{}
	for _, u := range state.Users {
		seen[fmt.Sprint(u["userName"])]++
	}
	if len(state.Users) != users || len(seen) != users {
		t.Fatalf("the target holds %d users, %d distinct user names: %v", len(state.Users), len(seen), seen)
	}
	if state.Stats.Created != len(state.Users)+len(state.Groups) {
		t.Errorf("the target created %d resources for %d users and %d groups", state.Stats.Created, len(state.Users), len(state.Groups))
	}

	// kill -9 the leader, then change a user: the follower takes over and pushes it.
	var follower *replica
	for _, r := range reps {
		if r != leader {
			follower = r
		}
	}
	name := fmt.Sprint(state.Users[0]["userName"])
	killed := time.Now()
	leader.cmd.Process.Kill()
	leader.cmd.Wait()
	sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Failover Tester\n", name, sl.BaseDN))
	limit := ttl + 5*time.Second + time.Second
	for {
		var title any
		for _, u := range sc.State(t).Users {
			if fmt.Sprint(u["userName"]) == name {
				title = u["title"]
			}
		}
		if title == "Failover Tester" {
			break
		}
		if time.Since(killed) > limit {
			rd, _ := follower.readiness()
			t.Fatalf("the change is not at the target %v after the leader was killed (follower: %+v):\n%s", limit, rd.HA, follower.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failover: the change reached the target %v after kill -9 of the leader (lease_ttl %v)", time.Since(killed).Round(time.Millisecond), ttl)
	if rd, _ := follower.readiness(); rd.HA.Role != "leader" || rd.HA.Leader != follower.name {
		t.Errorf("the survivor's status: %+v", rd.HA)
	}
	if n := len(sc.State(t).Users); n != users {
		t.Errorf("the target holds %d users after the failover, want %d", n, users)
	}
}
