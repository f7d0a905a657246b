package scimapi_test

import (
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/metrics"
	"github.com/ldapscim/ldapscim/scimapi"
)

// TestMetricsLabelsStayBounded: unauthenticated requests with random method tokens and random
// paths (the server answers them all, 404 before authentication) must not become label values:
// the scrape stays small and holds none of the random strings.
func TestMetricsLabelsStayBounded(t *testing.T) {
	st := openStore(t, "")
	m := metrics.New(st, metrics.Options{})
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{RequestObservers: []scimapi.RequestObserver{m.HTTPObserver("scim")}}))
	defer srv.Close()

	rnd := rand.New(rand.NewPCG(1, 2))
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	word := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[rnd.IntN(len(letters))]
		}
		return string(b)
	}
	var sent []string
	paths := []string{"/scim/v2/Users/", "/scim/v2/Groups/", "/scim/v2/", "/", "/scim/v2/Schemas/"}
	for i := 0; i < 2000; i++ {
		method := word(16 + rnd.IntN(48))
		if i%50 == 1 {
			method = word(4096 + rnd.IntN(4096)) // the reported attack: 4-8 KB methods
		}
		path := paths[i%len(paths)] + word(12+rnd.IntN(20))
		if i%4 == 0 {
			method = []string{"GET", "POST", "DELETE", "PATCH"}[i/4%4] // known methods, random paths
		}
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("%s %s without a token: %d", method, path, resp.StatusCode)
		}
		if len(sent) < 400 {
			sent = append(sent, path[strings.LastIndexByte(path, '/')+1:])
			if i%4 != 0 {
				sent = append(sent, method)
			}
		}
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	var series []string
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "ldapscim_http_requests_total{") {
			series = append(series, line)
		}
	}
	// Routes: "unmatched" and the few patterns the known methods hit; methods: 4 + other;
	// codes: 401, 404, 501.
	if len(series) == 0 || len(series) > 30 {
		t.Fatalf("%d request series:\n%s", len(series), strings.Join(series, "\n"))
	}
	if len(body) > 64<<10 {
		t.Fatalf("scrape is %d bytes", len(body))
	}
	for _, s := range sent {
		if strings.Contains(body, s) {
			t.Fatalf("the scrape contains the client's string %q", s)
		}
	}
	if !strings.Contains(body, `method="other"`) || !strings.Contains(body, `route="unmatched"`) {
		t.Fatalf("no other/unmatched series:\n%s", strings.Join(series, "\n"))
	}
	for _, line := range series {
		i := strings.Index(line, `method="`)
		meth := line[i+8:]
		meth = meth[:strings.IndexByte(meth, '"')]
		if metrics.MethodLabel(meth) != meth {
			t.Errorf("method label %q", meth)
		}
	}
}
