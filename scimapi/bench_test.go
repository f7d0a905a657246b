package scimapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// The benchmarks share one on-disk cache with 100k users, 1k groups of 50 members and one group
// of 50k members, filled directly with Apply (SCIMAPI_BENCH_USERS overrides the user count).

var (
	fixtureOnce  sync.Once
	fixtureStore *cache.Store
	fixtureUsers int
	fixtureDir   string
)

// TestMain removes the benchmarks' shared cache once every test and benchmark is done.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureStore != nil {
		fixtureStore.Close()
	}
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

func benchUsers() int {
	if n, err := strconv.Atoi(os.Getenv("SCIMAPI_BENCH_USERS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

func fixture(b *testing.B) *cache.Store {
	fixtureOnce.Do(func() {
		dir, err := os.MkdirTemp("", "scimapi-bench-")
		if err != nil {
			b.Fatal(err)
		}
		fixtureDir = dir
		st, err := cache.Open(cache.Options{Dir: dir})
		if err != nil {
			b.Fatal(err)
		}
		fixtureUsers = benchUsers()
		start := time.Now()
		// Written as a first sync writes an empty cache: a bulk load (cache.Load), whose
		// tables sit in Badger's last level, with no level-0 tables for reads to search.
		l, err := st.BeginLoad(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		fillWith(b, l.Apply, fixtureUsers, 1000, min(50, fixtureUsers/1000))
		big := genGroup(1000, 0)
		for i := 0; i < min(50000, fixtureUsers); i++ {
			big.Members = append(big.Members, scim.Member{Value: userID(i), Type: scim.UserType, Display: fmt.Sprintf("User %d", i)})
		}
		if _, err := l.Apply(context.Background(), cache.Batch{Source: "test", Upserts: []*scim.Resource{big}}); err != nil {
			b.Fatal(err)
		}
		if err := l.Commit(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.Logf("fixture: %d users, 1001 groups in %v (%s)", fixtureUsers, time.Since(start).Round(time.Millisecond), dir)
		// Serve from a freshly opened cache, as `ldapscim serve` does after a restart: the
		// memory the fill used is not what serving needs.
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		if fixtureStore, err = cache.Open(cache.Options{Dir: dir}); err != nil {
			b.Fatal(err)
		}
		debug.FreeOSMemory()
		settle(b)
	})
	return fixtureStore
}

func benchAPI(b *testing.B) http.Handler {
	return scimapi.New(testConfig(b), fixture(b), scimapi.Options{})
}

func serve(b *testing.B, h http.Handler, target string) []byte {
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 200 {
		b.Fatalf("%s: %d %s", target, w.Code, w.Body.String())
	}
	return w.Body.Bytes()
}

// wrk runs the wrk load generator (2 threads, 8 keep-alive connections, 3 s) against base with
// the Lua script and returns the requests per second. Any non-2xx answer fails the benchmark.
func wrk(b *testing.B, base, script string) float64 {
	b.Helper()
	path, err := exec.LookPath("wrk")
	if err != nil {
		b.Fatal("wrk is not installed; `scripts/install-deps.sh wrk` (part of `make bench`) installs it: apt-get install wrk")
	}
	f := filepath.Join(b.TempDir(), "load.lua")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command(path, "-t2", "-c8", "-d3s", "-s", f, base).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "Non-2xx") {
		b.Fatalf("wrk got errors from %s:\n%s", base, out)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		b.Fatalf("no Requests/sec in wrk's output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	return rps
}

// wrkScript is a wrk script that sends GETs of the given paths, in turn, with the API token.
func wrkScript(paths []string) string {
	var b strings.Builder
	b.WriteString("paths = {")
	for i, p := range paths {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(p))
	}
	b.WriteString("}\ni = 0\nrequest = function()\n  i = i % #paths + 1\n")
	b.WriteString("  return wrk.format(\"GET\", paths[i], {[\"Authorization\"] = \"Bearer " + testToken + "\"})\nend\n")
	return b.String()
}

// BenchmarkUserNameFilterVsTrivialGin measures GET /Users?filter=userName eq "…" against a gin
// handler that returns a fixed body of the same size, both on real listeners, with the same load
// generator (wrk, 8 keep-alive connections, 3 s each). ratio is filter / trivial throughput
// when every request asks for the same user, as a load test does; ratio-10k-users when the
// requests go through 10,000 different users in turn: each run starts with an empty hot cache,
// which holds all of them (hot.go) once it has read each.
func BenchmarkUserNameFilterVsTrivialGin(b *testing.B) {
	h := benchAPI(b)
	path := func(i int) string {
		return "/scim/v2/Users?filter=" + q(fmt.Sprintf(`userName eq "user%d@example.com"`, i))
	}
	one := path(min(77777, fixtureUsers-1))
	var many []string
	for i := range min(10000, fixtureUsers) {
		many = append(many, path((i*7919)%fixtureUsers)) // spread over the whole id range
	}
	body := serve(b, h, one)
	gin.SetMode(gin.ReleaseMode)
	trivial := gin.New()
	trivial.GET("/scim/v2/Users", func(c *gin.Context) { c.Data(200, "application/scim+json", body) })
	api, fixed := httptest.NewServer(h), httptest.NewServer(trivial)
	defer api.Close()
	defer fixed.Close()
	for b.Loop() {
		rpsTrivial := wrk(b, fixed.URL, wrkScript([]string{one}))
		rpsAPI := wrk(b, api.URL, wrkScript([]string{one}))
		rpsMany := wrk(b, api.URL, wrkScript(many))
		b.ReportMetric(rpsAPI, "filter_req/s")
		b.ReportMetric(rpsMany, "filter-10k-users_req/s")
		b.ReportMetric(rpsTrivial, "trivial_req/s")
		b.ReportMetric(rpsAPI/rpsTrivial, "ratio")
		b.ReportMetric(rpsMany/rpsTrivial, "ratio-10k-users")
		b.ReportMetric(float64(len(body)), "body_bytes")
	}
	reportRSS(b)
}

// BenchmarkPageAllUsers pages through every user with count=100, as Okta's import does.
func BenchmarkPageAllUsers(b *testing.B) {
	h := benchAPI(b)
	serve(b, h, "/scim/v2/Users?count=1") // the first request builds the id snapshot
	for b.Loop() {
		start := time.Now()
		var first, last time.Duration
		for i := 1; i <= fixtureUsers; i += 100 {
			t0 := time.Now()
			serve(b, h, fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=100", i))
			d := time.Since(t0)
			if i == 1 {
				first = d
			}
			last = d
		}
		b.ReportMetric(time.Since(start).Seconds(), "total_s")
		b.ReportMetric(float64(first.Microseconds())/1000, "first_page_ms")
		b.ReportMetric(float64(last.Microseconds())/1000, "last_page_ms")
	}
	reportRSS(b)
}

// BenchmarkLastPage and BenchmarkFirstPage compare one page at each end (many iterations, so
// the ratio is not noise).
func BenchmarkFirstPage(b *testing.B) {
	h := benchAPI(b)
	for b.Loop() {
		serve(b, h, "/scim/v2/Users?startIndex=1&count=100")
	}
}

func BenchmarkLastPage(b *testing.B) {
	h := benchAPI(b)
	target := fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=100", fixtureUsers-99)
	for b.Loop() {
		serve(b, h, target)
	}
}

// BenchmarkGroupsExcludeMembers is Entra's group read: the first 1000 of 1001 groups (the 50k-member one included)
// without members.
func BenchmarkGroupsExcludeMembers(b *testing.B) {
	h := benchAPI(b)
	for b.Loop() {
		body := serve(b, h, "/scim/v2/Groups?excludedAttributes=members")
		if !strings.Contains(string(body), `"itemsPerPage":1000`) {
			b.Fatalf("got %.200s", body)
		}
	}
}

// BenchmarkGet50kMemberGroup renders the 50k-member group with its members.
func BenchmarkGet50kMemberGroup(b *testing.B) {
	h := benchAPI(b)
	for b.Loop() {
		serve(b, h, "/scim/v2/Groups/"+groupID(1000))
	}
}

// reportRSS reports the process's resident set size now and at its peak, in MB.
func reportRSS(b *testing.B) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(raw), "\n") {
		for key, unit := range map[string]string{"VmRSS:": "rss_MB", "VmHWM:": "peak_rss_MB"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
				b.ReportMetric(float64(kb)/1024, unit)
			}
		}
	}
}

// settle waits (up to a minute) until the process is idle: Badger compacts the freshly written
// tables in the background for a while, and that would be measured as serving cost.
func settle(b *testing.B) {
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := time.Now()
	for time.Since(start) < time.Minute {
		before := cpu()
		time.Sleep(500 * time.Millisecond)
		if cpu()-before < 25*time.Millisecond {
			break
		}
	}
	b.Logf("settled after %v", time.Since(start).Round(100*time.Millisecond))
}
