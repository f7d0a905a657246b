package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Browser defences. The admin API changes things (approves held deletions, runs passes) and,
// with allow_loopback, trusts any local client; a web page the admin has open is a local
// client too. So every protected request must also pass these checks:
//
//   - Host: a request let in because it comes from loopback without the token must name this
//     server: localhost, a loopback address, the [admin] listen host, or the address the
//     connection came in on. Any other Host (a DNS-rebinding page's own name) answers 421
//     Misdirected Request. A request with the admin token may use any Host (a rebinding page
//     cannot send the token: the browser keeps Basic credentials per origin).
//   - Cross-site: a request whose Origin is present and not this server's (scheme aside, host
//     and port equal to Host), or whose Sec-Fetch-Site is present and neither "same-origin" nor
//     "none" (typed in, bookmarked), answers 403, token or not: the browser may attach Basic
//     credentials cached for this server to a cross-site form post.
//   - Bodies: a request with a body or a Content-Type other than GET/HEAD must say
//     Content-Type: application/json (415 otherwise; HTML forms cannot send it), and bodies
//     are decoded strictly (decodeJSON: no unknown fields, nothing after the value; 400).
//
// Every answer also carries X-Content-Type-Options: nosniff, X-Frame-Options: DENY and
// Content-Security-Policy: frame-ancestors 'none' (the status page a stricter one).

// securityHeaders sets the headers every answer carries.
func securityHeaders(h http.Header) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
}

// crossSite returns why a request looks like it comes from another site's page, or "".
func crossSite(r *http.Request) string {
	switch sfs := r.Header.Get("Sec-Fetch-Site"); sfs {
	case "", "same-origin", "none":
	default:
		return "cross-site request refused (Sec-Fetch-Site: " + sfs + ")"
	}
	origin := r.Header.Values("Origin")
	if len(origin) == 0 {
		return ""
	}
	u, err := url.Parse(origin[0])
	if len(origin) > 1 || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		!strings.EqualFold(u.Host, r.Host) {
		return "cross-origin request refused: Origin is not this server"
	}
	return ""
}

// importPath is the one route whose body is not JSON but an HR file, declared text/csv: a type
// no HTML form can send and no page can send across origins without a preflight, which this
// server never answers, so it is as safe as JSON.
const importPath = "/admin/v1/import/"

// badContentType returns the status and message for a request whose body is not declared
// JSON (text/csv for an import), or 0.
func badContentType(r *http.Request) (int, string) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return 0, ""
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" && r.ContentLength == 0 {
		return 0, ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if strings.HasPrefix(r.URL.Path, importPath) {
		if err != nil || mt != "text/csv" {
			return http.StatusUnsupportedMediaType, "want Content-Type: text/csv"
		}
		return 0, ""
	}
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, "want Content-Type: application/json"
	}
	return 0, ""
}

// localHost reports whether r's Host names this server for a loopback client: empty (HTTP/1.0,
// not a browser), localhost, a loopback address, the [admin] listen host, or the local address
// of the connection.
func (s *Server) localHost(r *http.Request) bool {
	if r.Host == "" {
		return true
	}
	h := hostOnly(r.Host)
	if h == "localhost" {
		return true
	}
	if ip := net.ParseIP(h); ip != nil {
		if ip.IsLoopback() {
			return true
		}
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
			if tcp, ok := la.(*net.TCPAddr); ok && tcp.IP.Equal(ip) {
				return true
			}
		}
	}
	if lh, _, err := net.SplitHostPort(s.cfg.Listen); err == nil && lh != "" {
		lh = hostOnly(lh)
		if ip := net.ParseIP(lh); (ip == nil || !ip.IsUnspecified()) && lh == h {
			return true
		}
	}
	return false
}

// hostOnly is a Host header's host without port and brackets, lower-case, without a final dot.
func hostOnly(hostport string) string {
	h := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	return h
}

// misdirected answers a loopback request without the token whose Host is not this server.
func misdirected(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusMisdirectedRequest, fmt.Sprintf(
		"Host %q does not name this admin server: use localhost, 127.0.0.1, [::1] or the [admin] listen host, or send the admin token",
		r.Host))
}

// decodeJSON decodes r's body into v strictly: at most limit bytes, no unknown fields, one
// JSON value and nothing after it. An empty body is no error when emptyOK (v keeps its zero
// value).
func decodeJSON(r *http.Request, v any, limit int64, emptyOK bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			if emptyOK {
				return nil
			}
			return errors.New("empty body")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
