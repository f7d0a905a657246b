package push_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// chat is a chat incoming webhook: it keeps the texts it accepted and answers fail (when not 0)
// instead.
type chat struct {
	mu    sync.Mutex
	texts []string
	calls int
	fail  atomic.Int32
}

func newChat(t *testing.T) (*chat, string) {
	c := &chat{}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL + "/hooks/T000/B000"
}

func (c *chat) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	err := json.NewDecoder(r.Body).Decode(&body)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if code := c.fail.Load(); code != 0 {
		w.WriteHeader(int(code))
		return
	}
	text, ok := body["text"].(string)
	if err != nil || !ok || len(body) != 1 {
		w.WriteHeader(http.StatusBadRequest) // the shape chat webhooks take: {"text": ...}
		return
	}
	c.texts = append(c.texts, text)
}

func (c *chat) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.texts)
}

func (c *chat) count(sub string) int {
	n := 0
	for _, s := range c.got() {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func slackHook(t *testing.T, url string) push.WebhookConfig {
	t.Helper()
	hooks := []push.WebhookConfig{{Name: "chat", URL: url, Format: "slack", RetryPolicy: push.RetryPolicy{MaxAttempts: 3,
		BackoffBase: confval.Duration(20 * time.Millisecond), BackoffMax: confval.Duration(100 * time.Millisecond)}}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	return hooks[0]
}

// run runs p until the returned stop is called, which waits for it.
func run(p *push.Pusher) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

func deadLetterAlert(id string) push.Alert {
	return push.Alert{Kind: push.AlertDeadLetter, Target: "crm", Key: id, Text: "push to crm: create " + id + " dead-lettered"}
}

// An alert raised while the chat webhook is down is retried with backoff, kept in the cache
// across a restart, and delivered once the webhook is back, once: raising it again while it is
// open sends nothing, before or after the restart.
func TestAlertSurvivesRestartAndIsSentOnce(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, url := newChat(t)
	c.fail.Store(http.StatusServiceUnavailable)
	hooks := []push.WebhookConfig{slackHook(t, url)}
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// The dead letter the alert is about, so that it stays open.
	dl := &cache.DeadLetter{ID: "u1", Type: scim.UserType, Op: "create", Error: "HTTP 400"}
	if err := st.RecordPush(ctx, "crm", []cache.PushOutcome{{ID: "u1", DeadLetter: dl}}); err != nil {
		t.Fatal(err)
	}
	p := push.New(nil, hooks, st, push.Options{})
	stop := run(p)
	p.Alert(deadLetterAlert("u1"))
	p.Alert(deadLetterAlert("u1"))
	waitFor(t, "three attempts", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.calls >= 3 })
	stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	c.fail.Store(0)
	st, err = cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p = push.New(nil, hooks, st, push.Options{})
	p.Alert(deadLetterAlert("u1"))
	stop = run(p)
	defer stop()
	waitFor(t, "the alert after the restart", func() bool { return len(c.got()) > 0 })
	p.Alert(deadLetterAlert("u1"))
	p.Alert(deadLetterAlert("u2"))
	waitFor(t, "the second alert", func() bool { return len(c.got()) > 1 })
	time.Sleep(300 * time.Millisecond)
	want := []string{deadLetterAlert("u1").Text, deadLetterAlert("u2").Text}
	if got := c.got(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}

// A held-deletions alert is resolved when the holds are gone (approved, or replaced by a pass).
func TestAlertResolvedWhenHoldsClear(t *testing.T) {
	ctx := context.Background()
	c, url := newChat(t)
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	holds := []cache.Hold{{ID: "u1", Type: scim.UserType, Reason: "delete"}}
	if _, err := st.Apply(ctx, cache.Batch{Source: "test", Holds: &holds}); err != nil {
		t.Fatal(err)
	}
	p := push.New(nil, []push.WebhookConfig{slackHook(t, url)}, st, push.Options{})
	stop := run(p)
	defer stop()
	p.Alert(push.Alert{Kind: push.AlertHeldDeletions, Target: "ldap", Text: "pass p1 holds 1 deletion(s)"})
	waitFor(t, "the held-deletions alert", func() bool { return len(c.got()) == 1 })
	time.Sleep(2100 * time.Millisecond) // older than alertSettle
	p.CheckAlerts(ctx)
	p.Alert(push.Alert{Kind: push.AlertHeldDeletions, Target: "ldap", Text: "pass p2 holds 1 deletion(s)"})
	if _, err := st.Apply(ctx, cache.Batch{Source: "test", Holds: &[]cache.Hold{}}); err != nil {
		t.Fatal(err)
	}
	p.CheckAlerts(ctx)
	waitFor(t, "the resolved alert", func() bool { return len(c.got()) == 2 })
	time.Sleep(300 * time.Millisecond)
	want := []string{"pass p1 holds 1 deletion(s)", "resolved: pass p1 holds 1 deletion(s)"}
	if got := c.got(); !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
}

// A SCIM target that is down is quarantined and recovers: one alert each. A user the target
// refuses is a dead letter and an alert, resolved when the replay delivers it.
func TestAlertsOfATargetAreResolved(t *testing.T) {
	ctx := context.Background()
	e := newBigEnv(t, 3, false, nil)
	var down, refuse atomic.Bool
	down.Store(true)
	refuse.Store(true)
	rec, targetURL := newRecorder(t, e.scimmy.URL)
	rec.before = func(r *http.Request, body []byte, w http.ResponseWriter) bool {
		switch {
		case down.Load():
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		case refuse.Load() && r.Method == "POST" && bytes.Contains(body, []byte("user000000@")):
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidValue","detail":"refused"}`))
			return true
		}
		return false
	}
	var tcs []push.TargetConfig
	tc := push.TargetConfig{Name: "scimmy", URL: targetURL, Token: confval.NewSecret(e.scimmy.Token), Groups: true,
		RetryPolicy: push.RetryPolicy{MaxAttempts: 3, QuarantineAfter: 2, QuarantineRetry: confval.Duration(100 * time.Millisecond),
			BackoffBase: confval.Duration(20 * time.Millisecond), BackoffMax: confval.Duration(100 * time.Millisecond)},
		Timeout: confval.Duration(5 * time.Second), PollInterval: confval.Duration(50 * time.Millisecond)}
	tcs = append(tcs, tc)
	if errs := push.Prepare(tcs, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	c, url := newChat(t)
	p := push.New(tcs, []push.WebhookConfig{slackHook(t, url)}, e.store, push.Options{})
	stop := run(p)
	defer stop()
	waitFor(t, "the quarantine alert", func() bool { return c.count("quarantined") == 1 })
	down.Store(false)
	waitFor(t, "the recovery", func() bool { return c.count("recovered") == 1 })
	waitFor(t, "the dead-letter alert", func() bool { return c.count("dead-lettered") == 1 })
	time.Sleep(2100 * time.Millisecond) // older than alertSettle
	p.CheckAlerts(ctx)
	if n := c.count("resolved:"); n != 0 {
		t.Fatalf("resolved while the dead letter is there: %q", c.got())
	}
	refuse.Store(false)
	if n, err := p.Replay(ctx, "scimmy", nil); err != nil || n != 1 {
		t.Fatalf("replay: %d, %v", n, err)
	}
	waitFor(t, "the resolved dead-letter alert", func() bool { return c.count("resolved: push to scimmy") == 1 })
	got := c.got()
	if len(got) != 4 || !strings.Contains(got[0], "quarantined") || !strings.Contains(got[1], "recovered") {
		t.Fatalf("delivered %q", got)
	}
}
