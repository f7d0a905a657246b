package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// TestCollectors drives every hook once over a real (empty) cache and checks the exposition.
func TestCollectors(t *testing.T) {
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.SetPushCursor(context.Background(), "okta", 0); err != nil {
		t.Fatal(err)
	}
	m := New(st, Options{Targets: func() []string { return []string{"okta"} }})
	m.ObservePass(ldapsync.Summary{Full: true, Read: 5, Created: 5, Duration: time.Second}, nil)
	m.ObservePass(ldapsync.Summary{Read: 2, Partial: "size limit"}, errors.New("partial"))
	m.ObservePass(ldapsync.Summary{}, errors.New("dial"))
	obs := m.HTTPObserver("scim")
	obs("/scim/v2/Users/:id", "GET", 200, time.Millisecond)
	obs("", "GET", 404, time.Millisecond)
	m.ObservePush("okta", 201, 10*time.Millisecond)
	m.ObservePush("okta", 429, 10*time.Millisecond)
	m.ObservePush("okta", 0, time.Second)
	m.SetOutboxDepth("okta", 12)
	m.RegisterPushHealth(func(context.Context) []PushHealth {
		return []PushHealth{{Target: "okta", Kind: "target", Delivered: 9, Quarantined: true, Failures: 3}}
	})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`ldapscim_sync_passes_total{kind="full",result="success"} 1`,
		`ldapscim_sync_passes_total{kind="delta",result="partial"} 1`,
		`ldapscim_sync_passes_total{kind="delta",result="failure"} 1`,
		`ldapscim_sync_entries_total{outcome="read"} 7`,
		`ldapscim_sync_entries_total{outcome="created"} 5`,
		`ldapscim_http_requests_total{code="200",method="GET",route="/scim/v2/Users/:id",server="scim"} 1`,
		`ldapscim_http_requests_total{code="404",method="GET",route="unmatched",server="scim"} 1`,
		`ldapscim_push_requests_total{status="201",target="okta"} 1`,
		`ldapscim_push_requests_total{status="error",target="okta"} 1`,
		`ldapscim_push_rate_limited_total{target="okta"} 1`,
		`ldapscim_push_request_duration_seconds_count{target="okta"} 3`,
		`ldapscim_push_outbox_depth{target="okta"} 12`,
		`ldapscim_push_cursor_lag{target="okta"} 0`,
		`ldapscim_push_dead_letters{target="okta"} 0`,
		`ldapscim_push_delivered_total{kind="target",target="okta"} 9`,
		`ldapscim_push_quarantined{kind="target",target="okta"} 1`,
		`ldapscim_cache_journal_head 0`,
		`ldapscim_cache_scrape_error 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(body), want+"\n") && !strings.Contains(string(body), want+" ") {
			t.Errorf("scrape lacks %s", want)
		}
	}
	// No successful pass in the cache: no watermark age (absent, not a misleading 0).
	if strings.Contains(string(body), "ldapscim_sync_watermark_age_seconds ") {
		t.Error("watermark age exported before any pass")
	}
}
