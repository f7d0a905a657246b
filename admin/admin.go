// Package admin is ldapscim's operator HTTP server, beside the SCIM API on its own listener:
// liveness and readiness probes, Prometheus metrics, a server-rendered status page, and an
// admin API that serves the operations of package ops (a pass, held changes, plan, explain,
// audit, dead letters, targets status) of the running `serve`, which holds the cache's only
// lock. Client is that API's Go client and the CLI's ops.Operations while serve runs.
//
// It speaks plain net/http: the admin surface is a dozen fixed paths, and keeping it off gin
// keeps it independent of the SCIM API's middleware and limits.
package admin

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ldapscim/ldapscim/internal/httpserve"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
)

// Store is what the admin server reads and changes in the cache; *cache.Store implements it.
// All methods are safe for concurrent use and return cache errors.
type Store interface {
	Stats(ctx context.Context) (cache.Stats, error)
	Holds(ctx context.Context) ([]cache.Hold, error)
	Watermark(ctx context.Context, source string) ([]byte, error)
	Journal(ctx context.Context, afterSeq uint64, limit int) ([]cache.JournalRecord, error)
	JournalHead(ctx context.Context) (uint64, error)
	PushSummary(ctx context.Context, target string) (cache.PushSummary, error)
	DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error)
	DropDeadLetters(ctx context.Context, target string, ids []string) (int, error)
	Audit(ctx context.Context, id string) ([]cache.AuditRecord, error)
	PushAudit(ctx context.Context, id string) ([]cache.PushAudit, error)
}

// Push is what the admin server needs from the push workers for the status page. It is
// optional: without it the status page shows no targets.
type Push interface {
	// Targets returns the names of the configured targets, in config order.
	Targets() []string
}

// TargetHealth is what a push worker says about itself, for the status page.
type TargetHealth struct {
	Name        string
	Delivered   int64
	Quarantined bool
	Failures    int // failed requests in a row
	LastError   string
}

// PushHealth is optionally implemented by a Push: the status page then shows each target's
// own view (delivered since start, quarantine, last error).
type PushHealth interface {
	Health(ctx context.Context) []TargetHealth
}

// Options are what New needs. Config, Store and Ops are required.
type Options struct {
	Config Config
	Store  Store
	// Ops does what the admin API's routes ask for; in serve, an ops.Local on serve's cache,
	// Syncer and push workers.
	Ops ops.Operations
	// Source is the directory the passes read, for the status page.
	Source ldapsync.Endpoint
	// History records passes for the status page; it must be the one observing the Syncer
	// (ldapsync.Options.Observers holds history.Observe). Nil: New makes one that sees nothing.
	History *History
	// Metrics serves /metrics; nil answers 404.
	Metrics http.Handler
	Push    Push
	// ConfigPath is shown in the commands the status page suggests.
	ConfigPath string
	// CacheDir identifies the cache this server runs on (GET /admin/v1/info), so a CLI
	// started with another config never acts on the wrong serve.
	CacheDir string
	// HA is the [ha] election; nil: a standalone serve.
	HA  HA
	Log *slog.Logger
}

// Server is the admin HTTP server. It is an http.Handler.
type Server struct {
	opts  Options
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	chart *chart
	start time.Time
	now   func() time.Time
}

// New builds the server. opts.Config must have passed Validate and ResolveToken.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.History == nil {
		opts.History = NewHistory(0)
	}
	s := &Server{opts: opts, cfg: opts.Config, log: opts.Log.With("component", "admin"),
		mux: http.NewServeMux(), chart: newChart(opts.Store), start: time.Now(), now: time.Now}
	s.routes()
	return s
}

// routes is the whole URL space of the admin server.
func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.HandleFunc("GET /metrics", s.protect(s.metrics))
	s.mux.HandleFunc("GET /status", s.protect(s.status))
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/status", http.StatusFound)
	})
	s.mux.HandleFunc("GET /admin/v1/info", s.protect(s.info))
	s.mux.HandleFunc("POST /admin/v1/sync", s.protect(s.sync))
	s.mux.HandleFunc("GET /admin/v1/holds", s.protect(s.holds))
	s.mux.HandleFunc("POST /admin/v1/holds/approve", s.protect(s.approve))
	s.mux.HandleFunc("GET /admin/v1/audit/{id}", s.protect(s.audit))
	s.mux.HandleFunc("POST /admin/v1/plan", s.protect(s.plan))
	s.mux.HandleFunc("GET /admin/v1/explain/{user}", s.protect(s.explain))
	s.mux.HandleFunc("GET /admin/v1/targets", s.protect(s.targets))
	s.mux.HandleFunc("POST "+importPath+"{source}", s.protect(s.importFile))
	s.mux.HandleFunc("GET /admin/v1/targets/{target}/deadletters", s.protect(s.deadLetters))
	s.mux.HandleFunc("POST /admin/v1/targets/{target}/deadletters/replay", s.protect(s.replay))
	s.mux.HandleFunc("POST /admin/v1/targets/{target}/deadletters/skip", s.protect(s.skip))
	s.mux.HandleFunc("POST /admin/v1/targets/{target}/reconcile", s.protect(s.reconcile))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
}

// ServeHTTP serves one request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	s.mux.ServeHTTP(w, r)
}

// ShutdownTimeout is how long Serve lets in-flight requests (a running pass) finish.
const ShutdownTimeout = 10 * time.Second

// Listen opens the configured address, so "address in use" is reported before anything starts.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx is cancelled, then shuts down: requests see ctx cancelled (a
// pass asked for through the API stops) and get ShutdownTimeout to finish. It returns nil
// after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	// No write timeout: a pass asked for through the API answers when it is done.
	hs := httpserve.New(s, s.log, httpserve.Options{BaseContext: ctx})
	s.log.Info("admin server listening", "addr", ln.Addr().String(), "token", s.cfg.hasTok, "allow_loopback", s.cfg.AllowLoopback)
	if err := httpserve.Run(ctx, hs, ln, ShutdownTimeout); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusNotFound, "metrics are off")
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}
