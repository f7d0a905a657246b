package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
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
	scim   string // the SCIM API's address, when haReplicas.scim is set
	cfg    string // its config file, to start it again
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
func waitLeader(t testing.TB, live []*replica, d time.Duration) *replica {
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

// startReplicas starts a slapd with users users, a SCIMMY target, a 3-member etcd and two serve
// replicas with [ha] (lease_ttl ttl, a delta pass every second) pushing to the target.
func startReplicas(t *testing.T, users int, ttl time.Duration) (*testenv.Slapd, *testenv.Scimmy, []*replica) {
	t.Helper()
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: users, Groups: 2, Seed: 14})}})
	sc := testenv.StartScimmy(t)
	etcd := testenv.StartEtcd(t, 3)
	reps := startHAReplicas(t, sl, sc, etcd.Endpoints, haReplicas{names: []string{"replica-a", "replica-b"}, ttl: ttl})
	return sl, sc, reps
}

// haReplicas describes the serve replicas startHAReplicas starts.
type haReplicas struct {
	names  []string      // one replica per name, its [ha] node
	ttl    time.Duration // lease_ttl
	target string        // more keys for the [[targets]] entry ("groups = true\n")
	scim   bool          // serve the SCIM API (bearer token haSCIMToken)
}

// haSCIMToken is the SCIM API bearer token of replicas started with haReplicas.scim.
const haSCIMToken = "ha-scim-token"

// startHAReplicas starts one serve per name on sl with [ha] on etcd endpoints (election
// /ldapscim-test/pusher, a delta pass every second) pushing to sc.
func startHAReplicas(t testing.TB, sl *testenv.Slapd, sc *testenv.Scimmy, etcd []string, o haReplicas) []*replica {
	t.Helper()
	endpoints, _ := json.Marshal(etcd)
	var reps []*replica
	for _, name := range o.names {
		r := &replica{name: name, admin: freeAddr(t)}
		extra := o.target
		if o.scim {
			r.scim = freeAddr(t)
			sum := sha256.Sum256([]byte(haSCIMToken))
			extra += fmt.Sprintf("[scim]\nlisten = %q\nbase_url = \"http://%s/scim/v2\"\n[[scim.tokens]]\nname = \"t\"\ntoken_sha256 = %q\n",
				r.scim, r.scim, hex.EncodeToString(sum[:]))
		}
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
%s`, r.admin, endpoints, o.ttl.String(), name, sc.URL, sc.Token, extra))
		r.cfg = cfg
		r.cmd, r.stderr = startServe(t, cfg)
		reps = append(reps, r)
	}
	return reps
}

// waitTitle waits until the target's user name has title, up to d after since.
func waitTitle(t testing.TB, sc *testenv.Scimmy, name, title string, since time.Time, d time.Duration, why func() string) {
	t.Helper()
	for {
		for _, u := range sc.State(t).Users {
			if fmt.Sprint(u["userName"]) == name && u["title"] == title {
				return
			}
		}
		if time.Since(since) > d {
			t.Fatalf("%s has no title %q at the target %v after the leader stopped:\n%s", name, title, d, why())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pushRequests is the replica's ldapscim_push_requests_total, summed over its labels.
func (r *replica) pushRequests(t testing.TB) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.admin + "/metrics")
	if err != nil {
		t.Fatalf("%s: /metrics: %v", r.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "ldapscim_push_requests_total{") {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// Two serve replicas, each with its own cache, on one directory, one SCIMMY target and a
// 3-member etcd: exactly one leads and pushes, the target gets each user once; the leader is
// killed with -9, a user changes in the directory, and the other replica pushes the change
// within lease_ttl + 5 s + its delta schedule.
func TestHATwoReplicasFailover(t *testing.T) {
	const users = 20
	const ttl = 3 * time.Second
	sl, sc, reps := startReplicas(t, users, ttl)
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
	waitTitle(t, sc, name, "Failover Tester", killed, limit, func() string {
		rd, _ := follower.readiness()
		return fmt.Sprintf("follower: %+v\n%s", rd.HA, follower.stderr)
	})
	t.Logf("failover: the change reached the target %v after kill -9 of the leader (lease_ttl %v)", time.Since(killed).Round(time.Millisecond), ttl)
	if rd, _ := follower.readiness(); rd.HA.Role != "leader" || rd.HA.Leader != follower.name {
		t.Errorf("the survivor's status: %+v", rd.HA)
	}
	if n := len(sc.State(t).Users); n != users {
		t.Errorf("the target holds %d users after the failover, want %d", n, users)
	}
}

// A leader frozen (SIGSTOP) past its lease loses the leadership; the other replica pushes a
// directory change; the frozen one, resumed (SIGCONT), syncs the change too but sends nothing:
// its push request count does not move and it says it follows.
func TestHAFrozenLeaderStopsPushing(t *testing.T) {
	const users = 10
	const ttl = 3 * time.Second
	sl, sc, reps := startReplicas(t, users, ttl)
	leader := waitLeader(t, reps, 30*time.Second)
	follower := reps[0]
	if follower == leader {
		follower = reps[1]
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(sc.State(t).Users) < users {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d users pushed in 30 s:\n%s", len(sc.State(t).Users), users, leader.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	before := leader.pushRequests(t)
	if before == 0 {
		t.Fatalf("the leader reports no push request")
	}
	name := fmt.Sprint(sc.State(t).Users[0]["userName"])

	frozen := time.Now()
	leader.cmd.Process.Signal(syscall.SIGSTOP)
	sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Frozen Leader\n", name, sl.BaseDN))
	waitTitle(t, sc, name, "Frozen Leader", frozen, ttl+5*time.Second+time.Second, func() string {
		rd, _ := follower.readiness()
		return fmt.Sprintf("follower: %+v\n%s", rd.HA, follower.stderr)
	})
	leader.cmd.Process.Signal(syscall.SIGCONT)
	// The resumed replica syncs the change (a delta pass every second) but must not push it.
	time.Sleep(3 * time.Second)
	if after := leader.pushRequests(t); after != before {
		t.Errorf("the resumed replica sent %v push request(s) after it lost the lease", after-before)
	}
	if rd, ok := leader.readiness(); !ok || rd.HA.Role != "follower" || rd.HA.Leader != follower.name {
		t.Errorf("the resumed replica's status: %+v (answers: %v)", rd.HA, ok)
	}
	if n := len(sc.State(t).Users); n != users {
		t.Errorf("the target holds %d users, want %d", n, users)
	}
}

// A replica with [ha] and [safety] staging = true does not campaign: beside a normal replica
// on the same etcd, the normal one leads and both name it; the staging one shows the role
// "staging" in /readyz, /admin/v1/info and /status, refuses a dead-letter replay saying why,
// and sends nothing, even after the leader is gone for longer than the lease.
func TestHAStagingReplicaDoesNotCampaign(t *testing.T) {
	const ttl = 2 * time.Second
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, sampledata.Options{Users: 5, Groups: 1, Seed: 14})}})
	sc := testenv.StartScimmy(t)
	etcd := testenv.StartEtcd(t, 1)
	endpoints, _ := json.Marshal(etcd.Endpoints)
	start := func(name string, staging bool) *replica {
		r := &replica{name: name, admin: freeAddr(t)}
		cfg := writeConfig(t, sl, t.TempDir(), fmt.Sprintf(`staging = %t
[schedule]
delta = "@every 1s"
full = ""
[admin]
listen = %q
[ha]
etcd_endpoints = %s
election = "/ldapscim-test/staging"
lease_ttl = %q
node = %q
[[targets]]
name = "scimmy"
url = %q
token = %q
poll_interval = "100ms"
`, staging, r.admin, endpoints, ttl.String(), name, sc.URL, sc.Token))
		r.cmd, r.stderr = startServe(t, cfg)
		return r
	}
	// The staging replica starts first: were it to campaign, it would win.
	stg := start("replica-s", true)
	deadline := time.Now().Add(30 * time.Second)
	for {
		rd, ok := stg.readiness()
		if ok && rd.Ready {
			if rd.HA.Role != "staging" || rd.HA.Node != "replica-s" || rd.HA.Leader != "" {
				t.Fatalf("readyz of the staging replica: %+v", rd.HA)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the staging replica is not ready in 30 s: %+v\n%s", rd, stg.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	normal := start("replica-n", false)
	if l := waitLeader(t, []*replica{normal}, 30*time.Second); l != normal {
		t.Fatalf("leader %s", l.name)
	}
	for len(sc.State(t).Users) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the leader pushed %d of 5 users:\n%s", len(sc.State(t).Users), normal.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err := http.Get("http://" + stg.admin + "/admin/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		HA admin.HAStatus `json:"ha"`
	}
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if info.HA.Role != "staging" || info.HA.Node != "replica-s" {
		t.Errorf("info of the staging replica: %+v", info.HA)
	}
	resp, err = http.Get("http://" + stg.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "staging replica-s · not campaigning, pushes nothing") {
		t.Errorf("the status page does not show the staging role:\n%s", page)
	}
	resp, err = http.Post("http://"+stg.admin+"/admin/v1/targets/scimmy/deadletters/replay", "application/json", strings.NewReader(`{"all":true}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), "staging") {
		t.Errorf("replay on the staging replica: %d %s", resp.StatusCode, body)
	}

	// Without the normal replica, nobody leads: the staging one still does not campaign.
	normal.cmd.Process.Kill()
	normal.cmd.Wait()
	time.Sleep(2 * ttl)
	if rd, _ := stg.readiness(); rd.HA.Role != "staging" {
		t.Errorf("the staging replica after the leader died: %+v", rd.HA)
	}
	if n := stg.pushRequests(t); n != 0 {
		t.Errorf("the staging replica sent %v push requests", n)
	}
}
