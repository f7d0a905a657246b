package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// protect guards the status page, the metrics and the admin API (Config documents the rules,
// guard.go the browser defences it applies first).
// The token comes as `Authorization: Bearer <token>`, or as the password of HTTP Basic auth so
// a browser can open /status (any user name). It is compared as a SHA-256 in constant time
// and never logged.
func (s *Server) protect(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if msg := crossSite(r); msg != "" {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		if status, msg := badContentType(r); status != 0 {
			writeError(w, status, msg)
			return
		}
		if s.cfg.AllowLoopback && isLoopback(r.RemoteAddr) {
			if s.localHost(r) {
				h(w, r)
				return
			}
			if _, ok := token(r); !ok {
				misdirected(w, r)
				return
			}
			// A foreign Host with a token: the token decides, as for a remote client.
		}
		if !s.cfg.hasTok {
			writeError(w, http.StatusForbidden, "only loopback clients may use this: no [admin] token is configured")
			return
		}
		tok, ok := token(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="ldapscim admin", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "the admin token is required (Authorization: Bearer TOKEN)")
			return
		}
		sum := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(sum[:], s.cfg.hash[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="ldapscim admin", charset="UTF-8"`)
			writeError(w, http.StatusUnauthorized, "the admin token is not valid")
			return
		}
		h(w, r)
	}
}

// token returns the bearer token or the Basic auth password.
func token(r *http.Request) (string, bool) {
	if _, pw, ok := r.BasicAuth(); ok && pw != "" {
		return pw, true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// isLoopback reports whether a request's remote address is 127.0.0.0/8 or ::1.
func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
