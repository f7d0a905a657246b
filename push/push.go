// Package push provisions SCIM targets and webhooks from the cache's change journal.
//
// Each [[targets]] entry gets a Target worker and each [[webhooks]] entry a Webhook worker.
// A worker reads the journal after its own durable cursor (cache.Store.PushCursor), delivers
// the batch, and only then advances the cursor: delivery is at least once, and made
// idempotent by the state the cache keeps per target and resource (the target's id and the
// hash and content of what was last sent), by looking a user up before creating it, and by
// adopting on 409. A change that cannot be delivered after max_attempts, or that the target
// refuses (4xx), becomes a dead letter with the target's answer; a target that keeps failing,
// or that refuses our credentials (401/403 after one renewal), is quarantined and probed slowly
// until it recovers, its changes kept queued. Every attempt is recorded in the push
// audit trail. Nothing here reads LDAP.
package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ldapscim/ldapscim/cache"
)

// Alert is a problem an admin should see: a dead letter, a quarantine, a target refusing our
// credentials, held changes.
// Webhooks with format "slack" receive them. Kind, Target and Key name the condition: while it
// is open, raising it again sends nothing; an Alert with Resolved set clears it and sends Text
// (or "resolved: " and the alert's text when Text is empty).
type Alert struct {
	Kind     string `json:"kind"` // AlertDeadLetter, AlertQuarantine, AlertUnauthorized, AlertHeldDeletions, ...
	Target   string `json:"target"`
	Key      string `json:"key,omitempty"` // within the target: a resource id, an event
	Text     string `json:"text"`
	Resolved bool   `json:"resolved,omitempty"`
}

// Alert kinds.
const (
	AlertDeadLetter    = "dead_letter"         // Key: the resource id (targets), id@seq (webhooks)
	AlertQuarantine    = "quarantine"          // Key: ""
	AlertUnauthorized  = "target_unauthorized" // a quarantine because the target refused our credentials; Key: ""
	AlertHeldDeletions = "held_deletions"      // Target: the sync source, Key: ""
	AlertSourceRefused = "source_refused"      // Target: an HR file source whose file was refused, Key: ""
	AlertReconcileHeld = "reconcile_held"      // Target: the push target whose scheduled reconciliation held extras, Key: ""
)

// PusherStore is what a Pusher needs from the cache: its workers' Store and the alerts'.
type PusherStore interface {
	Store
	AlertStore
}

// Pusher runs every target and webhook worker.
type Pusher struct {
	targets []*Target
	hooks   []*Webhook
	alerts  []*alertSink
	st      AlertStore
	log     *slog.Logger
	// checkNow asks the alert check loop for a CheckAlerts now.
	checkNow chan struct{}
}

// Options are the optional parts of a Pusher.
type Options struct {
	// Log receives the workers' messages; nil discards them.
	Log *slog.Logger
	// ObserveRequests, if set, sees every request a target or webhook worker sends: the
	// worker's name, the HTTP status (0 when no answer came) and the latency (metrics).
	ObserveRequests func(name string, status int, d time.Duration)
	// MaySend, if set, is asked right before every request to a target or a webhook (alert
	// webhooks included). When it returns false the request is not sent: the batch stops with
	// ErrMayNotSend, nothing is dead-lettered and the cursor stays, so the changes are sent
	// later by whoever may send. With [ha] it is the elector's check that this replica still
	// leads and its lease is fresh, so a leader that lost its lease (a pause) sends nothing.
	MaySend func() bool
	// Reconcile is how target workers reconcile on their own (ReconcilePolicy).
	Reconcile ReconcilePolicy
}

// ErrMayNotSend is the error of a request that Options.MaySend refused: it was not sent. A batch
// that meets it stops and is retried later; it makes no dead letter.
var ErrMayNotSend = errors.New("push: this replica may not send now (it does not lead)")

// New builds the workers of targets and hooks, which must have passed Prepare.
func New(targets []TargetConfig, hooks []WebhookConfig, st PusherStore, opts Options) *Pusher {
	p := &Pusher{log: logOrDiscard(opts.Log).With("component", "push"), st: st, checkNow: make(chan struct{}, 1)}
	for _, h := range hooks {
		if h.Format == "slack" {
			p.alerts = append(p.alerts, newAlertSink(h, st, p.log, opts.MaySend))
		}
	}
	wo := WorkerOptions{Log: p.log, Alert: p.alert, ObserveRequests: opts.ObserveRequests, MaySend: opts.MaySend,
		Reconcile: opts.Reconcile}
	for _, tc := range targets {
		p.targets = append(p.targets, NewTarget(tc, st, wo))
	}
	for _, h := range hooks {
		if h.Format != "slack" {
			p.hooks = append(p.hooks, NewWebhook(h, st, wo))
		}
	}
	return p
}

// WorkerOptions are the optional parts of a Target or a Webhook.
type WorkerOptions struct {
	// Log receives the worker's messages; nil discards them.
	Log *slog.Logger
	// Alert, if set, receives dead letters and quarantine changes.
	Alert func(Alert)
	// ObserveRequests, if set, sees every request the worker sends, as Options.ObserveRequests.
	ObserveRequests func(name string, status int, d time.Duration)
	// MaySend, if set, is asked before every request, as Options.MaySend.
	MaySend func() bool
	// Reconcile is how a target worker reconciles on its own (ReconcilePolicy).
	Reconcile ReconcilePolicy
}

// observer returns the client's observer of the requests of the worker called name, or nil.
func (o WorkerOptions) observer(name string) func(status int, d time.Duration) {
	if o.ObserveRequests == nil {
		return nil
	}
	return func(status int, d time.Duration) { o.ObserveRequests(name, status, d) }
}

func logOrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// Alert stores a for every alert webhook (format "slack"), which sends it while Run runs; with a.Resolved it resolves the open alert of a's condition instead. Safe for
// concurrent use.
func (p *Pusher) Alert(a Alert) { p.alert(a) }

func (p *Pusher) alert(a Alert) {
	// Callers are workers in the middle of a delivery, without a context for this; the cache
	// answers at once.
	ctx := context.Background()
	for _, s := range p.alerts {
		if a.Resolved {
			s.resolve(ctx, a, a.Text)
		} else {
			s.raise(ctx, a)
		}
	}
}

// CheckAlertsSoon asks a running Run for a CheckAlerts, without waiting for it.
func (p *Pusher) CheckAlertsSoon() {
	select {
	case p.checkNow <- struct{}{}:
	default:
	}
}

// runAlerts sends the alerts and checks the open ones until ctx is done, then waits.
func (p *Pusher) runAlerts(ctx context.Context) {
	if len(p.alerts) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, s := range p.alerts {
		wg.Go(func() { s.run(ctx) })
	}
	wg.Go(func() {
		p.CheckAlerts(ctx) // conditions that cleared while ldapscim was down
		p.checkAlertsLoop(ctx)
	})
	wg.Wait()
}

func (p *Pusher) isHook(name string) bool {
	for _, h := range p.hooks {
		if h.cfg.Name == name {
			return true
		}
	}
	return false
}

// Run runs every worker and alert webhook until ctx is done, then waits for them. With none
// configured it just waits for ctx: it returns only when ctx is done.
func (p *Pusher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { <-ctx.Done() })
	for _, t := range p.targets {
		wg.Go(func() { _ = t.Run(ctx) })
	}
	for _, h := range p.hooks {
		wg.Go(func() { _ = h.Run(ctx) })
	}
	wg.Go(func() { p.runAlerts(ctx) })
	wg.Wait()
}

// Status reports every worker.
func (p *Pusher) Status(ctx context.Context) []Status {
	var out []Status
	for _, t := range p.targets {
		out = append(out, t.Status(ctx))
	}
	for _, h := range p.hooks {
		out = append(out, h.Status(ctx))
	}
	return out
}

// Targets returns the names of the SCIM targets and event webhooks, in config order.
func (p *Pusher) Targets() []string {
	var out []string
	for _, t := range p.targets {
		out = append(out, t.cfg.Name)
	}
	for _, h := range p.hooks {
		out = append(out, h.cfg.Name)
	}
	return out
}

// Replay delivers target's dead letters of ids (nil: all of them) again, now, and returns
// how many it tried; a delivered one leaves the list (and its alert is resolved), a failing one
// is stored again with the new error. Errors: an unknown target, store errors, ctx.Err().
func (p *Pusher) Replay(ctx context.Context, target string, ids []string) (int, error) {
	n, err := p.replay(ctx, target, ids)
	if n > 0 {
		p.CheckAlerts(ctx)
	}
	return n, err
}

func (p *Pusher) replay(ctx context.Context, target string, ids []string) (int, error) {
	for _, t := range p.targets {
		if t.cfg.Name == target {
			return t.Replay(ctx, ids)
		}
	}
	for _, h := range p.hooks {
		if h.cfg.Name == target {
			return h.Replay(ctx, ids)
		}
	}
	return 0, fmt.Errorf("push: no target or webhook named %q", target)
}

// selectDead returns the dead letters of target named by ids (nil: all).
func selectDead(ctx context.Context, st interface {
	DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error)
}, target string, ids []string) ([]cache.DeadLetter, error) {
	all, err := st.DeadLetters(ctx, target)
	if err != nil || ids == nil {
		return all, wrapStore("dead letters", err)
	}
	want := set(ids)
	var out []cache.DeadLetter
	for _, d := range all {
		if want[d.ID] {
			out = append(out, d)
		}
	}
	return out, nil
}
