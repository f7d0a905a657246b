package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/ops"
)

// A replica that takes over has no push state of its own for the target (it never led): it
// reconciles the target before pushing, adopting every user the old leader created, and
// creates nothing again; the change made after the kill still reaches the target.
func TestHANewLeaderReconcilesInsteadOfResending(t *testing.T) {
	const users = 20
	const ttl = 3 * time.Second
	sl, sc, reps := startReplicas(t, users, ttl)
	leader := waitLeader(t, reps, 30*time.Second)
	deadline := time.Now().Add(30 * time.Second)
	for st := sc.State(t); len(st.Users) < users; st = sc.State(t) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d users pushed in 30 s:\n%s", len(st.Users), users, leader.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	before := sc.State(t)
	follower := reps[0]
	if follower == leader {
		follower = reps[1]
	}
	name := fmt.Sprint(before.Users[0]["userName"])
	killed := time.Now()
	leader.cmd.Process.Kill()
	leader.cmd.Wait()
	sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: New Leader\n", name, sl.BaseDN))
	waitTitle(t, sc, name, "New Leader", killed, ttl+10*time.Second, func() string { return follower.stderr.String() })

	resp, err := http.Get("http://" + follower.admin + "/admin/v1/targets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ts ops.TargetsStatus
	if err := json.NewDecoder(resp.Body).Decode(&ts); err != nil || len(ts.Targets) != 1 {
		t.Fatalf("targets status: %v %+v", err, ts)
	}
	rs := ts.Targets[0].Reconcile
	if rs == nil || rs.Why != "catch-up" || !rs.Applied || rs.Missing != 0 || rs.Extra != 0 || rs.Error != "" {
		t.Fatalf("the new leader's reconciliation: %+v\n%s", rs, follower.stderr)
	}
	after := sc.State(t)
	if after.Stats.Created != before.Stats.Created || len(after.Users) != users {
		t.Fatalf("the new leader created %d user(s) again; the target holds %d", after.Stats.Created-before.Stats.Created, len(after.Users))
	}
}
