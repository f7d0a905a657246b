package push_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// fence is a MaySend that a test flips, and counts the requests an endpoint received after
// the flip.
type fence struct {
	may         atomic.Bool
	total, late atomic.Int64
	flipAfter   int64 // the endpoint's nth request flips may to false
}

func (f *fence) MaySend() bool { return f.may.Load() }

// seen counts a request at the endpoint and flips the fence at the flipAfter-th.
func (f *fence) seen() {
	if !f.may.Load() {
		f.late.Add(1)
	}
	if f.total.Add(1) == f.flipAfter {
		f.may.Store(false)
	}
}

// A target whose MaySend turns false in the middle of a batch (a leader that lost its lease)
// sends no request after that, the batch ends with ErrMayNotSend, nothing is dead-lettered and
// the cursor stays; once it may send again, the batch goes through whole.
func TestMaySendFencesTarget(t *testing.T) {
	var ldif strings.Builder
	for i := range 20 {
		ldif.WriteString(userLDIF(fmt.Sprintf("user%02d", i), "U", fmt.Sprint(i), "Engineering", ""))
	}
	e := newEnv(t, ldif.String())
	up, err := url.Parse(e.target.URL)
	if err != nil {
		t.Fatal(err)
	}
	f := &fence{flipAfter: 5}
	f.may.Store(true)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: up.Scheme, Host: up.Host})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.seen()
		rp.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := e.targetConfig(srv.URL+up.Path, func(tc *push.TargetConfig) {
		tc.Concurrency = 1
		tc.Groups = false
	})
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{MaySend: f.MaySend})
	ctx := context.Background()
	before, err := e.store.PushCursor(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	n, err := tg.PushOnce(ctx)
	if !errors.Is(err, push.ErrMayNotSend) {
		t.Fatalf("PushOnce = %d, %v; want ErrMayNotSend", n, err)
	}
	if got := f.total.Load(); got != f.flipAfter {
		t.Errorf("the target received %d requests, want %d (the flip came with the %dth)", got, f.flipAfter, f.flipAfter)
	}
	if late := f.late.Load(); late != 0 {
		t.Errorf("%d request(s) sent after MaySend turned false", late)
	}
	after, err := e.store.PushCursor(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("cursor moved from %d to %d though the batch was fenced", before, after)
	}
	dead, err := e.store.DeadLetters(ctx, cfg.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 0 {
		t.Errorf("fenced requests made %d dead letter(s): %+v", len(dead), dead)
	}
	// A worker that keeps being refused sends nothing more, however often it tries.
	for range 3 {
		if _, err := tg.PushOnce(ctx); !errors.Is(err, push.ErrMayNotSend) {
			t.Fatalf("PushOnce while fenced: %v", err)
		}
	}
	if late := f.late.Load(); late != 0 {
		t.Errorf("%d request(s) sent while MaySend was false", late)
	}

	f.may.Store(true)
	drain(t, tg)
	if u := users(t, e.target); len(u) != 20 { // users fails on duplicates
		t.Fatalf("%d users at the target after the fence lifted, want 20", len(u))
	}
	if dead, _ := e.store.DeadLetters(ctx, cfg.Name); len(dead) != 0 {
		t.Errorf("%d dead letter(s) after the fence lifted", len(dead))
	}
}

// A webhook is fenced the same way.
func TestMaySendFencesWebhook(t *testing.T) {
	var ldif strings.Builder
	for i := range 10 {
		ldif.WriteString(userLDIF(fmt.Sprintf("user%02d", i), "U", fmt.Sprint(i), "Engineering", ""))
	}
	e := newEnv(t, ldif.String())
	f := &fence{flipAfter: 3}
	f.may.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { f.seen() }))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret("s3cret-hook"), Concurrency: 1}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	wh := push.NewWebhook(hooks[0], e.store, push.WorkerOptions{MaySend: f.MaySend})
	ctx := context.Background()
	if _, err := wh.PushOnce(ctx); !errors.Is(err, push.ErrMayNotSend) {
		t.Fatalf("PushOnce: %v, want ErrMayNotSend", err)
	}
	if late := f.late.Load(); late != 0 || f.total.Load() != f.flipAfter {
		t.Errorf("webhook got %d requests, %d after the flip; want %d and 0", f.total.Load(), late, f.flipAfter)
	}
	if cur, _ := e.store.PushCursor(ctx, "hook"); cur != 0 {
		t.Errorf("cursor at %d after a fenced batch, want 0", cur)
	}
	if dead, _ := e.store.DeadLetters(ctx, "hook"); len(dead) != 0 {
		t.Errorf("%d dead letter(s) from fenced requests", len(dead))
	}
	f.may.Store(true)
	drain(t, wh)
	if f.total.Load() < 10+f.flipAfter {
		t.Errorf("webhook got %d requests after the fence lifted, want at least %d", f.total.Load(), 10+f.flipAfter)
	}
}
