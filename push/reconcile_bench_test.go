package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// benchSCIM is the in-process SCIM target of BenchmarkReconcile100k: users only, in memory,
// behind a real HTTP server (httptest, loopback). It pages like a real target (startIndex and
// count over its users in creation order, each page encoded as a SCIM ListResponse), answers
// `userName eq "x"` filters joined by `or`, creates (409 on a taken userName), patches with
// simple paths, and deletes. SCIMMY at 100k users spends most of a paged read scanning its
// array per page in Node, which would measure SCIMMY rather than ldapscim.
type benchSCIM struct {
	mu       sync.Mutex
	users    map[string]map[string]any
	byName   map[string]string
	order    []string
	seq      int
	requests atomic.Int64
}

func newBenchSCIM() *benchSCIM {
	return &benchSCIM{users: map[string]map[string]any{}, byName: map[string]string{}}
}

var eqTerm = regexp.MustCompile(`userName eq "((?:[^"\\]|\\.)*)"`)

func (s *benchSCIM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	w.Header().Set("Content-Type", "application/scim+json")
	s.mu.Lock()
	defer s.mu.Unlock()
	path := strings.TrimPrefix(r.URL.Path, "/scim/v2")
	id := strings.TrimPrefix(path, "/Users/")
	switch {
	case path == "/Users" && r.Method == http.MethodGet:
		s.list(w, r)
	case path == "/Users" && r.Method == http.MethodPost:
		var d map[string]any
		if json.NewDecoder(r.Body).Decode(&d) != nil {
			w.WriteHeader(400)
			return
		}
		name := strings.ToLower(fmt.Sprint(d["userName"]))
		if _, taken := s.byName[name]; taken {
			w.WriteHeader(409)
			w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"409","scimType":"uniqueness"}`))
			return
		}
		s.seq++
		d["id"] = fmt.Sprintf("t%07d", s.seq)
		s.users[d["id"].(string)], s.byName[name] = d, d["id"].(string)
		s.order = append(s.order, d["id"].(string))
		w.WriteHeader(201)
		json.NewEncoder(w).Encode(d)
	case strings.HasPrefix(path, "/Users/") && s.users[id] == nil:
		w.WriteHeader(404)
	case strings.HasPrefix(path, "/Users/") && r.Method == http.MethodPatch:
		var p struct {
			Operations []struct {
				Op    string
				Path  string
				Value any
			}
		}
		if json.NewDecoder(r.Body).Decode(&p) != nil {
			w.WriteHeader(400)
			return
		}
		d := s.users[id]
		for _, op := range p.Operations {
			setPath(d, strings.ToLower(op.Op), op.Path, op.Value)
		}
		json.NewEncoder(w).Encode(d)
	case strings.HasPrefix(path, "/Users/") && r.Method == http.MethodDelete:
		s.remove(id)
		w.WriteHeader(204)
	default:
		w.WriteHeader(404)
	}
}

func (s *benchSCIM) remove(id string) {
	delete(s.byName, strings.ToLower(fmt.Sprint(s.users[id]["userName"])))
	delete(s.users, id)
	if i := slices.Index(s.order, id); i >= 0 {
		s.order = slices.Delete(s.order, i, i+1)
	}
}

// setPath applies one PATCH operation with a path of "attr", "attr.sub" or "urn:...:attr".
func setPath(d map[string]any, op, path string, v any) {
	if path == "" {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				d[k] = x
			}
		}
		return
	}
	parent, attr := d, path
	if i := strings.LastIndexByte(path, ':'); i > 0 && strings.HasPrefix(strings.ToLower(path), "urn:") {
		m, _ := d[path[:i]].(map[string]any)
		if m == nil {
			m = map[string]any{}
			d[path[:i]] = m
		}
		parent, attr = m, path[i+1:]
	} else if a, b, ok := strings.Cut(path, "."); ok {
		m, _ := d[a].(map[string]any)
		if m == nil {
			m = map[string]any{}
			d[a] = m
		}
		parent, attr = m, b
	}
	if op == "remove" {
		delete(parent, attr)
	} else {
		parent[attr] = v
	}
}

func (s *benchSCIM) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var page []map[string]any
	total := len(s.order)
	start, _ := strconv.Atoi(q.Get("startIndex"))
	start = max(start, 1)
	if f := q.Get("filter"); f != "" {
		for _, m := range eqTerm.FindAllStringSubmatch(f, -1) {
			if id, ok := s.byName[strings.ToLower(m[1])]; ok {
				page = append(page, s.users[id])
			}
		}
		total = len(page)
	} else {
		count := 100
		if c, err := strconv.Atoi(q.Get("count")); err == nil {
			count = min(max(c, 0), 1000)
		}
		for i := start - 1; i >= 0 && i < len(s.order) && len(page) < count; i++ {
			page = append(page, s.users[s.order[i]])
		}
	}
	if page == nil {
		page = []map[string]any{}
	}
	json.NewEncoder(w).Encode(map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:ListResponse"},
		"totalResults": total, "startIndex": start, "itemsPerPage": len(page), "Resources": page})
}

// BenchmarkReconcile100k reconciles a target holding 100k users (LDAPSCIM_RECONCILE_USERS) that
// ldapscim pushed, after 1% of them were edited there, 0.1% deleted there and 0.1% unmanaged
// ones created there, and compares it with the floor: one paged read of the target's users by
// a plain HTTP client at the same page size (100). It reports requests and seconds of the
// floor, of a dry run (the fastest of three rounds of floor and dry run each) and of the run that
// corrects the drift, their ratios to the floor, and what a reconciliation holds in the Go heap
// once it has read the whole target, over what the process held before it (which includes the
// in-process target's users and the cache).
func BenchmarkReconcile100k(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("LDAPSCIM_RECONCILE_USERS")); err == nil && v > 0 {
		n = v
	}
	for b.Loop() {
		st, err := cache.Open(cache.Options{Dir: b.TempDir()})
		if err != nil {
			b.Fatal(err)
		}
		fillStore(b, st, 0, n)
		target := newBenchSCIM()
		srv := httptest.NewServer(target)
		tc := []push.TargetConfig{{Name: "bench", URL: srv.URL + "/scim/v2", Token: confval.NewSecret("x"), Concurrency: benchConcurrency}}
		if errs := push.Prepare(tc, nil); len(errs) > 0 {
			b.Fatal(errs)
		}
		tg := push.NewTarget(tc[0], st, push.WorkerOptions{})
		ctx := context.Background()
		for {
			k, err := tg.PushOnce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if k == 0 {
				break
			}
		}
		// The drift, made at the target behind ldapscim's back.
		target.mu.Lock()
		if len(target.order) != n {
			b.Fatalf("the target holds %d users, want %d", len(target.order), n)
		}
		edited, deleted, unmanaged := n/100, n/1000, n/1000
		for i := 0; i < edited; i++ {
			target.users[target.order[i*100+1]]["title"] = "Hand-edited"
		}
		for i := 0; i < deleted; i++ {
			target.remove(target.order[i*997%len(target.order)])
		}
		for i := 0; i < unmanaged; i++ {
			target.seq++
			id := fmt.Sprintf("t%07d", target.seq)
			target.users[id] = map[string]any{"id": id, "userName": fmt.Sprintf("contractor%d", i), "active": true}
			target.byName[fmt.Sprintf("contractor%d", i)] = id
			target.order = append(target.order, id)
		}
		target.mu.Unlock()

		// The machine is shared: three rounds of floor and dry run, the fastest of each.
		th := ingest.Threshold{MaxDeletes: n, MaxDeletePercent: 100}
		var floorReqs int
		var floor, dryTime time.Duration
		var dry *push.ReconcileReport
		for round := range 3 {
			reqs, d := pagedRead(b, srv.URL+"/scim/v2/Users", 100)
			start := time.Now()
			rep, err := tg.Reconcile(ctx, push.ReconcileOptions{Threshold: th})
			took := time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if round == 0 || d < floor {
				floor = d
			}
			if round == 0 || took < dryTime {
				dryTime = took
			}
			floorReqs, dry = reqs, rep
		}
		if dry.Missing != deleted || dry.Differing != edited-countEditedDeleted(edited, deleted, n) || dry.Unmanaged != unmanaged || dry.Extra != 0 {
			b.Fatalf("dry run: missing %d, differing %d, unmanaged %d, extra %d", dry.Missing, dry.Differing, dry.Unmanaged, dry.Extra)
		}
		// What a reconciliation holds once it has read the whole target (the target id → cache
		// id map, the ids found, the drifts), in a dry run of its own (not timed).
		heapBefore, held := liveHeap(), 0.0
		push.SetAfterCompare(func() { held = liveHeap() })
		_, err = tg.Reconcile(ctx, push.ReconcileOptions{Threshold: th})
		push.SetAfterCompare(nil)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		applied, err := tg.Reconcile(ctx, push.ReconcileOptions{Apply: true, Threshold: th})
		applyTime := time.Since(start)
		if err != nil || applied.Failed != 0 {
			b.Fatalf("apply: %v, failed %d", err, applied.Failed)
		}
		if again, err := tg.Reconcile(ctx, push.ReconcileOptions{Threshold: th}); err != nil || again.Total() != 0 {
			b.Fatalf("after apply: %+v, %v", again, err)
		}
		srv.Close()
		st.Close()
		b.ReportMetric(float64(floorReqs), "floor-requests")
		b.ReportMetric(floor.Seconds(), "floor-s")
		b.ReportMetric(float64(dry.Requests), "dry-requests")
		b.ReportMetric(dryTime.Seconds(), "dry-s")
		b.ReportMetric(dryTime.Seconds()/floor.Seconds(), "dry-time-x-floor")
		b.ReportMetric(float64(applied.Requests), "apply-requests")
		b.ReportMetric(applyTime.Seconds(), "apply-s")
		b.ReportMetric(applyTime.Seconds()/floor.Seconds(), "apply-time-x-floor")
		b.ReportMetric(float64(applied.Total()), "corrected")
		b.ReportMetric(heapBefore, "heapMB-before")
		b.ReportMetric(held-heapBefore, "heapMB-held-after-read")
		b.ReportMetric((held-heapBefore)*(1<<20)/float64(n), "held-bytes/user")
	}
}

// countEditedDeleted is how many of the edited users the deletions took (they are missing,
// not differing).
func countEditedDeleted(edited, deleted, n int) int {
	// Edited: order positions i*100+1 before the deletions; deleted: positions i*997 of a
	// shrinking list. Computed rather than assumed: replay both on the positions.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	ed := map[int]bool{}
	for i := 0; i < edited; i++ {
		ed[i*100+1] = true
	}
	gone := 0
	for i := 0; i < deleted; i++ {
		j := i * 997 % len(order)
		if ed[order[j]] {
			gone++
		}
		order = slices.Delete(order, j, j+1)
	}
	return gone
}

// pagedRead reads every user of url with a plain client, count a page: the floor.
func pagedRead(b *testing.B, url string, count int) (int, time.Duration) {
	start := time.Now()
	reqs := 0
	for i := 1; ; {
		resp, err := http.Get(fmt.Sprintf("%s?startIndex=%d&count=%d", url, i, count))
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		reqs++
		var page struct {
			TotalResults int
			Resources    []json.RawMessage
		}
		if err := json.Unmarshal(body, &page); err != nil {
			b.Fatal(err)
		}
		i += len(page.Resources)
		if len(page.Resources) == 0 || i > page.TotalResults {
			return reqs, time.Since(start)
		}
	}
}

// liveHeap is the heap of live objects, in MB, after two collections with nothing else
// running in the benchmark.
func liveHeap() float64 {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return float64(s[0].Value.Uint64()) / (1 << 20)
}
