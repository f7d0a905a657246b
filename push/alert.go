package push

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
)

// rawJSON is a request body sent exactly as given (it was signed).
type rawJSON []byte

func jsonBody(v any) ([]byte, error) { return json.Marshal(v) }

// maxAlerts bounds the alert records kept per alert webhook (open alerts and texts waiting for
// delivery): a webhook that is down for long while dead letters pile up must not grow the cache
// without end. The oldest go first, with a log line each.
const maxAlerts = 1000

// AlertStore is the durable part of the alerts: the cache's alert records per alert webhook,
// and what tells whether an alert's condition cleared. *cache.Store implements it; every method
// is safe for concurrent use and returns cache's errors.
type AlertStore interface {
	RaiseAlert(ctx context.Context, sink string, a cache.StoredAlert, limit int) (opened bool, dropped []cache.StoredAlert, err error)
	ResolveAlert(ctx context.Context, sink, kind, target, key, text string) (bool, error)
	Alerts(ctx context.Context, sink string) ([]cache.StoredAlert, error)
	AlertDelivered(ctx context.Context, sink string, seq uint64, resolved bool) error
	AlertFailed(ctx context.Context, sink string, seq uint64, attempts int, next time.Time) error
	DropAlert(ctx context.Context, sink string, seq uint64) error
	HasDeadLetter(ctx context.Context, target, id string, seq uint64) (bool, error)
	HasHolds(ctx context.Context) (bool, error)
}

// alertSink posts alerts as {"text": ...} to a chat incoming webhook (Slack, Mattermost,
// Rocket.Chat and Teams workflows accept that shape). An alert is stored in the cache before it
// is sent, so a restart or a webhook that is down delays it but does not lose it; it is sent
// with retries and backoff, in the order raised. While an alert's condition (kind, target,
// key) is open, raising it again sends nothing; when it clears, a "resolved" text is sent.
type alertSink struct {
	cfg WebhookConfig
	// retry is cfg's policy with backoff_max at most a minute: an alert is news.
	retry RetryPolicy
	log   *slog.Logger
	st    AlertStore
	c     *client
	wake  chan struct{}
}

func newAlertSink(cfg WebhookConfig, st AlertStore, log *slog.Logger, maySend func() bool) *alertSink {
	s := &alertSink{cfg: cfg, retry: cfg.RetryPolicy, st: st, log: log.With("alerts", cfg.Name), wake: make(chan struct{}, 1)}
	s.retry.BackoffMax = min(s.retry.BackoffMax, confval.Duration(time.Minute))
	// The breaker never opens: the sink's own backoff paces a webhook that is down.
	s.c = &client{base: cfg.URL, http: newHTTPClient(cfg.Timeout.D(), 1, false), breaker: &breaker{after: 1 << 30},
		limiter: newLimiter(1, 5), maySend: maySend}
	return s
}

// raise stores a as an open alert, unless one of its condition is open already.
func (s *alertSink) raise(ctx context.Context, a Alert) {
	opened, dropped, err := s.st.RaiseAlert(ctx, s.cfg.Name,
		cache.StoredAlert{Kind: a.Kind, Target: a.Target, Key: a.Key, Text: a.Text}, maxAlerts)
	if err != nil {
		s.log.Warn("alert not stored; it is not sent", "kind", a.Kind, "target", a.Target, "err", err)
		return
	}
	for _, d := range dropped {
		s.log.Warn("too many alerts stored; the oldest is dropped", "kind", d.Kind, "target", d.Target,
			"raised", d.Raised, "max", maxAlerts)
	}
	if opened {
		s.poke()
	}
}

// resolve marks the open alert of a's condition resolved, to send text (or "resolved: " and the
// alert's own text when text is empty).
func (s *alertSink) resolve(ctx context.Context, a Alert, text string) {
	found, err := s.st.ResolveAlert(ctx, s.cfg.Name, a.Kind, a.Target, a.Key, text)
	if err != nil {
		s.log.Warn("alert resolution not stored", "kind", a.Kind, "target", a.Target, "err", err)
		return
	}
	if found {
		s.poke()
	}
}

func (s *alertSink) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run delivers stored alerts until ctx is done: now, whenever one is raised or resolved, and
// when a retry is due.
func (s *alertSink) run(ctx context.Context) {
	for {
		next, err := s.deliver(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := time.Hour // nothing waits: a raise or a resolve wakes the sink
		switch {
		case err != nil:
			s.log.Warn("alert store failed; trying again in a minute", "err", err)
			wait = time.Minute
		case !next.IsZero():
			wait = max(time.Until(next), 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-s.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliver sends the stored texts that are due, oldest first, and returns when the next one is
// due: zero when none waits. It stops at the first failure: the webhook is most likely down for
// the others too, and order is kept.
func (s *alertSink) deliver(ctx context.Context) (time.Time, error) {
	for {
		recs, err := s.st.Alerts(ctx, s.cfg.Name)
		if err != nil {
			return time.Time{}, err
		}
		sent := 0
		for _, a := range recs {
			if !a.Pending() {
				continue
			}
			if a.NextAt.After(time.Now()) {
				return a.NextAt, nil
			}
			if next, err := s.send(ctx, a); err != nil || !next.IsZero() {
				return next, err
			}
			sent++
		}
		if sent == 0 { // else look again: alerts raised or resolved meanwhile
			return time.Time{}, nil
		}
	}
}

// send delivers what of a is pending: its text, then its resolved text. On a failure it
// returns when to try again.
func (s *alertSink) send(ctx context.Context, a cache.StoredAlert) (time.Time, error) {
	for _, resolved := range []bool{false, true} {
		if resolved && !a.Resolved || !resolved && a.Sent {
			continue
		}
		text := a.Text
		if resolved {
			text = a.ResolvedText
		}
		if _, err := s.c.do(ctx, "POST", "", map[string]string{"text": text}); err != nil {
			if ctx.Err() != nil {
				return time.Time{}, ctx.Err()
			}
			if errors.Is(err, ErrMayNotSend) {
				// Not sent, and no attempt: the alert stays pending for whoever may send.
				return time.Now().Add(time.Second), nil
			}
			return s.failed(ctx, a, err)
		}
		if err := s.st.AlertDelivered(ctx, s.cfg.Name, a.Seq, resolved); err != nil {
			return time.Time{}, err
		}
		a.Sent, a.Attempts = true, 0
	}
	return time.Time{}, nil
}

// failed records a failed delivery of a and returns when to try again. A text the webhook
// refuses (a 4xx other than 404, 408, 409, 429) is dropped after max_attempts; any other
// failure is retried, with backoff up to backoff_max (at most a minute), until it is delivered.
func (s *alertSink) failed(ctx context.Context, a cache.StoredAlert, err error) (time.Time, error) {
	attempts := a.Attempts + 1
	var he *HTTPError
	if errors.As(err, &he) && he.Permanent() && attempts >= s.retry.MaxAttempts {
		s.log.Warn("alert refused by the webhook; dropped", "kind", a.Kind, "target", a.Target, "attempts", attempts, "err", err)
		return time.Time{}, s.st.DropAlert(ctx, s.cfg.Name, a.Seq)
	}
	if attempts == s.retry.MaxAttempts {
		s.log.Warn("alert not delivered yet; still trying", "kind", a.Kind, "target", a.Target, "attempts", attempts, "err", err)
	}
	next := time.Now().Add(s.retry.delay(attempts, retryAfterOf(err)))
	return next, s.st.AlertFailed(ctx, s.cfg.Name, a.Seq, attempts, next)
}

// alertCheckEvery is how often the open alerts are checked for conditions that cleared
// without an event saying so (a replayed or skipped dead letter, approved holds).
const alertCheckEvery = 30 * time.Second

// alertSettle is how old an alert must be before CheckAlerts looks at its condition: a dead
// letter's alert is raised just before the dead letter is stored, and must not be found
// cleared in between.
const alertSettle = 2 * time.Second

// CheckAlerts resolves the open alerts whose condition has cleared: a dead letter that is gone
// (replayed, or skipped by an admin), held deletions that were approved or replaced, a
// quarantine from before a restart of a worker that has since delivered. Serve calls it after
// every sync pass; Run every alertCheckEvery.
func (p *Pusher) CheckAlerts(ctx context.Context) {
	for _, s := range p.alerts {
		recs, err := s.st.Alerts(ctx, s.cfg.Name)
		if err != nil {
			s.log.Warn("alerts not read from the cache", "err", err)
			continue
		}
		for _, r := range recs {
			if r.Resolved || time.Since(r.Raised) < alertSettle {
				continue
			}
			a := Alert{Kind: r.Kind, Target: r.Target, Key: r.Key}
			cleared, err := p.cleared(ctx, a)
			if err != nil {
				s.log.Warn("alert condition not checked", "kind", r.Kind, "target", r.Target, "err", err)
				continue
			}
			if cleared {
				s.resolve(ctx, a, "")
			}
		}
	}
}

// cleared reports whether a's condition is over, as far as the durable state and the workers
// tell. Kinds it cannot check stay open until resolved by an event.
func (p *Pusher) cleared(ctx context.Context, a Alert) (bool, error) {
	switch a.Kind {
	case AlertDeadLetter:
		id, seq := a.Key, uint64(0)
		if p.isHook(a.Target) {
			id, seq = eventKeyParts(a.Key)
		}
		has, err := p.st.HasDeadLetter(ctx, a.Target, id, seq)
		return !has, err
	case AlertHeldDeletions:
		has, err := p.st.HasHolds(ctx)
		return !has, err
	case AlertQuarantine, AlertUnauthorized:
		for _, s := range p.Status(ctx) {
			if s.Name == a.Target {
				return !s.Quarantined && s.Delivered > 0, nil
			}
		}
		return true, nil // the worker is no longer configured
	}
	return false, nil
}

// checkAlertsLoop runs CheckAlerts every alertCheckEvery and when poked, until ctx is done.
func (p *Pusher) checkAlertsLoop(ctx context.Context) {
	t := time.NewTicker(alertCheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.checkNow:
		}
		p.CheckAlerts(ctx)
	}
}

// eventKey is the condition key of the dead letter of journal record seq of id at a webhook
// (one per event); eventKeyParts is its inverse.
func eventKey(id string, seq uint64) string { return id + "@" + strconv.FormatUint(seq, 10) }

func eventKeyParts(k string) (string, uint64) {
	i := strings.LastIndexByte(k, '@')
	if i < 0 {
		return k, 0
	}
	seq, _ := strconv.ParseUint(k[i+1:], 10, 64)
	return k[:i], seq
}
