package scimapi

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/ldapscim/ldapscim/internal/httpserve"
)

// ShutdownTimeout is how long Serve lets in-flight requests finish after ctx is cancelled.
const ShutdownTimeout = 10 * time.Second

// Listen opens the configured listen address, so that "address in use" is reported before
// anything else starts.
func (s *Server) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("scim api: listen on %s: %w", s.cfg.Listen, err)
	}
	return ln, nil
}

// Serve serves the API on ln (HTTPS when [scim] tls_cert_file/tls_key_file are set) until ctx
// is cancelled, then shuts down gracefully: no new connections, in-flight requests get up to
// ShutdownTimeout. It returns nil after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := httpserve.New(s, s.log, httpserve.Options{
		WriteTimeout:   5 * time.Minute, // a 1000-resource page over a slow link
		MaxHeaderBytes: 2 * s.cfg.MaxURLBytes,
		BaseContext:    context.WithoutCancel(ctx),
	})
	if s.cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("scim api: loading TLS certificate: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln = tls.NewListener(ln, hs.TLSConfig)
	}
	s.log.Info("SCIM API listening", "addr", ln.Addr().String(), "base_url", s.base, "tls", s.cfg.TLSCertFile != "")
	if err := httpserve.Run(ctx, hs, ln, ShutdownTimeout); err != nil {
		return fmt.Errorf("scim api: %w", err)
	}
	s.log.Info("SCIM API stopped")
	return nil
}
