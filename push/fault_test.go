package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
)

// Faults on every 7th request: the same final state as without faults, no duplicate users and
// no duplicate members.
func TestFaultsConvergeWithoutDuplicates(t *testing.T) {
	var ldif strings.Builder
	var names []string
	for i := range 60 {
		uid := fmt.Sprintf("user%02d", i)
		names = append(names, uid)
		ldif.WriteString(userLDIF(uid, "U", fmt.Sprint(i), "Engineering", ""))
	}
	ldif.WriteString(groupLDIF("everyone", names...))
	ldif.WriteString(groupLDIF("half", names[:30]...))
	e := newEnv(t, ldif.String())
	proxy := testenv.NewFaultProxy(t, e.target.URL, 7, testenv.Fault429, testenv.Fault500, testenv.FaultTimeout, testenv.FaultDropped)
	url := proxy.URL
	cfg := e.targetConfig(url, func(tc *push.TargetConfig) {
		tc.Timeout = confval.Duration(300 * time.Millisecond)
		tc.MaxAttempts = 50
		tc.Concurrency = 8
		tc.MembershipChunk = 7
	})
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	drain(t, tg)

	// A change to every user and a membership change, pushed through the faults too.
	var mods strings.Builder
	for i, uid := range names {
		fmt.Fprintf(&mods, "dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Title %d\n\n", uid, base, i)
	}
	fmt.Fprintf(&mods, "dn: cn=half,ou=groups,%s\nchangetype: modify\nadd: member\n", base)
	for _, uid := range names[30:45] {
		fmt.Fprintf(&mods, "member: uid=%s,ou=people,%s\n", uid, base)
	}
	e.sl.Modify(t, mods.String())
	e.pass()
	drain(t, tg)

	u := users(t, e.target) // fails on duplicates
	if len(u) != 60 {
		t.Fatalf("want 60 users at the target, got %d", len(u))
	}
	for i, uid := range names {
		if u[uid]["title"] != fmt.Sprintf("Title %d", i) {
			t.Fatalf("%s title %v", uid, u[uid]["title"])
		}
	}
	g := groups(t, e.target)
	if got := memberNames(t, e.target, g["everyone"]); len(got) != 60 {
		t.Fatalf("everyone has %d members", len(got))
	}
	if got := memberNames(t, e.target, g["half"]); len(got) != 45 {
		t.Fatalf("half has %d members, want 45", len(got))
	}
	for _, kind := range []testenv.Fault{testenv.Fault429, testenv.Fault500, testenv.FaultTimeout, testenv.FaultDropped} {
		if proxy.Seen(kind) == 0 {
			t.Errorf("the proxy never injected %s", kind)
		}
	}
}

// A target that refuses a change (400) dead-letters it at once with its error body; one that
// keeps failing (500) dead-letters after max_attempts. Replay (Target.Sync) delivers them once
// the target accepts them.
func TestDeadLettersAndReplay(t *testing.T) {
	e := newEnv(t, userLDIF("dave", "Dave", "Dunn", "Ops", "")+userLDIF("erin", "Erin", "Eve", "Ops", ""))
	var broken atomic.Bool
	broken.Store(true)
	u, _ := url.Parse(e.target.URL)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken.Load() && r.Method == "POST" {
			body, _ := io.ReadAll(r.Body)
			if strings.Contains(string(body), `"dave"`) {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"dave is not welcome"}`)
				return
			}
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := e.targetConfig(srv.URL+u.Path, func(tc *push.TargetConfig) { tc.MaxAttempts = 3 })
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	drain(t, tg)

	ctx := context.Background()
	dls, err := e.store.DeadLetters(ctx, "scimmy")
	if err != nil || len(dls) != 2 {
		t.Fatalf("want 2 dead letters, got %v %+v", err, dls)
	}
	var dave, erin = dls[0], dls[1]
	if dave.Attempts > 1 {
		dave, erin = erin, dave
	}
	if dave.Status != 400 || !strings.Contains(dave.Body, "dave is not welcome") || dave.Attempts != 1 {
		t.Fatalf("a 400 is dead-lettered at once with the body: %+v", dave)
	}
	if erin.Status != 503 || erin.Attempts != 3 {
		t.Fatalf("a 503 is dead-lettered after max_attempts: %+v", erin)
	}
	if n := len(users(t, e.target)); n != 0 {
		t.Fatalf("nothing should have arrived, got %d", n)
	}
	audit, _ := e.store.PushAudit(ctx, erin.ID)
	if len(audit) < 3 {
		t.Fatalf("every attempt is audited: %+v", audit)
	}

	broken.Store(false)
	if err := tg.Sync(ctx, []string{dave.ID, erin.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(users(t, e.target)); n != 2 {
		t.Fatalf("replay must deliver both, got %d", n)
	}
	if dls, _ := e.store.DeadLetters(ctx, "scimmy"); len(dls) != 0 {
		t.Fatalf("delivered dead letters must go away: %+v", dls)
	}
}

// Webhook events are signed: Verify accepts them with the right secret and refuses them with a
// wrong one; user, group and membership events arrive.
func TestWebhookSignatures(t *testing.T) {
	e := newEnv(t, userLDIF("fay", "Fay", "Fox", "Ops", "")+userLDIF("gus", "Gus", "Gray", "Ops", "")+groupLDIF("ops", "fay"))
	const secret = "whsec-test-123"
	var mu sync.Mutex
	var events []push.Event
	var bad int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, sig := r.Header.Get(push.HeaderTimestamp), r.Header.Get(push.HeaderSignature)
		mu.Lock()
		defer mu.Unlock()
		if push.Verify("wrong-secret", ts, sig, body, time.Now(), 5*time.Minute) {
			t.Error("a wrong secret verified")
		}
		if !push.Verify(secret, ts, sig, body, time.Now(), 5*time.Minute) {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var ev push.Event
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Error(err)
		}
		events = append(events, ev)
	}))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret(secret)}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	wh := push.NewWebhook(hooks[0], e.store, push.WorkerOptions{})
	e.sl.Modify(t, fmt.Sprintf("dn: cn=ops,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=gus,ou=people,%s\n", base, base))
	e.pass()
	drain(t, wh)
	types := map[string]int{}
	for _, ev := range events {
		types[ev.Type]++
	}
	if bad != 0 || types["user.created"] != 2 || types["group.created"] != 1 || types["group.updated"] != 1 || types["membership.added"] != 1 {
		t.Fatalf("events: bad signatures %d, types %v", bad, types)
	}
	if push.Verify(secret, "1", push.Sign(secret, "1", []byte("x")), []byte("x"), time.Now(), 5*time.Minute) {
		t.Fatal("a stale timestamp must not verify")
	}
}

// Webhook events are edges: when a receiver rejects two events of one user, both are kept as
// dead letters, and a replay delivers both, in order.
func TestWebhookKeepsEveryRejectedEvent(t *testing.T) {
	e := newEnv(t, userLDIF("fay", "Fay", "Fox", "Ops", ""))
	var mu sync.Mutex
	reject := false
	var got []push.Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev push.Event
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		defer mu.Unlock()
		if reject {
			w.WriteHeader(http.StatusUnprocessableEntity) // permanent: no retries
			return
		}
		got = append(got, ev)
	}))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret("s3cret-hook")}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	wh := push.NewWebhook(hooks[0], e.store, push.WorkerOptions{})
	ctx := context.Background()
	drain(t, wh)
	mu.Lock()
	reject, got = true, nil
	mu.Unlock()
	for _, title := range []string{"One", "Two"} {
		e.sl.Modify(t, fmt.Sprintf("dn: uid=fay,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: %s\n", base, title))
		e.pass()
		drain(t, wh)
	}
	dls, err := e.store.DeadLetters(ctx, "hook")
	if err != nil || len(dls) != 2 || dls[0].ID != dls[1].ID || dls[0].Seq >= dls[1].Seq {
		t.Fatalf("dead letters: %+v, %v; want both of fay's events, in order", dls, err)
	}
	mu.Lock()
	reject = false
	mu.Unlock()
	if n, err := wh.Replay(ctx, nil); err != nil || n != 2 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	if len(got) != 2 || got[0].Seq != dls[0].Seq || got[1].Seq != dls[1].Seq || got[0].Type != "user.updated" {
		t.Fatalf("replayed events: %+v", got)
	}
	if dls, _ := e.store.DeadLetters(ctx, "hook"); len(dls) != 0 {
		t.Fatalf("dead letters left after the replay: %+v", dls)
	}
	// Skipping by resource id drops every event of it.
	mu.Lock()
	reject = true
	mu.Unlock()
	e.sl.Modify(t, fmt.Sprintf("dn: uid=fay,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Three\n", base))
	e.pass()
	drain(t, wh)
	if n, err := e.store.DropDeadLetters(ctx, "hook", []string{dls[0].ID}); err != nil || n != 1 {
		t.Fatalf("skip: %d, %v", n, err)
	}
}
