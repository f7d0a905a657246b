package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// recorder sits in front of a target: it counts requests and the member values of group
// PATCHes, and its hook may answer a request itself (return true) or act after the target
// answered.
type recorder struct {
	rp *httputil.ReverseProxy
	mu sync.Mutex
	// by method and first path segment: "PATCH /Groups"
	requests map[string]int
	added    []string // member values of add operations, in order
	removed  []string
	before   func(r *http.Request, body []byte, w http.ResponseWriter) bool
	after    func(r *http.Request, body []byte)
}

func newRecorder(t *testing.T, target string) (*recorder, string) {
	u, _ := url.Parse(target)
	rec := &recorder{rp: httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host}), requests: map[string]int{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL + u.Path
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.requests, rec.added, rec.removed = map[string]int{}, nil, nil
}

func (rec *recorder) count(k string) int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.requests[k]
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec.mu.Lock()
	before, after := rec.before, rec.after
	seg := r.URL.Path[strings.LastIndex(r.URL.Path, "/v2/")+4:]
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg = seg[:i]
	}
	rec.requests[r.Method+" /"+seg]++
	rec.mu.Unlock()
	if before != nil && before(r, body, w) {
		return
	}
	rec.rp.ServeHTTP(w, r)
	if r.Method == "PATCH" && seg == "Groups" {
		var p struct {
			Operations []struct {
				Op    string          `json:"op"`
				Path  string          `json:"path"`
				Value json.RawMessage `json:"value"`
			}
		}
		json.Unmarshal(body, &p)
		rec.mu.Lock()
		for _, op := range p.Operations {
			switch {
			case strings.EqualFold(op.Op, "add") && op.Path == "members":
				var vals []struct{ Value string }
				json.Unmarshal(op.Value, &vals)
				for _, v := range vals {
					rec.added = append(rec.added, v.Value)
				}
			case strings.EqualFold(op.Op, "remove") && strings.HasPrefix(op.Path, "members[value eq "):
				rec.removed = append(rec.removed, strings.TrimSuffix(strings.TrimPrefix(op.Path, `members[value eq "`), `"]`))
			}
		}
		rec.mu.Unlock()
	}
	if after != nil {
		after(r, body)
	}
}

// bigEnv is a cache filled by cache.Apply (no directory), pushed to SCIMMY through a recorder.
type bigEnv struct {
	t      *testing.T
	store  *cache.Store
	scimmy *testenv.Scimmy
	rec    *recorder
	tg     *push.Target
	users  []*scim.Resource
}

const bigGroupID = "99999999-0000-4000-8000-000000000001"

// newBigEnv stores nUsers users. With seed they are not pushed: their push states are seeded
// with made-up target ids (SCIMMY does not check that members exist), which keeps a test of a
// 20k-member group from spending minutes creating users.
func newBigEnv(t *testing.T, nUsers int, seed bool, mod func(*push.TargetConfig)) *bigEnv {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &bigEnv{t: t, store: st, scimmy: testenv.StartScimmy(t)}
	for i := range nUsers {
		e.users = append(e.users, benchUser("", i))
	}
	for start := 0; start < nUsers; start += 5000 {
		part := e.users[start:min(start+5000, nUsers)]
		if _, err := st.Apply(context.Background(), cache.Batch{Source: "test", Upserts: part}); err != nil {
			t.Fatal(err)
		}
		if !seed {
			continue
		}
		var outs []cache.PushOutcome
		for _, u := range part {
			outs = append(outs, cache.PushOutcome{ID: u.ID, State: &cache.PushState{Type: scim.UserType, TargetID: "t-" + u.ID, Hash: "seeded", Active: true}})
		}
		if err := st.RecordPush(context.Background(), "scimmy", outs); err != nil {
			t.Fatal(err)
		}
	}
	if seed {
		head, _ := st.JournalHead(context.Background())
		if err := st.SetPushCursor(context.Background(), "scimmy", head); err != nil {
			t.Fatal(err)
		}
	}
	var url string
	e.rec, url = newRecorder(t, e.scimmy.URL)
	tc := push.TargetConfig{Name: "scimmy", URL: url, Token: confval.NewSecret(e.scimmy.Token), Groups: true, Concurrency: 8,
		RetryPolicy: push.RetryPolicy{BackoffBase: confval.Duration(20 * time.Millisecond), BackoffMax: confval.Duration(200 * time.Millisecond)},
		Timeout:     confval.Duration(5 * time.Minute), PollInterval: confval.Duration(50 * time.Millisecond)}
	if mod != nil {
		mod(&tc)
	}
	list := []push.TargetConfig{tc}
	if errs := push.Prepare(list, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	e.tg = push.NewTarget(list[0], st, push.WorkerOptions{})
	return e
}

func member(u *scim.Resource) scim.Member {
	return scim.Member{Value: u.ID, Type: scim.UserType, Display: u.DisplayName()}
}

// createGroup stores the group with users[from:to] as members.
func (e *bigEnv) createGroup(from, to int) {
	e.t.Helper()
	g := &scim.Resource{Type: scim.GroupType, ID: bigGroupID, Attributes: map[string]any{"displayName": "big"}}
	for _, u := range e.users[from:to] {
		g.Members = append(g.Members, member(u))
	}
	if _, err := e.store.Apply(context.Background(), cache.Batch{Source: "test", Upserts: []*scim.Resource{g}}); err != nil {
		e.t.Fatal(err)
	}
}

// edit removes and adds members of the group (by user index).
func (e *bigEnv) edit(remove, add []int) {
	e.t.Helper()
	ed := cache.MemberEdit{Group: bigGroupID}
	for _, i := range remove {
		ed.Remove = append(ed.Remove, e.users[i].ID)
	}
	for _, i := range add {
		ed.Set = append(ed.Set, member(e.users[i]))
	}
	if _, err := e.store.Apply(context.Background(), cache.Batch{Source: "test", MemberEdits: []cache.MemberEdit{ed}}); err != nil {
		e.t.Fatal(err)
	}
}

// check compares the target's members of the group (their target ids) with the cache's
// members' target ids, and fails on duplicates; the member keys must match too.
func (e *bigEnv) check() {
	e.t.Helper()
	ctx := context.Background()
	var ids []string
	err := e.store.ForEachMember(ctx, bigGroupID, "", func(m scim.Member) error {
		ids = append(ids, m.Value)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	states, err := e.store.PushStates(ctx, "scimmy", ids)
	if err != nil {
		e.t.Fatal(err)
	}
	var want []string
	for _, id := range ids {
		want = append(want, states[id].TargetID)
	}
	slices.Sort(want)
	g := groups(e.t, e.scimmy)["big"]
	if g == nil {
		e.t.Fatal("no group big at the target")
	}
	var got []string
	list, _ := g["members"].([]any)
	for _, m := range list {
		got = append(got, m.(map[string]any)["value"].(string))
	}
	slices.Sort(got)
	if i := slices.Index(slices.Compact(slices.Clone(got)), ""); len(slices.Compact(slices.Clone(got))) != len(got) || i >= 0 {
		e.t.Fatalf("the target lists a member twice (or an empty one)")
	}
	if !slices.Equal(got, want) {
		e.t.Fatalf("target has %d members, the cache %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
	sent, err := e.store.SentMembers(ctx, "scimmy", bigGroupID, "", 0)
	if err != nil || len(sent) != len(want) {
		e.t.Fatalf("member keys: %d, %v; want %d", len(sent), err, len(want))
	}
	for i, m := range sent {
		if m.ID != ids[i] || m.TargetID != states[ids[i]].TargetID {
			e.t.Fatalf("member key %+v, want %s", m, ids[i])
		}
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func rangeInts(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// A group of 12,000 members (more than one cache slice) is created at the target with its members in membership_chunk
// PATCHes; removing 100 and adding 100 then sends exactly those 200 changes (no read of the
// group, no other member), SCIMMY ends with the exact member set, and no push value holds the
// membership.
func TestBigGroupDeltaSendsOnlyTheChange(t *testing.T) {
	const n, chunk = 12000, 3000
	e := newBigEnv(t, n+100, true, func(tc *push.TargetConfig) { tc.MembershipChunk = chunk })
	e.createGroup(0, n)
	drain(t, e.tg)
	if got := e.rec.count("PATCH /Groups"); got != n/chunk {
		t.Fatalf("creating the group took %d membership PATCHes, want %d of %d", got, n/chunk, chunk)
	}
	if got := len(e.rec.added); got != n {
		t.Fatalf("%d members added, want %d", got, n)
	}
	e.check()

	e.rec.reset()
	e.edit(rangeInts(1000, 1100), rangeInts(n, n+100))
	drain(t, e.tg)
	if e.rec.count("GET /Groups") != 0 || e.rec.count("PATCH /Groups") != 2 || len(e.rec.added) != 100 || len(e.rec.removed) != 100 {
		t.Fatalf("the change of 200 members sent %v, %d adds, %d removes; want a PATCH of 100 adds and one of 100 removes", e.rec.requests, len(e.rec.added), len(e.rec.removed))
	}
	states, _ := e.store.PushStates(context.Background(), "scimmy", []string{e.users[n].ID, e.users[1000].ID})
	if !slices.Contains(e.rec.added, states[e.users[n].ID].TargetID) || !slices.Contains(e.rec.removed, states[e.users[1000].ID].TargetID) {
		t.Fatal("the PATCH does not carry the changed members")
	}
	e.check()

	keys, largest, which, err := e.store.PushValueSizes(context.Background(), "scimmy")
	if err != nil || largest > 4096 {
		t.Fatalf("largest push value %d bytes (%q), of %d keys, %v", largest, which, keys, err)
	}
	t.Logf("%d push keys, largest value %d bytes", keys, largest)
}

// A membership PATCH sequence interrupted midway, by a killed worker (ctx cancelled after the
// target applied a PATCH) or by a target failing until the change is dead-lettered, leaves the
// group uncertain: the next push re-reads it from the target, so no member is added twice and
// no removal is lost. A state in the format before member keys (members inside Sent) is
// migrated to member keys by the next delivery.
func TestBigGroupInterruptedMembershipChange(t *testing.T) {
	const n = 1000
	e := newBigEnv(t, n+300, false, func(tc *push.TargetConfig) {
		tc.MembershipChunk = 30
		tc.MaxAttempts = 1
	})
	e.createGroup(0, n)
	drain(t, e.tg)
	e.check()

	// Killed: the worker's context ends right after the target applied the 5th PATCH.
	e.edit(rangeInts(0, 300), rangeInts(n, n+300))
	ctx, cancel := context.WithCancel(context.Background())
	var patches atomic.Int32
	e.rec.mu.Lock()
	e.rec.after = func(r *http.Request, _ []byte) {
		if r.Method == "PATCH" {
			if patches.Add(1) == 5 {
				cancel()
			}
		}
	}
	e.rec.mu.Unlock()
	if _, err := e.tg.PushOnce(ctx); err == nil {
		t.Fatal("the interrupted push returned no error")
	}
	e.rec.mu.Lock()
	e.rec.after = nil
	e.rec.mu.Unlock()
	if g := groups(t, e.scimmy)["big"]; len(g["members"].([]any)) == n {
		t.Fatal("the interruption came before any PATCH")
	}
	e.rec.reset()
	drain(t, e.tg)
	if e.rec.count("GET /Groups") != 1 {
		t.Fatalf("the rerun did not re-read the uncertain group: %v", e.rec.requests)
	}
	e.check()

	// Failing: the target answers 500 from the 3rd membership PATCH on; with max_attempts 1
	// the change is dead-lettered. The next change of the group, a delta of 10 members, still
	// brings the whole membership in line.
	e.edit(rangeInts(300, 450), rangeInts(0, 150))
	patches.Store(0)
	e.rec.mu.Lock()
	e.rec.before = func(r *http.Request, _ []byte, w http.ResponseWriter) bool {
		if r.Method == "PATCH" {
			if patches.Add(1) >= 3 {
				w.WriteHeader(http.StatusInternalServerError)
				return true
			}
		}
		return false
	}
	e.rec.mu.Unlock()
	drain(t, e.tg)
	if dls, _ := e.store.DeadLetters(context.Background(), "scimmy"); len(dls) != 1 || dls[0].ID != bigGroupID {
		t.Fatalf("dead letters %+v; want the group's", dls)
	}
	e.rec.mu.Lock()
	e.rec.before = nil
	e.rec.mu.Unlock()
	e.edit(rangeInts(500, 505), rangeInts(150, 155))
	drain(t, e.tg)
	e.check()
	if dls, _ := e.store.DeadLetters(context.Background(), "scimmy"); len(dls) != 0 {
		t.Fatalf("dead letters left: %+v", dls)
	}

	// An old-format state: the membership inside Sent, no member keys.
	ctx = context.Background()
	states, _ := e.store.PushStates(ctx, "scimmy", []string{bigGroupID})
	old := states[bigGroupID]
	sent, _ := e.store.SentMembers(ctx, "scimmy", bigGroupID, "", 0)
	var list []any
	for _, m := range sent {
		list = append(list, map[string]any{"value": m.TargetID})
	}
	old.Sent, _ = json.Marshal(map[string]any{"schemas": []string{scim.SchemaGroup}, "displayName": "big", "members": list})
	old.Hash = "0123456789abcdef0123456789abcdef"
	if err := e.store.RecordPush(ctx, "scimmy", []cache.PushOutcome{{ID: bigGroupID, State: &old, DropSent: true}}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.store.SentMembers(ctx, "scimmy", bigGroupID, "", 0); len(keys) != 0 {
		t.Fatalf("%d member keys left", len(keys))
	}
	e.rec.reset()
	e.edit(rangeInts(505, 510), rangeInts(300, 305))
	drain(t, e.tg)
	if e.rec.count("GET /Groups") != 0 || len(e.rec.added) != 5 || len(e.rec.removed) != 5 {
		t.Fatalf("migrating sent %v, %d adds, %d removes; want the 10 changes", e.rec.requests, len(e.rec.added), len(e.rec.removed))
	}
	e.check()
	states, _ = e.store.PushStates(ctx, "scimmy", []string{bigGroupID})
	if strings.Contains(string(states[bigGroupID].Sent), "members") || states[bigGroupID].Hash == "" {
		t.Fatalf("state after the migration: %s", states[bigGroupID].Sent)
	}
}
