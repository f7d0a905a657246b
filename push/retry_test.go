package push_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// flaky answers its first request 429 with Retry-After: 1, its second 500, and passes the rest
// to next (all of them, when failAll: 500). It notes when each request came.
type flaky struct {
	next    http.Handler
	failAll bool

	mu    sync.Mutex
	times []time.Time
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.times = append(f.times, time.Now())
	n := len(f.times)
	f.mu.Unlock()
	switch {
	case n == 1 && !f.failAll:
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case n == 2 || f.failAll:
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusInternalServerError)
	default:
		f.next.ServeHTTP(w, r)
	}
}

func (f *flaky) requests() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.times...)
}

// A target and a webhook retry under the same policy, against real HTTP: a 429 waits its
// Retry-After (not the 20 ms backoff), a 500 the backoff, and the change is delivered on the
// last of max_attempts; a change that keeps failing is a dead letter after max_attempts, for
// either.
func TestTargetsAndWebhooksRetryAlike(t *testing.T) {
	e := newEnv(t, userLDIF("ivy", "Ivy", "Iles", "Ops", ""))
	policy := push.RetryPolicy{MaxAttempts: 3, BackoffBase: confval.Duration(20 * time.Millisecond),
		BackoffMax: confval.Duration(200 * time.Millisecond)}
	u, _ := url.Parse(e.target.URL)
	scimmy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	var mu sync.Mutex
	var events []push.Event
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev push.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Error(err)
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	})
	log := slog.New(slog.DiscardHandler)

	worker := func(name string, h *flaky, webhook bool) interface {
		PushOnce(context.Context) (int, error)
	} {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		if webhook {
			hooks := []push.WebhookConfig{{Name: name, URL: srv.URL, Secret: confval.NewSecret("s3cret"), Concurrency: 1,
				RetryPolicy: policy}}
			if errs := push.Prepare(nil, hooks); len(errs) > 0 {
				t.Fatal(errs)
			}
			return push.NewWebhook(hooks[0], e.store, push.WorkerOptions{Log: log})
		}
		cfg := e.targetConfig(srv.URL+u.Path, func(tc *push.TargetConfig) {
			tc.Name, tc.Concurrency, tc.RetryPolicy = name, 1, policy
		})
		return push.NewTarget(cfg, e.store, push.WorkerOptions{Log: log})
	}

	for _, c := range []struct {
		name    string
		webhook bool
		next    http.Handler
	}{
		{"target", false, scimmy},
		{"webhook", true, receiver},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := &flaky{next: c.next}
			drain(t, worker(c.name, h, c.webhook))
			times := h.requests()
			if len(times) < 3 {
				t.Fatalf("%d requests; want a 429, a 500 and the delivery", len(times))
			}
			if d := times[1].Sub(times[0]); d < 900*time.Millisecond {
				t.Errorf("the retry after a 429 with Retry-After: 1 came after %v", d)
			}
			if d := times[2].Sub(times[1]); d >= 900*time.Millisecond {
				t.Errorf("the retry after a 500 came after %v; the backoff is at most 200ms", d)
			}
			if dls, err := e.store.DeadLetters(context.Background(), c.name); err != nil || len(dls) != 0 {
				t.Fatalf("dead letters %+v, %v; want the change delivered on its third attempt", dls, err)
			}

			// Keeps failing: a dead letter after max_attempts.
			down := &flaky{failAll: true}
			drain(t, worker(c.name+"-down", down, c.webhook))
			dls, err := e.store.DeadLetters(context.Background(), c.name+"-down")
			if err != nil || len(dls) != 1 || dls[0].Attempts != policy.MaxAttempts || dls[0].Status != 500 {
				t.Fatalf("dead letters %+v, %v; want one after %d attempts", dls, err, policy.MaxAttempts)
			}
			if n := len(down.requests()); n != policy.MaxAttempts {
				t.Errorf("%d requests to a target that keeps failing; want max_attempts (%d)", n, policy.MaxAttempts)
			}
		})
	}
	if got := users(t, e.target); got["ivy"] == nil {
		t.Errorf("ivy is not at the target: %v", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 1 || events[0].Type != "user.created" {
		t.Errorf("events received: %+v; want ivy's user.created once", events)
	}
}
