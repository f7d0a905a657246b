package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// HTTPError is a target's answer other than 2xx, decoded from its SCIM error body when it has
// one. It never holds request headers, so no credential can end up in it.
type HTTPError struct {
	Method, Path string
	Status       int
	ScimType     string
	Detail       string
	Body         string        // the raw body, truncated to maxErrorBody
	RetryAfter   time.Duration // from Retry-After or X-Rate-Limit-Reset; 0 when absent
}

const maxErrorBody = 4 << 10

func (e *HTTPError) Error() string {
	msg := fmt.Sprintf("%s %s: HTTP %d", e.Method, e.Path, e.Status)
	if e.ScimType != "" {
		msg += " " + e.ScimType
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Permanent reports whether retrying the same request cannot help: a 4xx other than 404, 409,
// 408 and 429, and other than 401 and 403, which refuse our credentials, not the change (the
// target is quarantined instead, see client.account).
func (e *HTTPError) Permanent() bool {
	switch e.Status {
	case http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests, http.StatusRequestTimeout:
		return false
	}
	return e.Status >= 400 && e.Status < 500 && !e.unauthorized()
}

// unauthorized reports whether the target refused our credentials.
func (e *HTTPError) unauthorized() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// transportError is a request that got no answer (connection refused or dropped, timeout).
// The target may or may not have applied it.
type transportError struct {
	method, path string
	err          error
}

func (e *transportError) Error() string { return fmt.Sprintf("%s %s: %v", e.method, e.path, e.err) }
func (e *transportError) Unwrap() error { return e.err }

// client sends requests to one target: rate limited, with the breaker's pauses honoured,
// authenticated, and with errors decoded.
type client struct {
	// observer, if set, sees every request: its HTTP status (0: no answer) and latency.
	observer func(status int, d time.Duration)
	base     string
	http     *http.Client
	limiter  *rate.Limiter
	breaker  *breaker
	auth     authenticator
	header   http.Header // extra headers on every request
	// maySend, if set, is asked right before each request goes out; false: ErrMayNotSend.
	// A request whose context is marked read-only (readOnly) is not fenced: it changes nothing.
	maySend func() bool
	// sent, if set, counts the requests that went out.
	sent *atomic.Int64
}

func newHTTPClient(timeout time.Duration, conc int, insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conc + 2
	tr.MaxConnsPerHost = 0
	if insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // opt-in for test targets
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

func newLimiter(rps float64, burst int) *rate.Limiter {
	if rps <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(rps), max(1, burst))
}

// response is a 2xx answer.
type response struct {
	status int
	body   []byte
	header http.Header
}

// observe reports one request to the worker's observer, if any.
func (c *client) observe(status int, d time.Duration) {
	if c.observer != nil {
		c.observer(status, d)
	}
}

// do sends one request (body marshalled as JSON when non-nil) and returns a 2xx response or an
// *HTTPError / *transportError / *credentialError.
func (c *client) do(ctx context.Context, method, path string, body any) (*response, error) {
	if err := c.breaker.wait(ctx); err != nil {
		return nil, err
	}
	resp, err := c.send(ctx, method, path, body)
	c.account(ctx, method, path, err)
	return resp, err
}

// send makes the request. When the target refuses the credentials (401 or 403) it renews them
// once (a new OAuth2 token, a secret file read again) and, if they changed, sends it once more.
func (c *client) send(ctx context.Context, method, path string, body any) (*response, error) {
	var payload []byte
	if raw, ok := body.(rawJSON); ok {
		payload = raw
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		payload = b
	}
	resp, sent, err := c.roundTrip(ctx, method, path, payload, body != nil)
	var he *HTTPError
	if c.auth == nil || !errors.As(err, &he) || !he.unauthorized() {
		return resp, err
	}
	retry, rerr := c.auth.renew(ctx, sent)
	if rerr != nil {
		return nil, rerr
	}
	if !retry {
		return nil, err
	}
	resp, _, err = c.roundTrip(ctx, method, path, payload, body != nil)
	return resp, err
}

// roundTrip waits for the rate limiter and sends one request. It returns a 2xx response or an
// *HTTPError / *transportError / *credentialError / ctx error, and the Authorization value it
// sent.
func (c *client) roundTrip(ctx context.Context, method, path string, payload []byte, hasBody bool) (*response, string, error) {
	if err := c.limiter.Wait(ctx); err != nil {
		return nil, "", err
	}
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	if hasBody {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	var authz string
	if c.auth != nil {
		if authz, err = c.auth.header(ctx); err != nil {
			return nil, "", err
		}
		req.Header.Set("Authorization", authz)
	}
	// The last check before the request leaves: a leader that lost its lease while this
	// request waited (the limiter, a pause of the whole process) must not send it.
	if c.maySend != nil && !(method == http.MethodGet && isReadOnly(ctx)) && !c.maySend() {
		return nil, authz, ErrMayNotSend
	}
	if c.sent != nil {
		c.sent.Add(1)
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, authz, ctx.Err()
		}
		c.observe(0, time.Since(sent))
		return nil, authz, &transportError{method, shortPath(path), scrub(err)}
	}
	c.observe(resp.StatusCode, time.Since(sent))
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, authz, &transportError{method, shortPath(path), scrub(err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return &response{status: resp.StatusCode, body: data, header: resp.Header}, authz, nil
	}
	return nil, authz, decodeError(method, shortPath(path), resp, data)
}

// account tells the breaker how a request ended. Refused credentials quarantine the target at
// once: every other request would be refused too, and its changes must stay queued rather than
// become dead letters. A token endpoint that cannot be reached counts as a failed request.
func (c *client) account(ctx context.Context, method, path string, err error) {
	var (
		he *HTTPError
		ce *credentialError
		te *transportError
	)
	switch {
	case err == nil:
		c.breaker.record(nil, 0)
	case ctx.Err() != nil:
		c.breaker.release()
	case errors.As(err, &ce) && ce.refused:
		c.breaker.trip(ce.msg)
	case errors.As(err, &he) && he.unauthorized():
		c.breaker.trip(fmt.Sprintf("the target refused the credentials: HTTP %d to %s %s", he.Status, method, shortPath(path)))
	case errors.As(err, &he):
		// A 4xx answer other than 429 means the target is up; 429 and 5xx count as failures.
		if he.Status != 429 && he.Status < 500 {
			err = nil
		}
		c.breaker.record(err, he.RetryAfter)
	case errors.As(err, &ce), errors.As(err, &te):
		c.breaker.record(err, 0)
	default:
		c.breaker.release() // no request was sent (an unencodable body)
	}
}

func decodeError(method, path string, resp *http.Response, data []byte) *HTTPError {
	he := &HTTPError{Method: method, Path: path, Status: resp.StatusCode}
	if len(data) > maxErrorBody {
		data = data[:maxErrorBody]
	}
	he.Body = string(data)
	var se struct {
		ScimType string `json:"scimType"`
		Detail   string `json:"detail"`
	}
	if json.Unmarshal(data, &se) == nil {
		he.ScimType, he.Detail = se.ScimType, se.Detail
	}
	he.RetryAfter = retryAfter(resp.Header, time.Now())
	return he
}

// retryAfter reads Retry-After (seconds or an HTTP date) or Okta's X-Rate-Limit-Reset (unix
// seconds when the window resets).
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if s, err := strconv.Atoi(v); err == nil && s >= 0 {
			return time.Duration(s) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(0, t.Sub(now))
		}
	}
	if v := strings.TrimSpace(h.Get("X-Rate-Limit-Reset")); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil {
			return max(0, time.Unix(s, 0).Sub(now))
		}
	}
	return 0
}

// shortPath drops the query, which may carry filter values with personal data.
func shortPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i] + "?…"
	}
	return p
}

// scrub removes the URL (with its query) from net/http errors.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ne net.Error
		if errors.As(ue.Err, &ne) && ne.Timeout() {
			return errors.New("timeout")
		}
		return ue.Err
	}
	return err
}

func truncate(s string) string {
	if len(s) > maxErrorBody {
		return s[:maxErrorBody]
	}
	return s
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
