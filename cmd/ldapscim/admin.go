package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ha"
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/metrics"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
)

// observability is what serve builds for the admin server before the Syncer exists: the
// metrics, the pass history, and the Syncer observers that feed both.
type observability struct {
	metrics *metrics.Metrics
	history *admin.History
	targets func() []string // push target names, for metrics and the status page
}

func newObservability(st *cache.Store, targets func() []string) *observability {
	m := metrics.New(st, metrics.Options{Targets: targets})
	b := currentBuild()
	m.RegisterBuildInfo(b.Version, b.Commit, b.GoVersion)
	return &observability{metrics: m, history: admin.NewHistory(0), targets: targets}
}

// syncObservers make every pass, scheduled or asked for, reach the metrics and the history.
func (o *observability) syncObservers() []ldapsync.Observer {
	return []ldapsync.Observer{o.metrics.ObservePass, o.history.Observe}
}

// startAdmin opens the admin server's address when [admin] listen is set and returns the
// function that serves it until its context ends (nil when the server is off). When the
// default address is taken (another ldapscim on this host), serve runs without it rather than
// not at all; an address the file names must be free.
func startAdmin(cfg *config.File, path string, st *cache.Store, s *ldapsync.Syncer, hr []*hrsync.Source,
	obs *observability, p *push.Pusher, el *ha.Elector, log *slog.Logger) (func(context.Context) error, error) {
	if cfg.Admin.Listen == "" {
		log.Info("admin server off: [admin] listen is empty")
		return nil, nil
	}
	obs.metrics.RegisterPushHealth(pushHealth{p}.metrics)
	lo := localOptions(cfg, st, log)
	lo.Syncer, lo.Pusher, lo.Sources = s, p, hr
	hs := haStatus(el)
	switch {
	case el != nil:
		lo.Election = el
	case cfg.Safety.Staging && cfg.HA.Enabled():
		st := stagingReplica{cfg.HA.Node}
		lo.Election, hs = st, st
	}
	local, err := ops.NewLocal(lo)
	if err != nil {
		return nil, err
	}
	srv := admin.New(admin.Options{Config: cfg.Admin, Store: st, Ops: local, Source: s.Endpoint(), History: obs.history,
		Metrics: obs.metrics.Handler(), Push: pushHealth{p}, ConfigPath: absPath(path),
		CacheDir: absPath(cfg.Cache.Dir), HA: hs, Log: log})
	ln, err := srv.Listen()
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) && cfg.Admin.Listen == admin.DefaultListen {
			log.Warn("admin server off: its default address is in use; set [admin] listen", "addr", admin.DefaultListen)
			return nil, nil
		}
		return nil, err
	}
	return func(ctx context.Context) error { return srv.Serve(ctx, ln) }, nil
}

// electorStatus shows the [ha] election on the admin server.
type electorStatus struct{ el *ha.Elector }

func (e electorStatus) HAStatus() admin.HAStatus {
	st := e.el.Status()
	return admin.HAStatus{Role: string(st.Role), Node: st.Node, Leader: st.Leader, LeaseAge: admin.LeaseAgeString(st.LeaseAge)}
}

// stagingReplica is a replica with [ha] and [safety] staging = true: it does not campaign, so
// it never leads; its role shows as "staging".
type stagingReplica struct{ node string }

func (s stagingReplica) HAStatus() admin.HAStatus {
	return admin.HAStatus{Role: string(ha.Staging), Node: s.node}
}

func (s stagingReplica) Node() string       { return s.node }
func (s stagingReplica) IsLeader() bool     { return false }
func (s stagingReplica) LeaderName() string { return "" }

// haStatus is el's admin.HA; nil (standalone) without an election.
func haStatus(el *ha.Elector) admin.HA {
	if el == nil {
		return nil
	}
	return electorStatus{el}
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// adminClient returns a client of the serve running on this config's cache, or nil when none
// answers at [admin] listen, or the one that answers runs on another cache: then the caller
// opens the cache itself. refused is set when a serve answered but turned the CLI away, so the
// caller can explain why opening the cache fails.
func adminClient(ctx context.Context, cfg *config.File) (c *admin.Client, refused error) {
	if cfg.Admin.Listen == "" {
		return nil, nil
	}
	tok, _ := cfg.Admin.Token()
	t := tok.Reveal()
	if t == "" {
		t = os.Getenv("LDAPSCIM_ADMIN_TOKEN")
	}
	c = admin.NewClient(cfg.Admin.Listen, t)
	inf, err := c.Info(ctx)
	switch {
	case errors.Is(err, admin.ErrNotRunning):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("a serve answers at %s but refused this command (%v); give its admin token in [admin] token_file or LDAPSCIM_ADMIN_TOKEN", cfg.Admin.Listen, err)
	case inf.CacheDir != absPath(cfg.Cache.Dir):
		return nil, nil // another serve, on another cache
	}
	return c, nil
}

// openCacheOrExplain opens the cache; when that fails and a serve refused us, it says both.
func openCacheOrExplain(cfg *config.File, log *slog.Logger, refused error) (*cache.Store, error) {
	st, err := openCache(cfg, log, true)
	if err != nil && refused != nil {
		return nil, fmt.Errorf("%w; %v", err, refused)
	}
	return st, err
}

// localOptions are the ops.Local options of cfg on st.
func localOptions(cfg *config.File, st *cache.Store, log *slog.Logger) ops.LocalOptions {
	return ops.LocalOptions{LDAP: cfg.LDAP, Safety: cfg.Safety, Rules: cfg.Rules, Targets: cfg.Targets,
		Webhooks: cfg.Webhooks, CSV: cfg.CSV, Store: st, Log: log}
}

// operations loads the config at path and returns the operations on its cache: the admin API
// of the serve that runs on it, else the cache itself, opened here (close releases it; it is
// a no-op for a serve). tune, if set, adjusts the local options (a progress bar).
func operations(ctx context.Context, path string, stderr io.Writer, tune func(*ops.LocalOptions)) (*config.File, ops.Operations, func(), error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, err
	}
	log := newLogger(cfg.Log, stderr)
	warnConfig(log, cfg)
	c, refused := adminClient(ctx, cfg)
	if c != nil {
		log.Debug("using the admin API of the running serve", "listen", cfg.Admin.Listen)
		return cfg, c, func() {}, nil
	}
	st, err := openCacheOrExplain(cfg, log, refused)
	if err != nil {
		return nil, nil, nil, err
	}
	lo := localOptions(cfg, st, log)
	if tune != nil {
		tune(&lo)
	}
	local, err := ops.NewLocal(lo)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	return cfg, local, func() { st.Close() }, nil
}

// pushHealth gives the admin server's status page and the metrics the push workers' own view
// of themselves.
type pushHealth struct{ *push.Pusher }

func (p pushHealth) Health(ctx context.Context) []admin.TargetHealth {
	var out []admin.TargetHealth
	for _, st := range p.Status(ctx) {
		out = append(out, admin.TargetHealth{Name: st.Name, Delivered: st.Delivered, Quarantined: st.Quarantined,
			Failures: st.Failures, LastError: st.LastError})
	}
	return out
}

func (p pushHealth) metrics(ctx context.Context) []metrics.PushHealth {
	var out []metrics.PushHealth
	for _, st := range p.Status(ctx) {
		out = append(out, metrics.PushHealth{Target: st.Name, Kind: st.Kind, Delivered: st.Delivered,
			DeadLetters: st.DeadLetters, Quarantined: st.Quarantined, Failures: st.Failures})
	}
	return out
}
