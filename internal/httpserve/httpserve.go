// Package httpserve runs an http.Server until its context ends and then shuts it down
// gracefully: the one piece of lifecycle the SCIM API and the admin server share.
package httpserve

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

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
