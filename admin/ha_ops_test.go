package admin_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// election is an [ha] election the test sets.
type election struct {
	leading atomic.Bool
	leader  atomic.Value // string
}

func (e *election) Node() string       { return "replica-2" }
func (e *election) IsLeader() bool     { return e.leading.Load() }
func (e *election) LeaderName() string { s, _ := e.leader.Load().(string); return s }

// An [ha] replica that does not lead refuses to replay or skip dead letters through the admin
// API (and the CLI's client): 501, naming the leader, nothing sent to the target and the dead
// letter kept. Once it leads, both work.
func TestFollowerRefusesDeadLetterOps(t *testing.T) {
	var requests atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer target.Close()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	dl := &cache.DeadLetter{ID: "u1", Type: scim.UserType, Op: "delete", Error: "HTTP 500", Attempts: 3, Time: time.Now()}
	if err := st.RecordPush(ctx, "okta", []cache.PushOutcome{{ID: "u1", DeadLetter: dl}}); err != nil {
		t.Fatal(err)
	}
	targets := []push.TargetConfig{{Name: "okta", URL: target.URL, Token: confval.NewSecret("t"),
		RetryPolicy: push.RetryPolicy{MaxAttempts: 1}}}
	if errs := push.Prepare(targets, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	el := &election{}
	el.leader.Store("replica-1")
	pusher := push.New(targets, nil, st, push.Options{})
	local, err := ops.NewLocal(ops.LocalOptions{Targets: targets, Store: st, Log: slog.New(slog.DiscardHandler),
		Pusher: pusher, Election: el})
	if err != nil {
		t.Fatal(err)
	}
	acfg := admin.DefaultConfig()
	if errs := append(acfg.ResolveToken(), acfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Config: acfg, Store: st, Ops: local, CacheDir: t.TempDir()}))
	defer srv.Close()
	k := &stack{admin: srv}

	for _, op := range []string{"replay", "skip"} {
		code, body := k.post(t, "/admin/v1/targets/okta/deadletters/"+op, `{"all":true}`)
		msg, _ := body["error"].(string)
		if code != http.StatusNotImplemented || !strings.Contains(msg, "replica-1") || !strings.Contains(msg, "replica-2") {
			t.Errorf("%s on a follower: %d %v; want 501 naming the leader replica-1 and this replica", op, code, body)
		}
	}
	// The CLI reaches the same refusal through the client, as an ops.Unavailable.
	c := admin.NewClient(strings.TrimPrefix(srv.URL, "http://"), "")
	if _, err := c.ReplayDeadLetters(ctx, "okta", nil); ops.CodeOf(err) != ops.Unavailable || !strings.Contains(err.Error(), "run it on replica-1") {
		t.Errorf("client replay on a follower: %v (code %v)", err, ops.CodeOf(err))
	}
	el.leader.Store("")
	if code, body := k.post(t, "/admin/v1/targets/okta/deadletters/replay", `{"all":true}`); code != http.StatusNotImplemented ||
		!strings.Contains(body["error"].(string), "no leader is known") {
		t.Errorf("replay with no leader known: %d %v", code, body)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("a follower sent %d request(s) to the target", n)
	}
	if got, _ := st.DeadLetters(ctx, "okta"); len(got) != 1 {
		t.Fatalf("the follower's refusals changed the dead letters: %v", got)
	}
	// An unknown target is still NotFound, leader or not.
	if code, _ := k.post(t, "/admin/v1/targets/nope/deadletters/replay", `{"all":true}`); code != http.StatusNotFound {
		t.Errorf("replay of an unknown target on a follower: %d, want 404", code)
	}

	el.leading.Store(true)
	if code, body := k.post(t, "/admin/v1/targets/okta/deadletters/replay", `{"all":true}`); code != http.StatusOK || body["replayed"] != float64(1) {
		t.Errorf("replay on the leader: %d %v", code, body)
	}
	if code, body := k.post(t, "/admin/v1/targets/okta/deadletters/skip", `{"all":true}`); code != http.StatusOK {
		t.Errorf("skip on the leader: %d %v", code, body)
	}
}

// A reconciliation with apply on a replica that does not lead is refused (501, naming the
// leader) and sends nothing; a dry run reads the target there, although the replica's push
// fence (MaySend) is closed: reads change nothing.
func TestFollowerReconcilesOnlyDry(t *testing.T) {
	var reads, writes atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			writes.Add(1)
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		reads.Add(1)
		w.Header().Set("Content-Type", "application/scim+json")
		switch r.URL.Path {
		case "/scim/v2/Users":
			w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"startIndex":1,"itemsPerPage":1,
				"Resources":[{"id":"t1","userName":"someone-else","active":true}]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer target.Close()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	targets := []push.TargetConfig{{Name: "okta", URL: target.URL + "/scim/v2", Token: confval.NewSecret("t"),
		RetryPolicy: push.RetryPolicy{MaxAttempts: 1}}}
	if errs := push.Prepare(targets, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	el := &election{}
	el.leader.Store("replica-1")
	pusher := push.New(targets, nil, st, push.Options{MaySend: el.IsLeader})
	local, err := ops.NewLocal(ops.LocalOptions{Targets: targets, Store: st, Log: slog.New(slog.DiscardHandler),
		Pusher: pusher, Election: el})
	if err != nil {
		t.Fatal(err)
	}
	acfg := admin.DefaultConfig()
	if errs := append(acfg.ResolveToken(), acfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	srv := httptest.NewServer(admin.New(admin.Options{Config: acfg, Store: st, Ops: local, CacheDir: t.TempDir()}))
	defer srv.Close()
	k := &stack{admin: srv}

	code, body := k.post(t, "/admin/v1/targets/okta/reconcile?apply=true", "")
	if msg, _ := body["error"].(string); code != http.StatusNotImplemented || !strings.Contains(msg, "run it on replica-1") {
		t.Fatalf("apply on a follower: %d %v", code, body)
	}
	if reads.Load()+writes.Load() != 0 {
		t.Fatal("a refused reconciliation reached the target")
	}
	c := admin.NewClient(strings.TrimPrefix(srv.URL, "http://"), "")
	rep, err := c.Reconcile(context.Background(), ops.ReconcileRequest{Target: "okta"})
	if err != nil || rep.Unmanaged != 1 || rep.TargetUsers != 1 || rep.Total() != 0 || rep.Applied {
		t.Fatalf("dry run on a follower: %+v, %v", rep, err)
	}
	if reads.Load() == 0 || writes.Load() != 0 {
		t.Fatalf("dry run: %d reads, %d writes", reads.Load(), writes.Load())
	}
	if code, _ := k.post(t, "/admin/v1/targets/nope/reconcile", ""); code != http.StatusBadRequest {
		t.Errorf("reconcile of an unknown target: %d, want 400", code)
	}
	el.leading.Store(true)
	if rep, err = c.Reconcile(context.Background(), ops.ReconcileRequest{Target: "okta", Apply: true}); err != nil || !rep.Applied || writes.Load() != 0 {
		t.Fatalf("apply on the leader: %+v, %v (writes %d)", rep, err, writes.Load())
	}
}
