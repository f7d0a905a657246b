package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
// 408 and 429.
func (e *HTTPError) Permanent() bool {
	switch e.Status {
	case http.StatusNotFound, http.StatusConflict, http.StatusTooManyRequests, http.StatusRequestTimeout:
		return false
	}
	return e.Status >= 400 && e.Status < 500
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
}

type authenticator interface {
	authorize(ctx context.Context, req *http.Request) error
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

// observe reports one request to the Pusher's observer, if any.
func (c *client) observe(status int, d time.Duration) {
	if c.observer != nil {
		c.observer(status, d)
	}
}

// do sends one request (body marshalled as JSON when non-nil) and returns a 2xx response or an
// *HTTPError / *transportError.
func (c *client) do(ctx context.Context, method, path string, body any) (*response, error) {
	if err := c.breaker.wait(ctx); err != nil {
		return nil, err
	}
	if err := c.limiter.Wait(ctx); err != nil {
		c.breaker.release()
		return nil, err
	}
	var rd io.Reader
	if raw, ok := body.(rawJSON); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.breaker.release()
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.breaker.release()
		return nil, err
	}
	req.Header.Set("Accept", "application/scim+json, application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	if c.auth != nil {
		if err := c.auth.authorize(ctx, req); err != nil {
			if ctx.Err() != nil {
				c.breaker.release()
				return nil, ctx.Err()
			}
			c.breaker.record(false, 0) // no token, no request: the target is unusable for now
			return nil, err
		}
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			c.breaker.release()
			return nil, ctx.Err()
		}
		c.observe(0, time.Since(sent))
		c.breaker.record(false, 0)
		return nil, &transportError{method, shortPath(path), scrub(err)}
	}
	c.observe(resp.StatusCode, time.Since(sent))
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		c.breaker.record(false, 0)
		return nil, &transportError{method, shortPath(path), scrub(err)}
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		c.breaker.record(true, 0)
		return &response{status: resp.StatusCode, body: data, header: resp.Header}, nil
	}
	he := decodeError(method, shortPath(path), resp, data)
	// A 4xx answer other than 429 means the target is up; 429 and 5xx count as failures.
	c.breaker.record(!(he.Status == 429 || he.Status >= 500), he.RetryAfter)
	return nil, he
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

// bearer authenticates with a static token.
type bearer string

func (b bearer) authorize(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+string(b))
	return nil
}

// clientCredentials gets and caches an OAuth2 access token (RFC 6749 §4.4).
type clientCredentials struct {
	tokenURL, id, secret string
	scopes               []string
	http                 *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

func (c *clientCredentials) authorize(ctx context.Context, req *http.Request) error {
	tok, err := c.get(ctx)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

func (c *clientCredentials) get(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(c.scopes) > 0 {
		form.Set("scope", strings.Join(c.scopes, " "))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := c.http.Do(req)
	if err != nil {
		return "", &transportError{"POST", "token_url", scrub(err)}
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &tr) != nil || tr.AccessToken == "" {
		// The body of a failed token request names the error; it holds no secret of ours.
		return "", &HTTPError{Method: "POST", Path: "token_url", Status: resp.StatusCode, Detail: "OAuth2 token request failed", Body: truncate(string(data))}
	}
	c.token = tr.AccessToken
	life := time.Duration(tr.ExpiresIn) * time.Second
	if life <= 0 {
		life = time.Hour
	}
	// Renew a minute early (or at 90% for short-lived tokens).
	c.expires = time.Now().Add(life - min(time.Minute, life/10))
	return c.token, nil
}

func truncate(s string) string {
	if len(s) > maxErrorBody {
		return s[:maxErrorBody]
	}
	return s
}

// backoff returns the wait before attempt n (n >= 1 is the first retry): exponential from base,
// capped at max, with full jitter, and never shorter than the target's Retry-After.
func backoff(n int, base, maxWait, retryAfter time.Duration) time.Duration {
	d := base << min(n-1, 20)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
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
