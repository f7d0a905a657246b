package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
)

// ldapscim_ha_leader follows the elector at scrape time.
func TestHALeader(t *testing.T) {
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New(st, Options{})
	var leading atomic.Bool
	m.RegisterHALeader(leading.Load)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	scrape := func() string {
		resp, err := http.Get(srv.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if b := scrape(); !strings.Contains(b, "\nldapscim_ha_leader 0\n") || !strings.Contains(b, "# TYPE ldapscim_ha_leader gauge\n") {
		t.Fatalf("a follower's scrape:\n%s", b)
	}
	leading.Store(true)
	if b := scrape(); !strings.Contains(b, "\nldapscim_ha_leader 1\n") {
		t.Fatalf("the leader's scrape:\n%s", b)
	}
}
