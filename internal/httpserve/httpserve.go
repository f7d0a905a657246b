// Package httpserve builds every http.Server of ldapscim (the SCIM API, the admin server with
// its metrics) with the same protections, and runs one until its context ends, then shuts it
// down gracefully.
package httpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// The settings every server shares. A client gets ReadHeaderTimeout to send its headers and
// ReadTimeout for the whole request (slow-loris), and an idle keep-alive connection is closed
// after IdleTimeout.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	IdleTimeout       = 2 * time.Minute
	// DefaultMaxHeaderBytes is the request header limit unless Options raise it.
	DefaultMaxHeaderBytes = 1 << 20
)

// Options is what differs between servers.
type Options struct {
	// WriteTimeout bounds writing a response; 0: none (a request that runs a pass).
	WriteTimeout time.Duration
	// MaxHeaderBytes limits the request headers (and so the URL); below
	// DefaultMaxHeaderBytes counts as DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// BaseContext is the context of every request.
	BaseContext context.Context
}

// New returns a server of handler with the shared settings. The server's own errors (a
// failed TLS handshake, a panic in a handler) go to log at Debug: they are the client's
// doing or already logged by the handler.
func New(handler http.Handler, log *slog.Logger, o Options) *http.Server {
	base := o.BaseContext
	if base == nil {
		base = context.Background()
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    max(DefaultMaxHeaderBytes, o.MaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
}

// Run serves hs on ln until ctx is cancelled, then stops accepting connections and gives
// in-flight requests up to timeout to finish. It returns nil after a clean shutdown, the
// server's error if it stopped on its own, or the shutdown error.
func Run(ctx context.Context, hs *http.Server, ln net.Listener, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
