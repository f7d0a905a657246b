package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
)

// TestBuildInfo scrapes the handler over real HTTP and finds the build info gauge.
func TestBuildInfo(t *testing.T) {
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New(st, Options{})
	m.RegisterBuildInfo("v1.2.3-4-gabcdef0", "abcdef012345-dirty", "go1.26.8")
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %v %d", err, resp.StatusCode)
	}
	want := `ldapscim_build_info{commit="abcdef012345-dirty",goversion="go1.26.8",version="v1.2.3-4-gabcdef0"} 1` + "\n"
	if !strings.Contains(string(body), want) {
		t.Fatalf("scrape lacks %q:\n%s", want, body)
	}
	if !strings.Contains(string(body), "# TYPE ldapscim_build_info gauge\n") {
		t.Error("ldapscim_build_info is not typed as a gauge")
	}
}
