package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
)

// TestHTTPLabelsBounded: whatever the observer is given, label values come from a fixed set.
func TestHTTPLabelsBounded(t *testing.T) {
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := New(st, Options{})
	obs := m.HTTPObserver("scim")
	for i := range 2000 {
		junk := fmt.Sprintf("J%05dx%s", i, strings.Repeat("q", i%300))
		obs("/"+junk, junk, 404, time.Millisecond) // a raw path passed for a pattern
		obs("", "get", 1000+i, time.Millisecond)   // lower-case method, impossible status
		obs("/scim/v2/Users/:id", "PATCH", 501, time.Millisecond)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	n := strings.Count(body, "\nldapscim_http_requests_total{")
	if n > maxRoutes+3 {
		t.Fatalf("%d request series", n)
	}
	for _, want := range []string{
		`ldapscim_http_requests_total{code="other",method="other",route="unmatched",server="scim"} 2000`,
		`ldapscim_http_requests_total{code="501",method="PATCH",route="/scim/v2/Users/:id",server="scim"} 2000`,
		`route="other"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
	if strings.Contains(body, "J01999") || strings.Contains(body, `method="get"`) {
		t.Error("a client string reached the scrape")
	}
}
