package push_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
)

// A reconcile spec that is not a cron spec is refused, naming the key.
func TestReconcileSpecIsValidated(t *testing.T) {
	ts := []push.TargetConfig{{Name: "a", URL: "https://a.example.com/scim/v2", Token: confval.NewSecret("x"), Reconcile: "every sunday"},
		{Name: "b", URL: "https://b.example.com/scim/v2", Token: confval.NewSecret("x"), Reconcile: "0 4 * * 0"}}
	errs := push.Prepare(ts, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `targets[0].reconcile: "every sunday" is not a cron spec`) {
		t.Fatalf("errors %v", errs)
	}
}

// A worker with a reconcile schedule corrects what was changed at the target by hand, with no
// change in the directory; held extras raise the reconcile_held alert.
func TestScheduledReconcile(t *testing.T) {
	e, cfg := driftEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Reconcile = "@every 1s"
	list := []push.TargetConfig{cfg}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	cfg = list[0]
	var mu sync.Mutex
	var alerts []push.Alert
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{Reconcile: push.ReconcilePolicy{Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}},
		Alert: func(a push.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }})
	done := make(chan struct{})
	go func() { tg.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		u := users(t, e.target)
		if u["carol"] != nil && u["bob"]["title"] == "Engineer" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled reconciliation did not correct the target: %v", keys(u))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	st := tg.Status(context.Background())
	if st.Reconcile == nil || st.Reconcile.Why != "scheduled" || st.Reconcile.Error != "" {
		t.Fatalf("status %+v", st.Reconcile)
	}
	mu.Lock()
	for _, a := range alerts {
		if a.Kind == push.AlertReconcileHeld && !a.Resolved {
			t.Fatalf("alert without held extras: %+v", a)
		}
	}
	mu.Unlock()

	// Every user leaves the scope; the threshold holds the four extras and alerts.
	narrow := cfg
	narrow.Scope = `userName eq "nobody"`
	narrow.Groups = false
	list = []push.TargetConfig{narrow}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	narrow = list[0]
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	tg = push.NewTarget(narrow, e.store, push.WorkerOptions{Reconcile: push.ReconcilePolicy{Threshold: ingest.Threshold{MaxDeletes: 1, MaxDeletePercent: 100}},
		Alert: func(a push.Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }})
	done = make(chan struct{})
	go func() { tg.Run(ctx); close(done) }()
	for held := false; !held; {
		mu.Lock()
		for _, a := range alerts {
			held = held || a.Kind == push.AlertReconcileHeld && !a.Resolved && strings.Contains(a.Text, "holds 4 extra(s)")
		}
		mu.Unlock()
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatal("no reconcile_held alert")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	<-done
	for name, u := range users(t, e.target) {
		if u["active"] != true {
			t.Fatalf("%s was deactivated although the threshold held it", name)
		}
	}
}

// A replica whose cache never pushed the target (a new [ha] leader) reconciles it on start
// instead of resending its whole journal: it adopts every user and group with one paged read,
// creates nothing, moves its cursor to the journal head, and pushes what comes after as usual.
func TestCatchUpReconcilesInsteadOfResending(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice")+
		userLDIF("carol", "Carol", "Clark", "Sales", "")+
		groupLDIF("eng", "alice", "bob")+groupLDIF("all", "alice", "bob", "carol"))
	cfg := e.targetConfig(e.target.URL, nil)
	drain(t, push.NewTarget(cfg, e.store, push.WorkerOptions{}))

	// The other replica: its own cache of the same directory, which never pushed.
	st2, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st2.Close() })
	lc := ldapsync.DefaultConfig()
	lc.URL, lc.BindDN, lc.BindPassword = e.sl.URL, e.sl.RootDN, confval.NewSecret(e.sl.RootPassword)
	lc.Users.BaseDN, lc.Groups.BaseDN = "ou=people,"+base, "ou=groups,"+base
	s2, err := ldapsync.New(lc, ldapsync.SafetyConfig{MaxDeletes: 100, MaxDeletePercent: 100}, st2, ldapsync.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.SyncFull(context.Background()); err != nil {
		t.Fatal(err)
	}
	head, _ := st2.JournalHead(context.Background())
	before := e.target.State(t).Stats
	tg := push.NewTarget(cfg, st2, push.WorkerOptions{Reconcile: push.ReconcilePolicy{CatchUpLag: push.DefaultCatchUpLag,
		Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { tg.Run(ctx); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if cur, _ := st2.PushCursor(context.Background(), cfg.Name); cur >= head {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the cursor never reached the journal head")
		}
		time.Sleep(50 * time.Millisecond)
	}
	rs := tg.Status(context.Background()).Reconcile
	if rs == nil || rs.Why != "catch-up" || !rs.Applied || rs.Missing+rs.Differing+rs.Extra != 0 {
		t.Fatalf("catch-up: %+v", rs)
	}
	after := e.target.State(t).Stats
	// ServiceProviderConfig, one page of users, one of groups, and the State call.
	if after.Created != before.Created || after.Requests-before.Requests != 4 {
		t.Fatalf("the catch-up created %d and sent %d requests", after.Created-before.Created, after.Requests-before.Requests-1)
	}
	if plan, err := tg.Plan(context.Background()); err != nil || len(plan) != 0 {
		t.Fatalf("after the catch-up push would still send %+v (%v)", plan, err)
	}
	// What comes after is pushed as usual, with the adopted ids.
	e.sl.Modify(t, fmt.Sprintf("dn: uid=bob,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Staff Engineer\n", base))
	if _, err := s2.SyncOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	for users(t, e.target)["bob"]["title"] != "Staff Engineer" {
		if time.Now().After(deadline) {
			t.Fatal("the change after the catch-up was not pushed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if n := len(users(t, e.target)); n != 3 {
		t.Fatalf("%d users at the target", n)
	}
}

// holdingProxy is a proxy in front of SCIMMY that holds every list read of /Groups (a
// reconciliation's, never the worker's) until release is closed; held is closed at the first.
func holdingProxy(t *testing.T, e *env) (url string, held, release chan struct{}) {
	t.Helper()
	up, err := neturl.Parse(e.target.URL)
	if err != nil {
		t.Fatal(err)
	}
	held, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&neturl.URL{Scheme: up.Scheme, Host: up.Host})
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/Groups") && q.Has("count") && !q.Has("filter") {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + up.Path, held, release
}

// waitTitle waits until the target shows uid's title, and fails after 20 s.
func waitTitle(t *testing.T, e *env, uid, title, why string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if u := users(t, e.target); u[uid] != nil && u[uid]["title"] == title {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s's title never became %q at the target", why, uid, title)
		}
	}
}

// A reconciliation reads the target without holding up the worker: a change made while it
// reads (here: held in its read of the groups) is pushed at once, and the reconciliation then
// leaves that resource's drift, found before the push, to the push (superseded) instead of
// correcting it from a stale comparison. The same holds for a scheduled reconciliation, which
// runs beside the worker's loop.
func TestReconcileDoesNotHoldUpThePush(t *testing.T) {
	e, cfg := driftEnv(t)
	proxied, held, release := holdingProxy(t, e)
	cfg.URL = proxied
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	worker := make(chan struct{})
	go func() { tg.Run(ctx); close(worker) }()

	type result struct {
		rep *push.ReconcileReport
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := tg.Reconcile(ctx, push.ReconcileOptions{Apply: true, Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}})
		done <- result{rep, err}
	}()
	waitHeld(t, held) // the users are compared: bob's hand-edited title is a drift
	e.sl.Modify(t, fmt.Sprintf("dn: uid=bob,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Director\n", base))
	e.pass()
	waitTitle(t, e, "bob", "Director", "the push waited for the reconciliation")
	close(release)
	res := <-done
	if res.err != nil || !res.rep.Applied {
		t.Fatalf("reconcile: %+v, %v", res.rep, res.err)
	}
	want := []string{"missing User carol ", "differing Group eng members"}
	if got := driftKeys(res.rep); !slices.Equal(got, want) || res.rep.Superseded != 1 {
		t.Fatalf("drifts %q, superseded %d; want %q and bob's drift superseded", got, res.rep.Superseded, want)
	}
	u := users(t, e.target)
	if u["carol"] == nil || u["bob"]["title"] != "Director" {
		t.Fatalf("after the reconciliation: users %v, bob's title %v", keys(u), u["bob"]["title"])
	}
	if got := memberNames(t, e.target, groups(t, e.target)["eng"]); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("eng members %v", got)
	}
	cancel()
	<-worker

	// Scheduled: the worker's loop starts it and goes on pushing.
	proxied, held, release = holdingProxy(t, e)
	sched := cfg
	sched.URL, sched.Reconcile = proxied, "@every 1s"
	list := []push.TargetConfig{sched}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	tg = push.NewTarget(list[0], e.store, push.WorkerOptions{Reconcile: push.ReconcilePolicy{Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}}})
	worker = make(chan struct{})
	go func() { tg.Run(ctx); close(worker) }()
	waitHeld(t, held)
	e.sl.Modify(t, fmt.Sprintf("dn: uid=bob,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: VP\n", base))
	e.pass()
	waitTitle(t, e, "bob", "VP", "the worker's loop waited for the scheduled reconciliation")
	close(release)
	cancel()
	<-worker
}

// waitHeld waits until the proxy holds a reconciliation's read, and fails after 30 s.
func waitHeld(t *testing.T, held chan struct{}) {
	t.Helper()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no reconciliation read the target's groups")
	}
}
