package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
)

// scimCall sends one request to the SCIMMY target as someone editing it by hand would.
func scimCall(t *testing.T, s *testenv.Scimmy, method, path string, body any) map[string]any {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, s.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func patchOps(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

// driftEnv is a directory pushed to SCIMMY, then changed at the target by hand: carol
// deleted, bob's title changed, alice removed from eng, and an unrelated user zed created.
func driftEnv(t *testing.T) (*env, push.TargetConfig) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice")+
		userLDIF("carol", "Carol", "Clark", "Sales", "")+
		userLDIF("dave", "Dave", "Dunn", "Sales", "")+
		groupLDIF("eng", "alice", "bob")+groupLDIF("all", "alice", "bob", "carol", "dave"))
	cfg := e.targetConfig(e.target.URL, nil)
	drain(t, push.NewTarget(cfg, e.store, push.WorkerOptions{}))

	u, g := users(t, e.target), groups(t, e.target)
	scimCall(t, e.target, "DELETE", "/Users/"+fmt.Sprint(u["carol"]["id"]), nil)
	scimCall(t, e.target, "PATCH", "/Users/"+fmt.Sprint(u["bob"]["id"]),
		patchOps(map[string]any{"op": "replace", "path": "title", "value": "Hand-edited"}))
	scimCall(t, e.target, "PATCH", "/Groups/"+fmt.Sprint(g["eng"]["id"]),
		patchOps(map[string]any{"op": "remove", "path": fmt.Sprintf(`members[value eq "%s"]`, u["alice"]["id"])}))
	scimCall(t, e.target, "POST", "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "zed", "title": "Contractor", "active": true})
	return e, cfg
}

func driftKeys(rep *push.ReconcileReport) []string {
	var out []string
	for _, d := range rep.Drifts {
		out = append(out, fmt.Sprintf("%s %s %s %s", d.Kind, d.Type, d.Name, strings.Join(d.Attrs, ",")))
	}
	return out
}

// The drift test of issue 14: reconcile reports exactly the three drifts and the unrelated
// user as unmanaged; --apply fixes the three and leaves zed alone; a second reconcile finds
// nothing, and the push state is what push would have written (plan: nothing to send).
func TestReconcileDrift(t *testing.T) {
	e, cfg := driftEnv(t)
	ctx := context.Background()
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	before := e.target.State(t)
	opts := push.ReconcileOptions{PageSize: 2, Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}}

	rep, err := tg.Reconcile(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"missing User carol ", "differing User bob title", "differing Group eng members"}
	if got := driftKeys(rep); !slices.Equal(got, want) || rep.Total() != 3 {
		t.Fatalf("drifts %q, want %q (report %+v)", got, want, rep)
	}
	if rep.Unmanaged != 1 || rep.Extra != 0 || rep.Held != 0 || rep.Applied || rep.TargetUsers != 4 || rep.TargetGroups != 2 {
		t.Fatalf("report %+v", rep)
	}
	if d := rep.Drifts[2]; d.MembersAdded != 1 || d.MembersRemoved != 0 {
		t.Fatalf("eng: %+v", d)
	}
	after := e.target.State(t)
	if after.Stats.Created != before.Stats.Created || len(after.Users) != len(before.Users) {
		t.Fatal("a dry run changed the target")
	}
	// Users: 2 pages of 2 (4 users), groups: 1 page; and the ServiceProviderConfig.
	if rep.Requests != 4 {
		t.Fatalf("requests %d, want 4 (ServiceProviderConfig, 2 user pages, 1 group page)", rep.Requests)
	}

	opts.Apply = true
	if rep, err = tg.Reconcile(ctx, opts); err != nil || !rep.Applied || rep.Total() != 3 || rep.Failed != 0 {
		t.Fatalf("apply: %+v, %v", rep, err)
	}
	u := users(t, e.target)
	if len(u) != 5 || u["carol"] == nil || u["bob"]["title"] != "Engineer" {
		t.Fatalf("after apply: users %v, bob's title %v", keys(u), u["bob"]["title"])
	}
	if u["zed"]["title"] != "Contractor" || u["zed"]["active"] != true {
		t.Fatalf("zed was touched: %v", u["zed"])
	}
	g := groups(t, e.target)
	if got := memberNames(t, e.target, g["eng"]); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("eng members %v", got)
	}
	if got := memberNames(t, e.target, g["all"]); !slices.Equal(got, []string{"alice", "bob", "carol", "dave"}) {
		t.Fatalf("all members %v (carol must be there under her new id)", got)
	}

	opts.Apply = false
	if rep, err = tg.Reconcile(ctx, opts); err != nil || rep.Total() != 0 || rep.Unmanaged != 1 {
		t.Fatalf("second reconcile: %q %+v, %v", driftKeys(rep), rep, err)
	}
	plan, err := tg.Plan(ctx)
	if err != nil || len(plan) != 0 {
		t.Fatalf("push would still send %+v (%v): the push state is not what push writes", plan, err)
	}
	reqs := e.target.State(t).Stats.Requests
	drain(t, tg)
	if got := e.target.State(t).Stats.Requests; got != reqs+1 { // +1: the State call itself
		t.Fatalf("the next push sent %d requests", got-reqs-1)
	}
}

// Extras above the threshold are held: none is deactivated, and the rest is still applied.
func TestReconcileHoldsExtras(t *testing.T) {
	var ldif string
	var uids []string
	for i := range 12 {
		uid := fmt.Sprintf("u%02d", i)
		uids = append(uids, uid)
		dept := "Sales"
		if i < 2 {
			dept = "Engineering"
		}
		ldif += userLDIF(uid, "U", uid, dept, "")
	}
	e := newEnv(t, ldif)
	ctx := context.Background()
	cfg := e.targetConfig(e.target.URL, func(tc *push.TargetConfig) { tc.Groups = false })
	drain(t, push.NewTarget(cfg, e.store, push.WorkerOptions{}))
	u := users(t, e.target)
	scimCall(t, e.target, "PATCH", "/Users/"+fmt.Sprint(u["u00"]["id"]),
		patchOps(map[string]any{"op": "replace", "path": "title", "value": "Hand-edited"}))

	// The scope narrows to Engineering: ten users are extras; the threshold allows five.
	narrow := e.targetConfig(e.target.URL, func(tc *push.TargetConfig) {
		tc.Groups = false
		tc.Scope = `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering"`
	})
	tg := push.NewTarget(narrow, e.store, push.WorkerOptions{})
	rep, err := tg.Reconcile(ctx, push.ReconcileOptions{Apply: true, Threshold: ingest.Threshold{MaxDeletes: 5, MaxDeletePercent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Extra != 10 || rep.Held != 10 || rep.Differing != 1 || rep.HeldReason == "" || !rep.Applied {
		t.Fatalf("report %+v", rep)
	}
	for _, d := range rep.Drifts {
		if d.Kind == push.DriftExtra && (!d.Held || d.Action != "deactivate") {
			t.Fatalf("extra not held: %+v", d)
		}
	}
	u = users(t, e.target)
	for _, uid := range uids {
		if u[uid]["active"] != true {
			t.Fatalf("%s was deactivated although the threshold held it", uid)
		}
	}
	if u["u00"]["title"] != "Engineer" {
		t.Fatalf("the differing user was not corrected beside the held extras: %v", u["u00"]["title"])
	}

	// Within the threshold, the extras are deactivated.
	rep, err = tg.Reconcile(ctx, push.ReconcileOptions{Apply: true, Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}})
	if err != nil || rep.Extra != 10 || rep.Held != 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	u = users(t, e.target)
	for _, uid := range uids[2:] {
		if u[uid]["active"] != false {
			t.Fatalf("%s is still active", uid)
		}
	}
	if rep, err = tg.Reconcile(ctx, push.ReconcileOptions{}); err != nil || rep.Total() != 0 {
		t.Fatalf("after: %+v, %v", rep, err)
	}
}

// A target that answers 429 and 500 while it is read: reconcile retries and finds exactly
// what it finds without faults; when the retries run out in the middle of the read it fails
// and corrects nothing.
func TestReconcileFaultyTarget(t *testing.T) {
	e, cfg := driftEnv(t)
	ctx := context.Background()
	proxy := testenv.NewFaultProxy(t, e.target.URL, 3, testenv.Fault429, testenv.Fault500)
	flaky := cfg
	flaky.URL = proxy.URL
	tg := push.NewTarget(flaky, e.store, push.WorkerOptions{})
	opts := push.ReconcileOptions{PageSize: 1, Threshold: ingest.Threshold{MaxDeletes: 100, MaxDeletePercent: 100}}
	rep, err := tg.Reconcile(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := driftKeys(rep); len(got) != 3 || rep.Unmanaged != 1 {
		t.Fatalf("through faults: %q %+v", got, rep)
	}
	if proxy.Seen(testenv.Fault429) == 0 || proxy.Seen(testenv.Fault500) == 0 {
		t.Fatal("the proxy injected no fault")
	}

	// One attempt only: the first fault, on a later page, ends the reconciliation.
	one := flaky
	one.MaxAttempts = 1
	tg = push.NewTarget(one, e.store, push.WorkerOptions{})
	before := e.target.State(t)
	opts.Apply = true
	rep, err = tg.Reconcile(ctx, opts)
	if err == nil || rep.Applied {
		t.Fatalf("want a failed read, got %+v", rep)
	}
	if !strings.Contains(err.Error(), "HTTP 429") && !strings.Contains(err.Error(), "HTTP 500") {
		t.Fatalf("error %v", err)
	}
	after := e.target.State(t)
	if after.Stats.Created != before.Stats.Created || len(after.Users) != len(before.Users) {
		t.Fatal("a failed reconciliation changed the target")
	}
	if u := users(t, e.target); u["bob"]["title"] != "Hand-edited" {
		t.Fatal("a failed reconciliation corrected bob")
	}

	// Without faults it then corrects everything.
	proxy.SetOff(true)
	if rep, err = tg.Reconcile(ctx, opts); err != nil || !rep.Applied || rep.Total() != 3 {
		t.Fatalf("%+v, %v", rep, err)
	}
}

// A target whose ServiceProviderConfig offers RFC 9865 cursors is paged by cursor, never by
// startIndex.
func TestReconcilePagesByCursor(t *testing.T) {
	var byIndex atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/scim+json")
		q := r.URL.Query()
		switch {
		case r.URL.Path == "/scim/v2/ServiceProviderConfig":
			w.Write([]byte(`{"pagination":{"cursor":true,"index":true}}`))
		case r.URL.Path == "/scim/v2/Users" && q.Has("startIndex"):
			byIndex.Add(1)
			w.WriteHeader(400)
		case r.URL.Path == "/scim/v2/Users" && q.Has("cursor"):
			from, _ := strconv.Atoi(q.Get("cursor")) // "" is 0
			var res []map[string]any
			for i := from; i < min(from+2, 5); i++ {
				res = append(res, map[string]any{"id": fmt.Sprintf("t%d", i), "userName": fmt.Sprintf("other%d", i)})
			}
			page := map[string]any{"totalResults": 5, "Resources": res}
			if from+2 < 5 {
				page["nextCursor"] = strconv.Itoa(from + 2)
			}
			json.NewEncoder(w).Encode(page)
		default:
			w.WriteHeader(404)
		}
	}))
	defer srv.Close()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list := []push.TargetConfig{{Name: "c", URL: srv.URL + "/scim/v2", Token: confval.NewSecret("x")}}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	rep, err := push.NewTarget(list[0], st, push.WorkerOptions{}).Reconcile(context.Background(), push.ReconcileOptions{PageSize: 2})
	if err != nil || rep.TargetUsers != 5 || rep.Unmanaged != 5 || rep.Requests != 4 || byIndex.Load() != 0 {
		t.Fatalf("%+v, %v (index requests %d)", rep, err, byIndex.Load())
	}
}

// A target that ignores startIndex (answers every page with its first) makes reconcile fail
// instead of reading forever; one without totalResults ends at its first short page.
func TestReconcilePagingGuards(t *testing.T) {
	var total atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/scim/v2/Users" {
			w.WriteHeader(404)
			return
		}
		start, _ := strconv.Atoi(r.URL.Query().Get("startIndex"))
		page := map[string]any{"Resources": []map[string]any{{"id": "t1", "userName": "a"}, {"id": "t2", "userName": "b"}}}
		if n := total.Load(); n > 0 {
			page["totalResults"] = n // and the same page whatever startIndex says
		} else if start > 1 {
			page["Resources"] = []map[string]any{{"id": "t3", "userName": "c"}}
		}
		json.NewEncoder(w).Encode(page)
	}))
	defer srv.Close()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	list := []push.TargetConfig{{Name: "g", URL: srv.URL + "/scim/v2", Token: confval.NewSecret("x")}}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	tg := push.NewTarget(list[0], st, push.WorkerOptions{})
	rep, err := tg.Reconcile(context.Background(), push.ReconcileOptions{PageSize: 2})
	if err != nil || rep.TargetUsers != 3 || rep.Requests != 3 {
		t.Fatalf("without totalResults: %+v, %v", rep, err)
	}
	total.Store(10)
	if _, err := tg.Reconcile(context.Background(), push.ReconcileOptions{PageSize: 2}); err == nil || !strings.Contains(err.Error(), "first page again") {
		t.Fatalf("a target that ignores startIndex: %v", err)
	}
}
