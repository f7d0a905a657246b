package scimapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// A group of 200,000 members on real Badger, served over real HTTP.

const bigMembers = 200000

var (
	bigOnce  sync.Once
	bigStore *cache.Store
	bigErr   error
)

// bigGroupStore is a cache holding 10 users and group 0 with bigMembers members (users that
// need not exist: the API renders members from the group alone). Apply writes it in slices.
func bigGroupStore(t testing.TB) *cache.Store {
	bigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scimapi-biggroup-")
		if err != nil {
			bigErr = err
			return
		}
		st, err := cache.Open(cache.Options{Dir: dir})
		if err != nil {
			bigErr = err
			return
		}
		var batch []*scim.Resource
		for i := range 10 {
			batch = append(batch, genUser(i))
		}
		g := genGroup(0, 0)
		g.Members = make([]scim.Member, bigMembers)
		for i := range g.Members {
			g.Members[i] = scim.Member{Value: userID(i), Type: scim.UserType, Display: fmt.Sprintf("User %d", i)}
		}
		batch = append(batch, g, genGroup(1, 3))
		if _, err := st.Apply(context.Background(), cache.Batch{Source: "test", Upserts: batch}); err != nil {
			bigErr = err
			return
		}
		bigStore = st
	})
	if bigErr != nil {
		t.Fatal(bigErr)
	}
	return bigStore
}

// countingStore counts the calls that read member keys.
type countingStore struct {
	*cache.Store
	streams     atomic.Int64 // StreamGroup
	withMembers atomic.Int64 // GetMany with members
	failAfter   int          // > 0: StreamGroup fails after that many members
}

func (c *countingStore) StreamGroup(ctx context.Context, gid string, head func(*scim.Resource) error, member func(cache.MemberBytes) error) (bool, error) {
	c.streams.Add(1)
	n := 0
	return c.Store.StreamGroup(ctx, gid, head, func(m cache.MemberBytes) error {
		if n++; c.failAfter > 0 && n > c.failAfter {
			return errors.New("disk on fire")
		}
		return member(m)
	})
}

func (c *countingStore) GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error) {
	if withMembers {
		c.withMembers.Add(1)
	}
	return c.Store.GetMany(ctx, typ, ids, withMembers)
}

func (c *countingStore) ForEachMember(context.Context, string, string, func(scim.Member) error) error {
	panic("the API must not call ForEachMember")
}

func (c *countingStore) Members(context.Context, string, string, int) ([]scim.Member, error) {
	panic("the API must not call Members")
}

func httpGet(t testing.TB, base, target string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestBigGroupStreams(t *testing.T) {
	st := &countingStore{Store: bigGroupStore(t)}
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{}))
	defer srv.Close()
	target := "/scim/v2/Groups/" + groupID(0)

	// The whole answer, decoded: every member once, in id order, and the ETag is meta.version.
	resp := httpGet(t, srv.URL, target)
	h := sha256.New()
	var g struct {
		ID      string
		Members []struct{ Value, Display, Type, Ref string }
		Meta    struct{ Version string }
	}
	if err := json.NewDecoder(io.TeeReader(resp.Body, h)).Decode(&g); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || g.ID != groupID(0) || len(g.Members) != bigMembers {
		t.Fatalf("status %d, id %s, %d members", resp.StatusCode, g.ID, len(g.Members))
	}
	for i, m := range g.Members {
		if m.Value != userID(i) || m.Display != fmt.Sprintf("User %d", i) || m.Type != "User" {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	if resp.Header.Get("ETag") != g.Meta.Version || g.Meta.Version == "" {
		t.Fatalf("ETag %s, meta.version %s", resp.Header.Get("ETag"), g.Meta.Version)
	}
	full := h.Sum(nil)
	g.Members = nil
	if n := st.streams.Load(); n != 1 {
		t.Fatalf("%d member streams for one GET", n)
	}

	// The same request again, its body only counted: the bytes the process allocates while
	// serving it stay far below the member list (~20 MB as []scim.Member) and the body
	// (~30 MB), which the API held at once before.
	runtime.GC()
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	var before, after runtime.MemStats
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	})
	runtime.ReadMemStats(&before)
	resp = httpGet(t, srv.URL, target)
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	close(stop)
	wg.Wait()
	if err != nil || string(h.Sum(nil)) != string(full) {
		t.Fatalf("second body (%d bytes) differs: %v", n, err)
	}
	allocated := after.TotalAlloc - before.TotalAlloc
	growth := int64(peak.Load()) - int64(before.HeapAlloc)
	t.Logf("body %.1f MB; allocated %.1f MB during the request (%d objects); peak heap growth %.1f MB",
		float64(n)/1e6, float64(allocated)/1e6, after.Mallocs-before.Mallocs, float64(growth)/1e6)
	if allocated > 30<<20 {
		t.Errorf("the request allocated %.1f MB: the members are not streamed", float64(allocated)/1e6)
	}
	if growth > 30<<20 {
		t.Errorf("the heap grew by %.1f MB during the request", float64(growth)/1e6)
	}
}

// excludedAttributes=members and members.value eq never read a member list; rendering the
// members a filter found is one stream.
func TestBigGroupMemberQueriesReadNoMembers(t *testing.T) {
	st := &countingStore{Store: bigGroupStore(t)}
	c := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
	member := userID(123456)
	for _, tc := range []struct {
		target  string
		streams int64
		ids     []string
	}{
		{"/scim/v2/Groups/" + groupID(0) + "?excludedAttributes=members", 0, nil},
		{"/scim/v2/Groups/" + groupID(0) + "?attributes=displayName", 0, nil},
		{"/scim/v2/Groups?excludedAttributes=members", 0, []string{groupID(0), groupID(1)}},
		{"/scim/v2/Groups?excludedAttributes=members&filter=" + q(`members.value eq "`+member+`"`), 0, []string{groupID(0)}},
		{"/scim/v2/Groups?attributes=displayName&filter=" + q(`members eq "`+member+`"`), 0, []string{groupID(0)}},
		{"/scim/v2/Groups?excludedAttributes=members&filter=" + q(`members[value eq "`+member+`"] and displayName eq "Group 0"`), 0, []string{groupID(0)}},
		{"/scim/v2/Groups?excludedAttributes=members&filter=" + q(`members[value eq "`+member+`" and type eq "User"]`), 0, []string{groupID(0)}},
		{"/scim/v2/Groups?excludedAttributes=members&filter=" + q(`members[value eq "`+member+`" and type eq "Group"]`), 0, nil},
		{"/scim/v2/Groups?filter=" + q(`members.value eq "nobody"`), 0, nil},
		{"/scim/v2/Groups?filter=" + q(`members.value eq "`+member+`"`), 1, []string{groupID(0)}}, // the rendering
		// No index: each group is streamed until decided (user 4 is in both groups, early).
		{"/scim/v2/Groups?excludedAttributes=members&filter=" + q(`members.display co "User 4"`), 2, []string{groupID(0), groupID(1)}},
	} {
		st.streams.Store(0)
		r := c.get(tc.target)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tc.target, r.status, r.body)
		}
		var ids []string
		if id, ok := r.json["id"].(string); ok {
			ids = []string{id} // a GET of the group
			tc.ids = ids
		} else {
			for _, x := range resources(t, r) {
				ids = append(ids, x["id"].(string))
			}
		}
		if fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
			t.Errorf("%s: ids %v, want %v", tc.target, ids, tc.ids)
		}
		if got := st.streams.Load(); got != tc.streams {
			t.Errorf("%s: %d member streams, want %d", tc.target, got, tc.streams)
		}
		if len(r.body) > 1<<20 && tc.streams == 0 {
			t.Errorf("%s: %d bytes", tc.target, len(r.body))
		}
	}
	st.streams.Store(0)
	r := c.do("POST", "/scim/v2/Groups/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],`+
		`"filter":"members[value eq \"`+member+`\"]","excludedAttributes":["members"]}`)
	if res := resources(t, r); len(res) != 1 || res[0]["id"] != groupID(0) || st.streams.Load() != 0 {
		t.Errorf(".search: %d streams, %s", st.streams.Load(), r.body)
	}
	if n := st.withMembers.Load(); n != 0 {
		t.Errorf("%d GetMany calls with members", n)
	}
}

// A read error after members went out aborts the connection: the client sees a broken
// transfer, never a complete-looking group with fewer members. Before anything went out it is
// an ordinary 500.
func TestBigGroupErrorMidStreamAborts(t *testing.T) {
	st := &countingStore{Store: bigGroupStore(t), failAfter: 100000}
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{}))
	defer srv.Close()
	resp := httpGet(t, srv.URL, "/scim/v2/Groups/"+groupID(0))
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("status %d, read error %v after %d bytes", resp.StatusCode, err, len(body))
	}
	if json.Valid(body) {
		t.Fatal("the aborted body is valid JSON")
	}

	st.failAfter = 10
	resp = httpGet(t, srv.URL, "/scim/v2/Groups/"+groupID(0))
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || err != nil || !strings.Contains(string(body), `"status":"500"`) {
		t.Fatalf("early error: %d %v %s", resp.StatusCode, err, body)
	}
}

// BenchmarkGetBigGroup serves GET /Groups/{id} of the 200,000-member group to a writer that
// discards the body.
func BenchmarkGetBigGroup(b *testing.B) {
	h := scimapi.New(testConfig(b), bigGroupStore(b), scimapi.Options{})
	req := httptest.NewRequest("GET", "/scim/v2/Groups/"+groupID(0), nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.code != 200 {
		b.Fatalf("status %d", w.code)
	}
	b.SetBytes(w.n)
	b.ReportAllocs()
	for b.Loop() {
		w.n, w.h = 0, http.Header{}
		h.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/1e6, "body_MB")
}

type discardWriter struct {
	h    http.Header
	code int
	n    int64
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Flush()                      {}
func (w *discardWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }
