package ops_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
)

// TestStagingRefusesPushOperations checks that [safety] staging = true, which pushes nothing,
// refuses a dead-letter replay and skip also without [ha] (a CLI on the cache, or a standalone
// serve), and sends no request to the target; the same setup without staging replays.
func TestStagingRefusesPushOperations(t *testing.T) {
	var requests atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer target.Close()
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	local := func(staging bool) *ops.Local {
		o := ops.LocalOptions{Store: st, Targets: []push.TargetConfig{{Name: "okta", URL: target.URL, Token: confval.NewSecret("x")}}}
		o.Safety.Staging = staging
		l, err := ops.NewLocal(o)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	stg := local(true)
	if _, err := stg.ReplayDeadLetters(t.Context(), "okta", nil); ops.CodeOf(err) != ops.Unavailable || !strings.Contains(err.Error(), "staging") {
		t.Fatalf("replay with staging: %v, want Unavailable naming staging", err)
	}
	if _, err := stg.SkipDeadLetters(t.Context(), "okta", nil); ops.CodeOf(err) != ops.Unavailable {
		t.Fatalf("skip with staging: %v, want Unavailable", err)
	}
	if n, err := local(false).ReplayDeadLetters(t.Context(), "okta", nil); err != nil || n != 0 {
		t.Fatalf("replay without staging: %d %v, want 0 replayed (no dead letters)", n, err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the target", n)
	}
}
