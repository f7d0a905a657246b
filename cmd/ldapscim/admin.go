package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ldapscim/ldapscim/admin"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/config"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/metrics"
	"github.com/ldapscim/ldapscim/push"
)

// observability is what serve builds for the admin server before the Syncer exists: the
// metrics, the pass history, and the Syncer options that feed both.
type observability struct {
	metrics *metrics.Metrics
	history *admin.History
	targets func() []string // push target names, for metrics and the status page
}

func newObservability(st *cache.Store, targets func() []string) *observability {
	return &observability{metrics: metrics.New(st, targets), history: admin.NewHistory(0), targets: targets}
}

// syncOptions makes every pass, scheduled or asked for, reach the metrics and the history.
func (o *observability) syncOptions() []ldapsync.Option {
	return []ldapsync.Option{ldapsync.WithObserver(o.metrics.ObservePass), ldapsync.WithObserver(o.history.Observe)}
}

// startAdmin opens the admin server's address when [admin] listen is set and returns the
// function that serves it until its context ends (nil when the server is off). When the
// default address is taken (another ldapscim on this host), serve runs without it rather than
// not at all; an address the file names must be free.
func startAdmin(cfg *config.File, path string, st *cache.Store, s *ldapsync.Syncer,
	obs *observability, pa admin.Push, log *slog.Logger) (func(context.Context) error, error) {
	if cfg.Admin.Listen == "" {
		log.Info("admin server off: [admin] listen is empty")
		return nil, nil
	}
	if p, ok := pa.(*push.Pusher); ok && p != nil {
		pa = pushHealth{p}
		obs.metrics.RegisterPushHealth(pushHealth{p}.metrics)
	}
	srv := admin.New(admin.Options{Config: cfg.Admin, Store: st, Syncer: s, History: obs.history,
		Metrics: obs.metrics.Handler(), Push: pa, Reports: serveReports{cfg, st, log}, ConfigPath: absPath(path),
		CacheDir: absPath(cfg.Cache.Dir), Log: log})
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
	st, err := openCache(cfg, log)
	if err != nil && refused != nil {
		return nil, fmt.Errorf("%w; %v", err, refused)
	}
	return st, err
}

// setupOrAdmin is setup for the commands that also work through a running serve: it returns
// a client of that serve's admin API (and no store) when one runs on this config's cache,
// else the opened store (and no client). The caller closes the store.
func setupOrAdmin(ctx context.Context, path string, stderr io.Writer) (*config.File, *slog.Logger, *cache.Store, *admin.Client, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	log := newLogger(cfg.Log, stderr)
	warnConfig(log, cfg)
	c, refused := adminClient(ctx, cfg)
	if c != nil {
		log.Debug("using the admin API of the running serve", "listen", cfg.Admin.Listen)
		return cfg, log, nil, c, nil
	}
	st, err := openCacheOrExplain(cfg, log, refused)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return cfg, log, st, nil, nil
}

// holdKeeper lists and approves held deletions: *admin.Client (a running serve) or cacheHolds.
type holdKeeper interface {
	Holds(ctx context.Context) ([]cache.Hold, error)
	ApproveHolds(ctx context.Context, ids []string) (cache.Result, error)
}

// cacheHolds works on the cache directly, when no serve runs.
type cacheHolds struct{ st *cache.Store }

func (c cacheHolds) Holds(ctx context.Context) ([]cache.Hold, error) { return c.st.Holds(ctx) }

func (c cacheHolds) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	return ldapsync.ApproveHolds(ctx, c.st, ids)
}

// pushHealth gives the admin server and the metrics the push workers' own view of themselves.
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

// adminUsage turns serve's answer to a mistake (400) or a failed pass (502) into the error the
// command gives without serve: the message alone.
func adminUsage(err error) error {
	var se *admin.StatusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusBadRequest:
			return usageError{se.Message}
		case http.StatusBadGateway:
			return errors.New(se.Message)
		}
	}
	return err
}

// serveReports makes `plan` and `explain` inside serve, which holds the cache (admin.Reports).
type serveReports struct {
	cfg *config.File
	st  *cache.Store
	log *slog.Logger
}

func (r serveReports) Plan(ctx context.Context, full bool, target string) (any, error) {
	out, err := makePlan(ctx, r.cfg, r.st, r.log, full, target)
	var ue usageError
	if errors.As(err, &ue) {
		return nil, admin.BadRequestError{Msg: ue.Error()}
	}
	if out == nil {
		return nil, err
	}
	return out, err
}

func (r serveReports) Explain(ctx context.Context, user string) (any, error) {
	ex, err := explain(ctx, r.cfg, r.st, r.log, user)
	if errors.Is(err, errNoSuchUser) || errors.Is(err, errAmbiguousUser) {
		return nil, admin.BadRequestError{Msg: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	return ex, nil
}
