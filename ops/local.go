package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/hrcsv"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/redact"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// LocalOptions are what NewLocal needs: the loaded config's sections (package config's
// File), the open cache and a logger. Store and Log are required.
type LocalOptions struct {
	LDAP     ldapsync.Config
	Safety   ldapsync.SafetyConfig
	Rules    []ldapsync.RuleConfig
	Targets  []push.TargetConfig
	Webhooks []push.WebhookConfig
	CSV      []hrcsv.Config
	Store    *cache.Store
	Log      *slog.Logger
	// Syncer runs passes and approvals. In serve it is the scheduled passes' Syncer, so an
	// operation waits for a running pass and the other way round. Nil: each Sync builds one
	// (with the rules and Progress) and approvals run on the store directly.
	Syncer   *ldapsync.Syncer
	Progress ldapsync.Progress
	// Pusher is serve's running push workers: replays go through them and TargetsStatus
	// reports their health. Nil: a Pusher on the store that does not run.
	Pusher *push.Pusher
	// Sources are serve's HR file sources (sharing its pass lock). Nil: built from CSV.
	Sources []*hrsync.Source
	// Election is serve's [ha] election (an *ha.Elector); nil: a standalone serve, or a
	// command on the cache. A replica that does not lead refuses the dead-letter operations:
	// only the leader pushes, and the dead letters that matter are in its cache.
	Election Election
}

// Election is what Local reads of the [ha] election; *ha.Elector implements it.
type Election interface {
	Node() string
	IsLeader() bool
	LeaderName() string // "" when no leader is known
}

// Local runs the operations on a cache this process holds.
type Local struct {
	o     LocalOptions
	rules *ldapsync.Rules
	live  bool // o.Pusher is the running one
}

// NewLocal returns the operations on o.Store. Its error is a rule that does not compile
// (config.Load has rejected such a file already).
func NewLocal(o LocalOptions) (*Local, error) {
	rules, err := ldapsync.CompileRules(o.Rules)
	if err != nil {
		return nil, err
	}
	l := &Local{o: o, rules: rules, live: o.Pusher != nil}
	if o.Pusher == nil {
		l.o.Pusher = push.New(o.Targets, o.Webhooks, o.Store, push.Options{Log: o.Log})
	}
	if o.Sources == nil {
		th := ingest.Threshold{MaxDeletes: o.Safety.MaxDeletes, MaxDeletePercent: o.Safety.MaxDeletePercent}
		for _, c := range o.CSV {
			src, err := hrsync.New(c, th, o.Store, hrsync.Options{Log: o.Log, Rules: rules})
			if err != nil {
				return nil, err
			}
			l.o.Sources = append(l.o.Sources, src)
		}
	}
	return l, nil
}

// Import applies an HR file to its source.
func (l *Local) Import(ctx context.Context, source string, file io.ReadSeeker, dryRun bool) (*hrsync.Summary, error) {
	for _, src := range l.o.Sources {
		if src.Name() == "csv:"+source {
			sum, err := src.Import(ctx, file, true, dryRun)
			var probs *hrcsv.Problems
			if errors.As(err, &probs) {
				return &sum, &Error{Code: Invalid, Msg: err.Error()}
			}
			return &sum, err
		}
	}
	return nil, Errorf(Invalid, "no [[csv]] source is named %q", source)
}

// syncOptions are the ldapsync options of every pass Local runs or plans.
func (l *Local) syncOptions() ldapsync.Options {
	return ldapsync.Options{Log: l.o.Log, Rules: l.rules, Progress: l.o.Progress}
}

var _ Operations = (*Local)(nil)

// Sync runs one pass.
func (l *Local) Sync(ctx context.Context, full bool) (ldapsync.Summary, error) {
	s := l.o.Syncer
	if s == nil {
		var err error
		if s, err = ldapsync.New(l.o.LDAP, l.o.Safety, l.o.Store, l.syncOptions()); err != nil {
			return ldapsync.Summary{}, err
		}
	}
	if full {
		return s.SyncFull(ctx)
	}
	return s.SyncOnce(ctx)
}

// Holds lists the held changes.
func (l *Local) Holds(ctx context.Context) ([]cache.Hold, error) {
	hs, err := l.o.Store.Holds(ctx)
	if hs == nil && err == nil {
		hs = []cache.Hold{}
	}
	return hs, err
}

// ApproveHolds applies held changes.
func (l *Local) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	var res cache.Result
	var err error
	if l.o.Syncer != nil {
		res, err = l.o.Syncer.ApproveHolds(ctx, ids)
	} else {
		res, err = ldapsync.ApproveHolds(ctx, l.o.Store, ids)
	}
	if errors.Is(err, ingest.ErrNotHeld) {
		return res, &Error{Code: NotFound, Msg: err.Error()}
	}
	return res, err
}

// Plan is a dry-run pass and what each push target would be sent.
func (l *Local) Plan(ctx context.Context, req PlanRequest) (*Plan, error) {
	var workers []*push.Target
	for _, t := range l.o.Pusher.TargetWorkers() {
		if req.Target == "" || t.Name() == req.Target {
			workers = append(workers, t)
		}
	}
	if req.Target != "" && len(workers) == 0 {
		return nil, Errorf(Invalid, "plan: no [[targets]] entry is named %q", req.Target)
	}
	rep, err := ldapsync.Plan(ctx, l.o.LDAP, l.o.Safety, l.o.Store, req.Full, l.syncOptions())
	if rep == nil {
		return nil, err
	}
	out := &Plan{PlanReport: rep, Targets: []TargetPlan{}}
	for _, t := range workers {
		changes, terr := t.Plan(ctx)
		if terr != nil {
			return nil, fmt.Errorf("planning target %s: %w", t.Name(), terr)
		}
		out.Targets = append(out.Targets, TargetPlan{Target: t.Name(), Changes: changes})
	}
	return out, err
}

// Explain explains the user with that id or userName.
func (l *Local) Explain(ctx context.Context, user string) (*Explanation, error) {
	u, err := l.findUser(ctx, user)
	if err != nil {
		return nil, err
	}
	ex := &Explanation{ID: u.ID, UserName: u.UserName(), DN: u.DN, ExternalID: u.ExternalID,
		Attributes: u.Attributes, Rules: l.rules.Explain(u), Targets: []ScopeVerdict{}}
	if ex.Groups, err = l.o.Store.GroupsOf(ctx, u.ID); err != nil {
		return nil, err
	}
	if ex.Source, err = l.o.Store.Owner(ctx, u.ID); err != nil {
		return nil, err
	}
	if ex.Source == "" {
		ex.Source = ldapsync.Source
	}
	ex.Sources = make(map[string]string, len(u.Attributes)+1)
	for k := range u.Attributes {
		ex.Sources[k] = ex.Source
	}
	if u.ExternalID != "" {
		ex.Sources["externalId"] = ex.Source
	}
	ovs, err := l.o.Store.Overlays(ctx, []string{u.ID})
	if err != nil {
		return nil, err
	}
	if o := ovs[u.ID]; o != nil {
		for path := range o.Set {
			ex.Sources[path] = o.Source
		}
	}
	slices.SortFunc(ex.Groups, func(a, b cache.Ref) int { return strings.Compare(a.Display, b.Display) })
	for _, t := range l.o.Pusher.TargetWorkers() {
		in, why, err := t.ExplainScope(ctx, u)
		if err != nil {
			return nil, err
		}
		ex.Targets = append(ex.Targets, ScopeVerdict{Target: t.Name(), InScope: in, Why: why})
	}
	return ex, nil
}

// findUser looks a user up by id, then by userName. A userName several users hold (the same
// uid in two OUs) names none of them: the error lists their ids to explain one by.
func (l *Local) findUser(ctx context.Context, key string) (*scim.Resource, error) {
	st := l.o.Store
	u, err := st.Get(ctx, scim.UserType, key)
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, cache.ErrNotFound) {
		return nil, err
	}
	ids, err := st.Lookup(ctx, cache.IndexUserName, key)
	if err != nil {
		return nil, err
	}
	switch {
	case len(ids) == 0:
		return nil, Errorf(Invalid, "no user with id or userName %q", key)
	case len(ids) > 1:
		shown := ids[:min(len(ids), 10)]
		return nil, Errorf(Invalid, "ambiguous userName %q: %d users hold it (ids %s); explain one of them by id",
			key, len(ids), strings.Join(shown, ", "))
	}
	return st.Get(ctx, scim.UserType, ids[0])
}

// Audit is a resource's sync and push history.
func (l *Local) Audit(ctx context.Context, id string) (*AuditHistory, error) {
	h := &AuditHistory{ID: id}
	var err error
	if h.Sync, err = l.o.Store.Audit(ctx, id); err != nil {
		return nil, err
	}
	if h.Push, err = l.o.Store.PushAudit(ctx, id); err != nil {
		return nil, err
	}
	if h.Sync == nil {
		h.Sync = []cache.AuditRecord{}
	}
	if h.Push == nil {
		h.Push = []cache.PushAudit{}
	}
	return h, nil
}

// DeadLetters lists target's dead letters.
func (l *Local) DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error) {
	if err := l.knownTarget(target); err != nil {
		return nil, err
	}
	dl, err := l.o.Store.DeadLetters(ctx, target)
	if dl == nil && err == nil {
		dl = []cache.DeadLetter{}
	}
	return dl, err
}

// ReplayDeadLetters delivers target's dead letters of ids again. A follower refuses
// (Unavailable, naming the leader), and so does a staging ldapscim, which pushes nothing.
func (l *Local) ReplayDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	if err := l.knownTarget(target); err != nil {
		return 0, err
	}
	if err := l.leading("replay dead letters"); err != nil {
		return 0, err
	}
	return l.o.Pusher.Replay(ctx, target, ids)
}

// SkipDeadLetters drops target's dead letters of ids. A follower refuses (Unavailable, naming
// the leader): the dead letters the leader's workers keep are in the leader's cache.
func (l *Local) SkipDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	if err := l.knownTarget(target); err != nil {
		return 0, err
	}
	if err := l.leading("skip dead letters"); err != nil {
		return 0, err
	}
	return l.o.Store.DropDeadLetters(ctx, target, ids)
}

// Reconcile compares a push target with the cache, and with req.Apply corrects it. In serve
// it runs on the running worker's Target, whose work lock keeps it and the worker's batches
// apart.
func (l *Local) Reconcile(ctx context.Context, req ReconcileRequest) (*push.ReconcileReport, error) {
	tg, ok := l.o.Pusher.TargetNamed(req.Target)
	if !ok {
		return nil, Errorf(Invalid, "reconcile: no [[targets]] entry is named %q", req.Target)
	}
	if req.Apply {
		// A follower or a staging ldapscim refuses; a dry run only reads.
		if err := l.leading("reconcile " + req.Target + " with --apply"); err != nil {
			return nil, err
		}
	}
	th := ingest.Threshold{MaxDeletes: l.o.Safety.MaxDeletes, MaxDeletePercent: l.o.Safety.MaxDeletePercent}
	rep, err := tg.Reconcile(ctx, push.ReconcileOptions{Apply: req.Apply, Threshold: th})
	if err != nil {
		return nil, fmt.Errorf("reconciling target %s: %w", req.Target, err)
	}
	return rep, nil
}

// leading refuses what (a push operation) with [safety] staging = true, which pushes nothing,
// and on a replica that does not lead the [ha] election.
func (l *Local) leading(what string) error {
	el := l.o.Election
	if l.o.Safety.Staging {
		if el != nil {
			return Errorf(Unavailable, "cannot %s: this replica (%s) runs with [safety] staging = true: it takes no part in the [ha] election and pushes nothing", what, el.Node())
		}
		return Errorf(Unavailable, "cannot %s: [safety] staging = true: nothing is pushed to targets or webhooks", what)
	}
	if el == nil || el.IsLeader() {
		return nil
	}
	leader := el.LeaderName()
	if leader == "" {
		return Errorf(Unavailable, "cannot %s: this replica (%s) does not lead the [ha] election and no leader is known now; only the leader pushes, retry on it once one is elected", what, el.Node())
	}
	return Errorf(Unavailable, "cannot %s: this replica (%s) does not lead the [ha] election; only the leader pushes: run it on %s", what, el.Node(), leader)
}

// knownTarget refuses a name that is no target or event webhook (NotFound).
func (l *Local) knownTarget(name string) error {
	if slices.Contains(l.o.Pusher.Targets(), name) {
		return nil
	}
	return Errorf(NotFound, "no [[targets]] or [[webhooks]] entry named %q", name)
}

// TargetsStatus reports each target and event webhook: its cursor, lag, stored dead letters
// and resources from the cache, and, in serve, its workers' health.
func (l *Local) TargetsStatus(ctx context.Context) (*TargetsStatus, error) {
	out := &TargetsStatus{Live: l.live, Targets: []push.Status{}}
	head, err := l.o.Store.JournalHead(ctx)
	if err != nil {
		return nil, err
	}
	live := map[string]push.Status{}
	if l.live {
		for _, s := range l.o.Pusher.Status(ctx) {
			live[s.Name] = s
		}
	}
	for _, c := range l.configured() {
		row, ok := live[c.Name]
		if !ok {
			row = c
		}
		sum, err := l.o.Store.PushSummary(ctx, c.Name)
		if err != nil {
			return nil, err
		}
		row.Cursor, row.JournalHead, row.StoredDead, row.StoredMapped = sum.Cursor, head, sum.DeadLetters, sum.Resources
		out.Targets = append(out.Targets, row)
	}
	return out, nil
}

// configured lists the targets and event webhooks, in config order (alert webhooks carry no
// journal cursor).
func (l *Local) configured() []push.Status {
	var out []push.Status
	for _, t := range l.o.Targets {
		out = append(out, push.Status{Name: t.Name, Kind: "target", URL: redact.URL(t.URL)})
	}
	for _, w := range l.o.Webhooks {
		if w.Format != "slack" {
			out = append(out, push.Status{Name: w.Name, Kind: "webhook", URL: redact.Host(w.URL)})
		}
	}
	return out
}
