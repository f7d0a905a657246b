package push

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/redact"
	"github.com/ldapscim/ldapscim/scim"
)

// Webhook signature headers. The signature is hex HMAC-SHA256, keyed with the webhook's
// secret, over the timestamp header's value, a ".", and the raw request body.
const (
	HeaderTimestamp = "X-Ldapscim-Timestamp"
	HeaderSignature = "X-Ldapscim-Signature" // "v1=<hex>"
	HeaderEvent     = "X-Ldapscim-Event"
	HeaderDelivery  = "X-Ldapscim-Delivery" // the event id; the same on every retry
)

// Sign returns the value of HeaderSignature for a body sent at timestamp ts (unix seconds).
func Sign(secret, ts string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a request's signature and that its timestamp is within tolerance of now: what
// a receiver does (see README, "Push and webhooks").
func Verify(secret, ts, sig string, body []byte, now time.Time, tolerance time.Duration) bool {
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(sig))
}

// Event is one webhook delivery.
type Event struct {
	ID           string             `json:"id"`
	Type         string             `json:"type"` // user.created, group.updated, membership.added, ...
	Time         time.Time          `json:"time"` // when the cache recorded the change
	Seq          uint64             `json:"seq"`
	ResourceType scim.ResourceType  `json:"resourceType"`
	ResourceID   string             `json:"resourceId"`
	Changed      []string           `json:"changed,omitempty"`
	Changes      []cache.AttrChange `json:"changes,omitempty"`
	Members      []string           `json:"members,omitempty"` // membership.* events: the member ids
	// Resource is the resource as the cache holds it when the event is sent (null once deleted).
	// A group carries its members up to webhookMembers of them; a bigger one carries none and
	// sets MembersOmitted (its changes come as membership.* events; the SCIM API streams it).
	Resource       map[string]any `json:"resource"`
	MembersOmitted bool           `json:"membersOmitted,omitempty"`
}

// webhookMembers is the most members a group event's resource carries: an event is one HTTP
// body, and a group of a million members would make every one of its events 100 MB.
const webhookMembers = 10000

var eventTypes = []string{"user.created", "user.updated", "user.deactivated", "user.deleted",
	"group.created", "group.updated", "group.deleted", "membership.added", "membership.removed"}

func knownEvent(e string) bool {
	for _, t := range eventTypes {
		if e == t || strings.HasSuffix(e, ".*") && strings.HasPrefix(t, strings.TrimSuffix(e, "*")) {
			return true
		}
	}
	return false
}

// Webhook delivers the journal as signed JSON events, one POST per event, in journal order
// per resource and concurrently across resources.
type Webhook struct {
	cfg WebhookConfig
	st  Store
	log *slog.Logger
	c   *client
	rp  retrier

	delivered, deadLetters atomic.Int64
	lastError              atomic.Value
}

// NewWebhook builds the worker of cfg, which must have passed Prepare.
func NewWebhook(cfg WebhookConfig, st Store, opts WorkerOptions) *Webhook {
	w := &Webhook{cfg: cfg, st: st, log: logOrDiscard(opts.Log).With("webhook", cfg.Name)}
	alert := opts.Alert
	b := cfg.RetryPolicy.breaker(func(q bool, _ time.Time) {
		if alert != nil {
			text := fmt.Sprintf("webhook %s recovered", cfg.Name)
			if q {
				text = fmt.Sprintf("webhook %s quarantined: requests keep failing; retrying every %s", cfg.Name, cfg.QuarantineRetry.D())
			}
			alert(Alert{Kind: AlertQuarantine, Target: cfg.Name, Text: text, Resolved: !q})
		}
	})
	w.c = &client{base: cfg.URL, http: newHTTPClient(cfg.Timeout.D(), cfg.Concurrency, false), breaker: b,
		limiter: newLimiter(cfg.MaxRequestsPerSecond, cfg.Concurrency), observer: opts.observer(cfg.Name), maySend: opts.MaySend}
	w.rp = retrier{policy: cfg.RetryPolicy, breaker: b,
		perEvent: true, // a dead letter per journal record: replay re-sends each failed record's events
		onDead: func(dl *cache.DeadLetter) {
			w.deadLetters.Add(1)
			w.lastError.Store(dl.Error)
			w.log.Warn("dead letter", "id", dl.ID, "seq", dl.Seq, "error", dl.Error)
			if alert != nil {
				alert(Alert{Kind: AlertDeadLetter, Target: cfg.Name, Key: eventKey(dl.ID, dl.Seq), Text: fmt.Sprintf("webhook %s: event %d of %s dead-lettered: %s", cfg.Name, dl.Seq, dl.ID, dl.Error)})
			}
		},
		record: func(ctx context.Context, out cache.PushOutcome) error {
			if out.DeadLetter == nil {
				w.delivered.Add(1)
			}
			return wrapStore("record", w.st.RecordPush(ctx, cfg.Name, []cache.PushOutcome{out}))
		}}
	return w
}

// Run delivers events until ctx is done.
func (w *Webhook) Run(ctx context.Context) error {
	for {
		n, err := w.PushOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, cache.ErrBusy):
			w.log.Debug("cache busy with a first sync; retrying", "err", err)
		case err != nil:
			w.log.Error("webhook batch failed; retrying", "err", err)
		}
		if n == 0 || err != nil {
			if sleep(ctx, w.cfg.PollInterval.D()) != nil {
				return nil
			}
		}
	}
}

// PushOnce delivers the events of the next journal batch and advances the cursor. A batch
// logs one INFO line (logBatch).
func (w *Webhook) PushOnce(ctx context.Context) (int, error) {
	start := time.Now()
	tl := &tally{}
	ctx = withTally(ctx, tl)
	cur, err := w.st.PushCursor(ctx, w.cfg.Name)
	if err != nil {
		return 0, wrapStore("cursor", err)
	}
	recs, err := w.st.Journal(ctx, cur, batchSize)
	if err != nil || len(recs) == 0 {
		return 0, wrapStore("journal", err)
	}
	byID := map[string][]cache.JournalRecord{}
	var order []string
	for _, r := range recs {
		if _, ok := byID[r.ID]; !ok {
			order = append(order, r.ID)
		}
		byID[r.ID] = append(byID[r.ID], r)
	}
	jobs := make([]func(context.Context) error, 0, len(order))
	for _, id := range order {
		jobs = append(jobs, func(ctx context.Context) error {
			for _, rec := range byID[id] {
				if err := w.deliver(ctx, rec, false); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := pool(ctx, w.cfg.Concurrency, jobs); err != nil {
		return 0, err
	}
	last := recs[len(recs)-1].Seq
	if err := w.st.SetPushCursor(ctx, w.cfg.Name, last); err != nil {
		return 0, wrapStore("cursor", err)
	}
	logBatch(ctx, w.log, w.st, tl, recs, last, start, true)
	return len(recs), nil
}

// deliver sends the events of one journal record. A delivered event leaves a dead letter of
// the same resource (an earlier event) alone unless replay is set.
func (w *Webhook) deliver(ctx context.Context, rec cache.JournalRecord, replay bool) error {
	events, err := w.events(ctx, rec)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if !w.wants(ev.Type) {
			continue
		}
		tk := &task{id: rec.ID, typ: rec.Type, seq: rec.Seq, op: ev.Type}
		err := w.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
			_, err := w.post(ctx, tk, ev)
			return cache.PushOutcome{KeepDeadLetter: !replay}, err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *Webhook) wants(typ string) bool {
	if len(w.cfg.Events) == 0 {
		return true
	}
	for _, e := range w.cfg.Events {
		if e == typ || strings.HasSuffix(e, ".*") && strings.HasPrefix(typ, strings.TrimSuffix(e, "*")) {
			return true
		}
	}
	return false
}

func (w *Webhook) post(ctx context.Context, tk *task, ev Event) (*response, error) {
	body, err := jsonBody(ev)
	if err != nil {
		return nil, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	h := http.Header{}
	h.Set(HeaderTimestamp, ts)
	h.Set(HeaderSignature, Sign(w.cfg.Secret.Reveal(), ts, body))
	h.Set(HeaderEvent, ev.Type)
	h.Set(HeaderDelivery, ev.ID)
	c := *w.c
	c.header = h
	return tk.call(ctx, &c, "event", "POST", "", rawJSON(body))
}

// events builds the events of one journal record: the resource event, and for a group whose
// members changed, membership.added / membership.removed with the member ids.
func (w *Webhook) events(ctx context.Context, rec cache.JournalRecord) ([]Event, error) {
	kind := "user"
	if rec.Type == scim.GroupType {
		kind = "group"
	}
	op := map[cache.Op]string{cache.OpCreated: "created", cache.OpUpdated: "updated",
		cache.OpDeactivated: "deactivated", cache.OpDeleted: "deleted"}[rec.Op]
	if kind == "group" && op == "deactivated" {
		op = "updated"
	}
	ev := Event{ID: fmt.Sprintf("%s-%d", w.cfg.Name, rec.Seq), Type: kind + "." + op, Time: rec.Time, Seq: rec.Seq,
		ResourceType: rec.Type, ResourceID: rec.ID, Changed: rec.Changed}
	a, err := w.st.AuditAt(ctx, rec.ID, rec.Seq)
	switch {
	case err == nil:
		ev.Changes = a.Diff
	case !errors.Is(err, cache.ErrNotFound):
		return nil, wrapStore("audit", err)
	}
	if rec.Op != cache.OpDeleted {
		rs, err := w.st.GetMany(ctx, rec.Type, []string{rec.ID}, false)
		if err != nil {
			return nil, wrapStore("resource", err)
		}
		if len(rs) == 1 {
			if ev.MembersOmitted, err = w.loadMembers(ctx, rs[0]); err != nil {
				return nil, err
			}
			ev.Resource = render(rs[0])
		}
	}
	events := []Event{ev}
	for i, c := range ev.Changes {
		if c.Path != "members" {
			continue
		}
		ev.Changes = append(ev.Changes[:i:i], ev.Changes[i+1:]...)
		events[0] = ev
		for _, m := range []struct {
			typ string
			ids any
		}{{"membership.removed", c.Old}, {"membership.added", c.New}} {
			if ids := toStrings(m.ids); len(ids) > 0 {
				events = append(events, Event{ID: ev.ID + "-" + strings.TrimPrefix(m.typ, "membership."), Type: m.typ,
					Time: rec.Time, Seq: rec.Seq, ResourceType: rec.Type, ResourceID: rec.ID, Members: ids})
			}
		}
		break
	}
	return events, nil
}

// loadMembers fills in the members of group r unless it has more than webhookMembers, which it
// reports as omitted; it stops reading at the first member too many.
func (w *Webhook) loadMembers(ctx context.Context, r *scim.Resource) (omitted bool, err error) {
	if r.Type != scim.GroupType {
		return false, nil
	}
	members, err := w.st.Members(ctx, r.ID, "", webhookMembers+1)
	if err != nil {
		return false, wrapStore("members", err)
	}
	if len(members) > webhookMembers {
		return true, nil
	}
	r.Members = members
	return false, nil
}

func toStrings(v any) []string {
	switch x := v.(type) {
	case []string:
		return x
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// render is a resource in SCIM JSON shape (no DN, no meta beyond times). Its times are never
// later than the clock, as the SCIM API shows them: with [ha] the cache stores lastModified
// ahead (cache.Options.ReplicaLag), and a receiver may pull with meta.lastModified gt it.
func render(r *scim.Resource) map[string]any {
	now := time.Now()
	notAfter := func(t time.Time) time.Time {
		if t.After(now) {
			return now
		}
		return t
	}
	out := map[string]any{"id": r.ID, "meta": map[string]any{"resourceType": r.Type, "created": notAfter(r.Meta.Created),
		"lastModified": notAfter(r.Meta.LastModified), "version": r.Meta.Version}}
	for k, v := range r.Attributes {
		out[k] = v
	}
	if r.ExternalID != "" {
		out["externalId"] = r.ExternalID
	}
	if r.Type == scim.GroupType && r.Members != nil {
		out["members"] = r.Members
	}
	return out
}

// Status reports the webhook's health and progress.
func (w *Webhook) Status(ctx context.Context) Status {
	s := Status{Name: w.cfg.Name, Kind: "webhook", URL: redactURL(w.cfg.URL), Delivered: w.delivered.Load(),
		DeadLetters: w.deadLetters.Load(), Time: time.Now().UTC()}
	s.Quarantined, s.Since, s.Failures = w.c.breaker.state()
	s.Cursor, _ = w.st.PushCursor(ctx, w.cfg.Name)
	s.JournalHead, _ = w.st.JournalHead(ctx)
	if v, ok := w.lastError.Load().(string); ok {
		s.LastError = v
	}
	return s
}

// redactURL keeps scheme and host: chat incoming-webhook URLs carry their secret in the path.
func redactURL(u string) string { return redact.Host(u) }

// Replay sends the events of the dead-lettered journal records of ids (nil: all) again.
func (w *Webhook) Replay(ctx context.Context, ids []string) (int, error) {
	dls, err := selectDead(ctx, w.st, w.cfg.Name, ids)
	if err != nil {
		return 0, err
	}
	for _, d := range dls {
		recs, err := w.st.Journal(ctx, d.Seq-1, 1)
		if err != nil {
			return 0, wrapStore("journal", err)
		}
		if len(recs) == 1 && recs[0].ID == d.ID {
			if err := w.deliver(ctx, recs[0], true); err != nil {
				return 0, err
			}
		}
	}
	return len(dls), nil
}
