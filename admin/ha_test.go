package admin

import (
	"strings"
	"testing"
	"time"
)

type fakeHA struct{ st HAStatus }

func (f fakeHA) HAStatus() HAStatus { return f.st }

// /readyz, /admin/v1/info and /status show the replica's role, the leader and the lease age:
// standalone without [ha]; a follower is ready like a leader.
func TestHAStatusShown(t *testing.T) {
	f := newFixture(t, nil)
	f.setWatermark(t, time.Now().Add(-time.Minute))
	_, body := f.do(t, call{method: "GET", path: "/readyz", remote: remote})
	if ha, _ := body["ha"].(map[string]any); ha["role"] != "standalone" {
		t.Fatalf("readyz without [ha]: %v", body)
	}
	f.srv.opts.HA = fakeHA{HAStatus{Role: "follower", Node: "replica-2", Leader: "replica-1", LeaseAge: LeaseAgeString(90 * time.Second)}}
	rec, body := f.do(t, call{method: "GET", path: "/readyz", remote: remote})
	ha, _ := body["ha"].(map[string]any)
	if rec.Code != 200 || body["ready"] != true || ha["role"] != "follower" || ha["node"] != "replica-2" ||
		ha["leader"] != "replica-1" || ha["leaseAge"] != "1m30s" {
		t.Fatalf("readyz of a follower: %d %v", rec.Code, body)
	}
	_, body = f.do(t, call{method: "GET", path: "/admin/v1/info", remote: loopback})
	if ha, _ := body["ha"].(map[string]any); ha["role"] != "follower" || ha["leader"] != "replica-1" || body["cacheDir"] != "/var/lib/ldapscim" {
		t.Fatalf("info of a follower: %v", body)
	}
	rec, _ = f.do(t, call{method: "GET", path: "/status", remote: loopback})
	if !strings.Contains(rec.Body.String(), "follower replica-2 · leader: replica-1 for 1m30s") {
		t.Fatalf("the status page does not show the role:\n%s", rec.Body.String())
	}
}
