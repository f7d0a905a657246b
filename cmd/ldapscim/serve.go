package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ha"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/internal/termsafe"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scimapi"
	"golang.org/x/sync/errgroup"
)

// runServe runs serve's components beside each other until ctx is cancelled (SIGINT/SIGTERM)
// or one of them fails: the sync schedule (with a first pass right away), the SCIM API (when
// the config has a [scim] section), the admin server (when [admin] listen is set) and the push
// workers. They run in one errgroup: the first to fail cancels the rest, and its error is
// serve's. Shutting down, the API and the admin server let in-flight requests finish, the push
// workers and a running pass stop, and the cache is closed last, once every component has
// returned.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := flagsOnly("serve", args, stderr, nil)
	if err != nil {
		return err
	}
	cfg, log, st, err := setup(path, stderr)
	if err != nil {
		return err
	}
	defer st.Close()
	// The metrics read the pusher's target names at scrape time (the admin server starts below)
	// and the pusher reports its requests to the metrics.
	var pusher *push.Pusher
	obs := newObservability(st, func() []string { return pusher.Targets() })
	// A staging replica takes no part in the election: were it to win, it would hold the
	// leadership and push nothing, and the replicas that should push would wait on it.
	var elector *ha.Elector
	if !cfg.Safety.Staging {
		if elector, err = newElector(cfg, obs, log); err != nil {
			return err
		}
	}
	if elector != nil {
		defer elector.Close()
	}
	popts := push.Options{Log: log, ObserveRequests: obs.metrics.ObservePush,
		Reconcile: push.ReconcilePolicy{Threshold: ingest.Threshold{MaxDeletes: cfg.Safety.MaxDeletes, MaxDeletePercent: cfg.Safety.MaxDeletePercent}}}
	if elector != nil {
		// The fence: a request leaves only while this replica leads with a fresh lease, even
		// one whose context was made before a pause.
		popts.MaySend = elector.MaySend
		// A new leader whose push state for a target is behind reconciles it instead of
		// resending the backlog (push.ReconcilePolicy).
		popts.Reconcile.CatchUpLag = push.DefaultCatchUpLag
	}
	pusher = push.New(cfg.Targets, cfg.Webhooks, st, popts)
	// The passes of every source replace the hold set: one at a time.
	passLock := &sync.Mutex{}
	opts := cfg.SyncOptions()
	opts.Log = log
	opts.Observers = append(obs.syncObservers(), heldAlert(pusher, path))
	opts.PassLock = passLock
	s, err := ldapsync.New(cfg.LDAP, cfg.Safety, st, opts)
	if err != nil {
		return err
	}
	hr, err := hrSources(cfg, st, opts.Rules, passLock, log)
	if err != nil {
		return err
	}
	hrPasses := func(ctx context.Context) {
		for _, src := range hr {
			hrPass(ctx, src, pusher, path, log)
		}
	}
	ctx, cancel := context.WithCancel(ctx) // releases gctx when serve fails to start
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// Everything that can fail at start does so before any component runs: a taken address
	// is reported and nothing is left to stop.
	sch, err := ldapsync.NewScheduler(gctx, s, cfg.Schedule, ldapsync.SchedulerOptions{Log: log,
		AfterDelta: []func(context.Context){hrPasses}})
	if err != nil {
		return err
	}
	var apiLn net.Listener
	var api *scimapi.Server
	if cfg.SCIM != nil {
		api = scimapi.New(*cfg.SCIM, st, scimapi.Options{Log: log,
			RequestObservers: []scimapi.RequestObserver{obs.metrics.HTTPObserver("scim")}})
		if apiLn, err = api.Listen(); err != nil {
			return err
		}
	} else {
		log.Info("SCIM API off: the config has no [scim] section")
	}
	serveAdmin, err := startAdmin(cfg, path, st, s, hr, obs, pusher, elector, log)
	if err != nil {
		if apiLn != nil {
			apiLn.Close()
		}
		return err
	}

	if api != nil {
		g.Go(component(gctx, "scim api", func(ctx context.Context) error { return api.Serve(ctx, apiLn) }))
	}
	if serveAdmin != nil {
		g.Go(component(gctx, "admin server", serveAdmin))
	}
	log.Info("serving", "delta", cfg.Schedule.Delta, "full", cfg.Schedule.Full, "cache", cfg.Cache.Dir)
	g.Go(component(gctx, "scheduler", func(ctx context.Context) error {
		sch.Start()
		<-ctx.Done()
		sch.Stop() // waits for a scheduled pass, which ctx stops
		return nil
	}))
	// A first pass right away, so a fresh cache does not wait for the first tick. Its failure
	// is logged by the Syncer; the schedule retries.
	g.Go(func() error {
		_, _ = s.SyncOnce(gctx)
		hrPasses(gctx)
		return nil
	})
	switch {
	case cfg.Safety.Staging && cfg.HA.Enabled():
		log.Warn("staging: [safety] staging = true, so nothing is pushed to targets or webhooks, and this replica does not campaign in the [ha] election", "node", cfg.HA.Node)
	case cfg.Safety.Staging:
		log.Warn("staging: [safety] staging = true, so nothing is pushed to targets or webhooks")
	case elector != nil:
		g.Go(component(gctx, "ha election", func(ctx context.Context) error {
			return elector.Run(ctx, func(ctx context.Context) { leadPush(ctx, pusher, log) })
		}))
	default:
		g.Go(component(gctx, "push", func(ctx context.Context) error {
			pusher.Run(ctx)
			return nil
		}))
	}
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down")
		return nil
	})
	return g.Wait()
}

// newElector builds the [ha] election (nil without [ha]) and exports ldapscim_ha_leader.
func newElector(cfg *config.File, obs *observability, log *slog.Logger) (*ha.Elector, error) {
	if !cfg.HA.Enabled() {
		return nil, nil
	}
	el, err := ha.New(cfg.HA, ha.Options{Log: log})
	if err != nil {
		return nil, err
	}
	obs.metrics.RegisterHALeader(el.IsLeader)
	log.Info("high availability: campaigning on etcd; only the leader pushes", "node", el.Node(), "election", cfg.HA.Election, "lease_ttl", cfg.HA.LeaseTTL.D(),
		"max_lag", cfg.HA.MaxLag.D())
	if cfg.Admin.ReadyMaxAge.D() >= cfg.HA.MaxLag.D() {
		// meta.lastModified assumes every replica in the load balancer applies a change within
		// max_lag of the others; one whose passes fail while the others' succeed stays ready
		// until ready_max_age.
		log.Warn("high availability: [admin] ready_max_age is not below [ha] max_lag, so a replica whose sync passes fail stays in the load balancer longer than max_lag; a client spread over the replicas may then miss a change through meta.lastModified gt",
			"ready_max_age", cfg.Admin.ReadyMaxAge.D(), "max_lag", cfg.HA.MaxLag.D())
	}
	return el, nil
}

// leadPush runs the push workers while this replica leads: the elector cancels ctx when the
// leadership may be lost, and the workers have stopped when leadPush returns.
func leadPush(ctx context.Context, p *push.Pusher, log *slog.Logger) {
	log.Info("leading: the push workers start")
	p.Run(ctx)
	log.Info("no longer leading: the push workers stopped")
}

// component runs one of serve's components until ctx ends. A component that returns before
// that, even without an error, has stopped serving: that is a failure, which stops serve.
func component(ctx context.Context, name string, run func(context.Context) error) func() error {
	return func() error {
		err := run(ctx)
		if err == nil && ctx.Err() == nil {
			err = fmt.Errorf("%s stopped on its own", name)
		}
		return err
	}
}

// hrSources builds the [[csv]] sources, sharing the passes' lock.
func hrSources(cfg *config.File, st *cache.Store, rules *ingest.Rules, lock sync.Locker, log *slog.Logger) ([]*hrsync.Source, error) {
	th := ingest.Threshold{MaxDeletes: cfg.Safety.MaxDeletes, MaxDeletePercent: cfg.Safety.MaxDeletePercent}
	var out []*hrsync.Source
	for _, c := range cfg.CSV {
		src, err := hrsync.New(c, th, st, hrsync.Options{Log: log, Rules: rules, PassLock: lock})
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

// hrPass runs a scheduled pass of an HR file source: it reads the file when its content (or
// the day, for dates) changed. A refused file is logged and alerted, and changes nothing; held
// changes are alerted like the directory's.
func hrPass(ctx context.Context, src *hrsync.Source, p *push.Pusher, configPath string, log *slog.Logger) {
	sum, err := src.Sync(ctx)
	defer p.CheckAlertsSoon()
	if err != nil {
		if ctx.Err() == nil {
			log.Error("HR file pass failed; the last good state stays", "source", src.Name(), "file", src.Path(), "err", err)
			p.Alert(push.Alert{Kind: push.AlertSourceRefused, Target: src.Name(), Text: fmt.Sprintf(
				"ldapscim refused %s (%s); nothing changed: %s", src.Path(), src.Name(), termsafe.Clip(err.Error(), 1500))})
		}
		return
	}
	p.Alert(push.Alert{Kind: push.AlertSourceRefused, Target: src.Name(), Resolved: true})
	if sum.Held > 0 {
		p.Alert(push.Alert{Kind: push.AlertHeldDeletions, Target: src.Name(), Text: fmt.Sprintf(
			"ldapscim pass %s of %s holds %d deletion(s)/deactivation(s) above the safety threshold; review with `ldapscim deletes list --config %s`, apply with `ldapscim deletes approve --config %s --all`",
			sum.Pass, src.Path(), sum.Held, configPath, configPath)})
	}
}

// heldAlert tells the alert webhooks when a pass holds deletions or deactivations. After any
// pass it has the open alerts checked, so one about holds that a pass replaced is resolved.
func heldAlert(p *push.Pusher, configPath string) func(ldapsync.Summary, error) {
	return func(sum ldapsync.Summary, _ error) {
		defer p.CheckAlertsSoon()
		if sum.Held == 0 && sum.HeldMembers == 0 {
			return
		}
		p.Alert(push.Alert{Kind: push.AlertHeldDeletions, Target: ldapsync.Source, Text: fmt.Sprintf(
			"ldapscim pass %s holds %d deletion(s)/deactivation(s) and %d group member removal(s) above the safety threshold; review with `ldapscim deletes list --config %s`, apply with `ldapscim deletes approve --config %s --all`",
			sum.Pass, sum.Held, sum.HeldMembers, configPath, configPath)})
	}
}
