package push

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/redact"
	"github.com/ldapscim/ldapscim/scim"
)

// Store is what push needs from the cache. *cache.Store implements it; every method is safe
// for concurrent use and returns cache's errors.
type Store interface {
	Journal(ctx context.Context, afterSeq uint64, limit int) ([]cache.JournalRecord, error)
	JournalHead(ctx context.Context) (uint64, error)
	GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error)
	GroupsOfMany(ctx context.Context, memberIDs []string) (map[string][]cache.Ref, error)
	Lookup(ctx context.Context, idx cache.Index, value string) ([]string, error)
	Audit(ctx context.Context, id string) ([]cache.AuditRecord, error)
	AuditAt(ctx context.Context, id string, seq uint64) (cache.AuditRecord, error)
	Members(ctx context.Context, gid, after string, limit int) ([]scim.Member, error)
	ForEachMember(ctx context.Context, gid, after string, fn func(scim.Member) error) error
	MemberSet(ctx context.Context, gid string, memberIDs []string) (map[string]bool, error)

	PushCursor(ctx context.Context, target string) (uint64, error)
	SetPushCursor(ctx context.Context, target string, seq uint64) error
	PushStates(ctx context.Context, target string, ids []string) (map[string]cache.PushState, error)
	RecordPush(ctx context.Context, target string, outs []cache.PushOutcome) error
	SentMembers(ctx context.Context, target, gid, after string, limit int) ([]cache.SentMember, error)
	SentMemberIDs(ctx context.Context, target, gid string, memberIDs []string) (map[string]string, error)
	DueDeletes(ctx context.Context, target string, now time.Time, limit int) ([]string, error)
	SourceMembers(ctx context.Context, target, groupID string) ([]string, error)
	SetSourceMembers(ctx context.Context, target, groupID string, ids []string) error
	DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error)

	// For Plan and ExplainScope:
	ForEachID(ctx context.Context, typ scim.ResourceType, fn func(id string) error) error
	TransitiveGroupsOf(ctx context.Context, memberID string) ([]cache.Ref, error)

	// For Reconcile:
	ForEachPushRef(ctx context.Context, target string, fn func(cache.PushRef) error) error
}

// batchSize is how many journal records a worker takes at a time; the outbox is the journal on
// disk, so memory does not grow with the backlog.
const batchSize = 1000

// Target provisions one SCIM target from the journal: Run loops, PushOnce is one batch.
type Target struct {
	cfg  TargetConfig
	prof profile
	st   Store
	log  *slog.Logger
	c    *client
	rp   retrier
	// work is held by each batch of the worker and by a reconciliation while it corrects the
	// drift: the two never write beside each other.
	work sync.Mutex
	// reconciling is held by a reconciliation from start to end: one at a time per target.
	reconciling sync.Mutex
	// touched, while a reconciliation reads the target without the work lock, collects the ids
	// whose push state the worker changed meanwhile (see Reconcile); nil otherwise.
	touchMu sync.Mutex
	touched map[string]struct{}

	delivered, deadLetters atomic.Int64
	lastError              atomic.Value // string
	alert                  func(Alert)
	recon                  ReconcilePolicy
	lastReconcile          atomic.Pointer[ReconcileStatus]
}

// NewTarget builds the worker of cfg, which must have passed Prepare.
func NewTarget(cfg TargetConfig, st Store, opts WorkerOptions) *Target {
	t := &Target{cfg: cfg, prof: profileFor(cfg.Profile), st: st, alert: opts.Alert, recon: opts.Reconcile,
		log: logOrDiscard(opts.Log).With("target", cfg.Name)}
	hc := newHTTPClient(cfg.Timeout.D(), cfg.Concurrency, cfg.TLSInsecureSkipVerify)
	b := cfg.RetryPolicy.breaker(t.quarantineChanged)
	t.c = &client{base: strings.TrimRight(cfg.URL, "/"), http: hc, breaker: b,
		limiter: newLimiter(cfg.MaxRequestsPerSecond, cfg.Concurrency), observer: opts.observer(cfg.Name), maySend: opts.MaySend,
		sent: new(atomic.Int64)}
	t.c.auth = newAuthenticator(cfg, hc)
	t.rp = retrier{policy: cfg.RetryPolicy, breaker: b,
		onDead: t.onDead, record: func(ctx context.Context, out cache.PushOutcome) error {
			if out.DeadLetter == nil {
				t.delivered.Add(1)
			}
			return t.recordPush(ctx, out)
		}}
	return t
}

// recordPush records what the worker did to one resource at the target.
func (t *Target) recordPush(ctx context.Context, out cache.PushOutcome) error {
	t.touch(out.ID)
	return wrapStore("record", t.st.RecordPush(ctx, t.cfg.Name, []cache.PushOutcome{out}))
}

// touch notes, for a reconciliation reading the target, that the push state of id changed.
func (t *Target) touch(id string) {
	t.touchMu.Lock()
	if t.touched != nil {
		t.touched[id] = struct{}{}
	}
	t.touchMu.Unlock()
}

// watchTouched starts (on) or ends collecting touched ids; ending returns those collected.
func (t *Target) watchTouched(on bool) map[string]struct{} {
	t.touchMu.Lock()
	defer t.touchMu.Unlock()
	got := t.touched
	t.touched = nil
	if on {
		t.touched = map[string]struct{}{}
	}
	return got
}

// Name is the target's name.
func (t *Target) Name() string { return t.cfg.Name }

func (t *Target) onDead(dl *cache.DeadLetter) {
	t.deadLetters.Add(1)
	t.lastError.Store(dl.Error)
	t.log.Warn("dead letter", "id", dl.ID, "op", dl.Op, "status", dl.Status, "attempts", dl.Attempts, "error", dl.Error)
	if t.alert != nil {
		t.alert(Alert{Kind: AlertDeadLetter, Target: t.cfg.Name, Key: dl.ID, Text: fmt.Sprintf("push to %s: %s %s dead-lettered after %d attempt(s): %s", t.cfg.Name, dl.Op, dl.ID, dl.Attempts, dl.Error)})
	}
}

// quarantineChanged logs and alerts a quarantine starting or ending. One that started because
// the target refused our credentials is a "target_unauthorized" alert: someone must fix them.
func (t *Target) quarantineChanged(q bool, since time.Time) {
	kind, text := AlertQuarantine, fmt.Sprintf("push target %s recovered", t.cfg.Name)
	cause, unauthorized := t.c.breaker.reason()
	if q {
		t.lastError.Store(cause)
	}
	switch {
	case q && unauthorized:
		kind = AlertUnauthorized
		text = fmt.Sprintf("push target %s quarantined: %s; changes stay queued; retrying every %s", t.cfg.Name, cause, t.cfg.QuarantineRetry.D())
		t.log.Error("target quarantined: credentials refused", "cause", cause, "retry_every", t.cfg.QuarantineRetry.D())
	case q:
		text = fmt.Sprintf("push target %s quarantined: %s; retrying every %s", t.cfg.Name, cause, t.cfg.QuarantineRetry.D())
		t.log.Error("target quarantined", "cause", cause, "retry_every", t.cfg.QuarantineRetry.D())
	default:
		t.log.Info("target recovered", "quarantined_for", time.Since(since).Round(time.Second))
	}
	if t.alert != nil {
		if q {
			t.alert(Alert{Kind: kind, Target: t.cfg.Name, Text: text})
		} else {
			// Either kind may be open; resolving one that is not sends nothing.
			for _, k := range []string{AlertQuarantine, AlertUnauthorized} {
				t.alert(Alert{Kind: k, Target: t.cfg.Name, Text: text, Resolved: true})
			}
		}
	}
}

// Run pushes the journal to the target until ctx is done. A store error is logged and retried;
// only ctx ends Run. A scheduled reconciliation runs beside the pushing (a schedule that comes
// due while one still runs is skipped); the catch-up one runs first, instead of the backlog.
func (t *Target) Run(ctx context.Context) error {
	t.catchUp(ctx)
	var recon sync.WaitGroup
	defer recon.Wait()
	var busy atomic.Bool // a scheduled reconciliation runs
	next := t.nextReconcile(time.Now())
	for {
		if !next.IsZero() && !time.Now().Before(next) {
			if busy.CompareAndSwap(false, true) {
				recon.Go(func() {
					defer busy.Store(false)
					t.scheduledReconcile(ctx)
				})
			} else {
				t.log.Warn("scheduled reconciliation skipped: the previous one still runs", "spec", t.cfg.Reconcile)
			}
			next = t.nextReconcile(time.Now())
		}
		n, err := t.PushOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case errors.Is(err, cache.ErrBusy):
			// A first sync is writing its bulk load; nothing was pushed from an empty cache.
			t.log.Debug("cache busy with a first sync; retrying", "err", err)
		case err != nil:
			t.log.Error("push batch failed; retrying", "err", err)
			t.lastError.Store(err.Error())
		}
		if n == 0 || err != nil {
			if err := sleep(ctx, t.cfg.PollInterval.D()); err != nil {
				return nil
			}
		}
	}
}

// PushOnce delivers the next batch of journal records (and deletions whose grace period is
// over) and advances the cursor past them. It returns how many records it consumed. A batch
// that consumed or sent anything logs one INFO line with its counts and the target's lag.
func (t *Target) PushOnce(ctx context.Context) (int, error) {
	t.work.Lock()
	defer t.work.Unlock()
	start := time.Now()
	tl := &tally{}
	ctx = withTally(ctx, tl)
	if err := t.deleteDue(ctx); err != nil {
		return 0, err
	}
	cur, err := t.st.PushCursor(ctx, t.cfg.Name)
	if err != nil {
		return 0, wrapStore("cursor", err)
	}
	recs, err := t.st.Journal(ctx, cur, batchSize)
	if err != nil || len(recs) == 0 {
		if err == nil && tl.sent() > 0 {
			logBatch(ctx, t.log, t.st, tl, nil, cur, start, false)
		}
		return 0, wrapStore("journal", err)
	}
	if err := t.pushBatch(ctx, recs); err != nil {
		return 0, err
	}
	last := recs[len(recs)-1].Seq
	if err := t.st.SetPushCursor(ctx, t.cfg.Name, last); err != nil {
		return 0, wrapStore("cursor", err)
	}
	logBatch(ctx, t.log, t.st, tl, recs, last, start, false)
	return len(recs), nil
}

// logBatch is the one INFO line of a batch: the journal records it consumed, the resources
// it sent a change of (created, updated, deleted, deactivated, failed: dead-lettered; for a
// webhook, events: the events it sent), and the lag: how many journal records the cursor is
// behind the head after the batch, and how old the oldest change of the batch was when the
// batch started.
func logBatch(ctx context.Context, log *slog.Logger, st Store, tl *tally, recs []cache.JournalRecord, cursor uint64, start time.Time, events bool) {
	attrs := []any{"changes", len(recs), "sent", tl.sent()}
	if !events {
		attrs = append(attrs, "created", tl.created.Load(), "updated", tl.updated.Load(),
			"deleted", tl.deleted.Load(), "deactivated", tl.deactivated.Load())
	}
	attrs = append(attrs, "failed", tl.failed.Load())
	if head, err := st.JournalHead(ctx); err == nil {
		attrs = append(attrs, "lag", head-min(cursor, head))
	}
	if len(recs) > 0 {
		attrs = append(attrs, "oldest_change_age", start.Sub(recs[0].Time).Round(time.Millisecond))
	}
	attrs = append(attrs, "took", time.Since(start).Round(time.Millisecond))
	log.Info("pushed batch", attrs...)
}

// Sync brings the named resources at the target in line with the cache now (dead-letter
// replay). Types are looked up; unknown ids are deprovisioned as deleted.
func (t *Target) Sync(ctx context.Context, users, groups []string) error {
	b := &batch{t: t, seq: map[string]uint64{}, users: set(users), groups: set(groups), levelGroups: set(groups)}
	return b.run(ctx)
}

func (t *Target) pushBatch(ctx context.Context, recs []cache.JournalRecord) error {
	b := &batch{t: t, seq: make(map[string]uint64, len(recs)), users: map[string]bool{}, groups: map[string]bool{},
		grecs: map[string][]groupRec{}}
	for _, r := range recs {
		b.seq[r.ID] = r.Seq
		if r.Type == scim.UserType {
			b.users[r.ID] = true
		} else {
			b.groups[r.ID] = true
			b.grecs[r.ID] = append(b.grecs[r.ID], groupRec{seq: r.Seq, op: r.Op, members: slices.Contains(r.Changed, "members")})
		}
	}
	return b.run(ctx)
}

func set(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// deleteDue deletes users whose deactivate_then_delete grace period is over.
func (t *Target) deleteDue(ctx context.Context) error {
	if t.cfg.Deprovision != DeactivateThenDelete {
		return nil
	}
	ids, err := t.st.DueDeletes(ctx, t.cfg.Name, time.Now(), batchSize)
	if err != nil || len(ids) == 0 {
		return wrapStore("due deletions", err)
	}
	states, err := t.st.PushStates(ctx, t.cfg.Name, ids)
	if err != nil {
		return wrapStore("push state", err)
	}
	jobs := make([]func(context.Context) error, 0, len(ids))
	for _, id := range ids {
		st, ok := states[id]
		if !ok {
			continue
		}
		jobs = append(jobs, func(ctx context.Context) error {
			tk := &task{id: id, typ: st.Type, op: "delete"}
			return t.rp.run(ctx, tk, func(ctx context.Context, tk *task) (cache.PushOutcome, error) {
				return t.deleteAtTarget(ctx, tk, st)
			})
		})
	}
	return pool(ctx, t.cfg.Concurrency, jobs)
}

func (t *Target) endpoint(typ scim.ResourceType) string {
	if typ == scim.GroupType {
		return "/Groups"
	}
	return "/Users"
}

// deleteAtTarget DELETEs the resource; a 404 means it is gone already.
func (t *Target) deleteAtTarget(ctx context.Context, tk *task, st cache.PushState) (cache.PushOutcome, error) {
	_, err := tk.call(ctx, t.c, "delete", "DELETE", t.endpoint(st.Type)+"/"+st.TargetID, nil)
	var he *HTTPError
	if err != nil && !(errors.As(err, &he) && he.Status == 404) {
		return cache.PushOutcome{}, err
	}
	return cache.PushOutcome{DropState: true}, nil
}

// Status is a target's or webhook's health for `ldapscim targets status`.
type Status struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"` // target or webhook
	URL         string    `json:"url"`
	Cursor      uint64    `json:"cursor"`
	JournalHead uint64    `json:"journalHead"`
	Delivered   int64     `json:"delivered"`
	DeadLetters int64     `json:"deadLettersSinceStart"`
	Quarantined bool      `json:"quarantined"`
	Since       time.Time `json:"quarantinedSince,omitzero"`
	Failures    int       `json:"failuresInARow"`
	// QuarantineReason says why the target is quarantined (credentials refused, requests
	// failing); empty when it is not.
	QuarantineReason string    `json:"quarantineReason,omitempty"`
	LastError        string    `json:"lastError,omitempty"`
	Time             time.Time `json:"time"`
	StoredDead       int       `json:"deadLetters"`
	StoredMapped     int       `json:"resources"`
	// Reconcile is the last reconciliation since start, nil when none ran.
	Reconcile *ReconcileStatus `json:"reconcile,omitempty"`
}

// Status reports the target's health and progress.
func (t *Target) Status(ctx context.Context) Status {
	s := Status{Name: t.cfg.Name, Kind: "target", URL: redact.URL(t.cfg.URL), Delivered: t.delivered.Load(),
		DeadLetters: t.deadLetters.Load(), Time: time.Now().UTC()}
	s.Quarantined, s.Since, s.Failures = t.c.breaker.state()
	if s.Quarantined {
		s.QuarantineReason, _ = t.c.breaker.reason()
	}
	s.Cursor, _ = t.st.PushCursor(ctx, t.cfg.Name)
	s.JournalHead, _ = t.st.JournalHead(ctx)
	if v, ok := t.lastError.Load().(string); ok {
		s.LastError = v
	}
	s.Reconcile = t.lastReconcile.Load()
	return s
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Replay delivers the dead letters of ids (nil: all) again: each resource is brought in line
// with the cache as it is now. It returns how many it tried.
func (t *Target) Replay(ctx context.Context, ids []string) (int, error) {
	dls, err := selectDead(ctx, t.st, t.cfg.Name, ids)
	if err != nil {
		return 0, err
	}
	var users, groups []string
	for _, d := range dls {
		if d.Type == scim.GroupType {
			groups = append(groups, d.ID)
		} else {
			users = append(users, d.ID)
		}
	}
	return len(dls), t.Sync(ctx, users, groups)
}
