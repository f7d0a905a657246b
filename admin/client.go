package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/ldapscim/ldapscim/cache"
)

// Client calls a running serve's admin API. Create it with NewClient.
type Client struct {
	base  string // http://host:port
	token string
	http  *http.Client
}

// NewClient returns a client for the admin server at listen (host:port as in [admin] listen;
// an unspecified host such as 0.0.0.0 or [::] is reached on loopback). token may be empty.
func NewClient(listen, token string) *Client {
	host, port, err := net.SplitHostPort(listen)
	if err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host = "127.0.0.1"
		}
		listen = net.JoinHostPort(host, port)
	}
	return &Client{base: "http://" + listen, token: token, http: &http.Client{}}
}

// ErrNotRunning means nothing answers at the admin address: no serve runs there.
var ErrNotRunning = errors.New("admin: no server answers")

// StatusError is a non-2xx answer, with the server's message.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// Info asks the server which cache it runs on. It gives up after 2 seconds, so a CLI falls
// back quickly when the address is something else. Errors: ErrNotRunning (connection refused
// or no answer), *StatusError.
func (c *Client) Info(ctx context.Context) (Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var inf Info
	err := c.do(ctx, http.MethodGet, "/admin/v1/info", nil, &inf)
	var se *StatusError
	if err != nil && !errors.As(err, &se) {
		return inf, fmt.Errorf("%w at %s: %v", ErrNotRunning, c.base, err)
	}
	return inf, err
}

// Sync runs a pass in the server and waits for it. A pass that ran and failed returns its
// Summary together with an error carrying the server's message.
func (c *Client) Sync(ctx context.Context, full bool) (SyncResult, error) {
	var res SyncResult
	err := c.do(ctx, http.MethodPost, "/admin/v1/sync?full="+fmt.Sprint(full), nil, &res)
	var se *StatusError
	if errors.As(err, &se) && se.Status == http.StatusBadGateway {
		return res, errors.New(res.Error)
	}
	return res, err
}

// Holds lists the held deletions.
func (c *Client) Holds(ctx context.Context) ([]cache.Hold, error) {
	var body struct {
		Holds []cache.Hold `json:"holds"`
	}
	err := c.do(ctx, http.MethodGet, "/admin/v1/holds", nil, &body)
	return body.Holds, err
}

// ApproveHolds approves held deletions: ids nil approves all.
func (c *Client) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	var res cache.Result
	err := c.do(ctx, http.MethodPost, "/admin/v1/holds/approve", Selection{IDs: ids, All: ids == nil}, &res)
	return res, err
}

// DeadLetters lists target's dead letters.
func (c *Client) DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error) {
	var body struct {
		DeadLetters []cache.DeadLetter `json:"deadLetters"`
	}
	err := c.do(ctx, http.MethodGet, "/admin/v1/targets/"+url.PathEscape(target)+"/deadletters", nil, &body)
	return body.DeadLetters, err
}

// Audit returns the sync and push history of the resource with that id.
func (c *Client) Audit(ctx context.Context, id string) (AuditHistory, error) {
	var h AuditHistory
	err := c.do(ctx, http.MethodGet, "/admin/v1/audit/"+url.PathEscape(id), nil, &h)
	return h, err
}

// Plan runs a dry-run pass in serve and decodes its report into out. A failed pass still
// decodes the report so far and returns the pass's error.
func (c *Client) Plan(ctx context.Context, full bool, target string, out any) error {
	return c.do(ctx, http.MethodPost, "/admin/v1/plan", PlanRequest{Full: full, Target: target}, out)
}

// Explain decodes serve's explanation of the user with that id or userName into out.
func (c *Client) Explain(ctx context.Context, user string, out any) error {
	return c.do(ctx, http.MethodGet, "/admin/v1/explain/"+url.PathEscape(user), nil, out)
}

// ReplayDeadLetters asks push to deliver target's dead letters again (ids nil: all).
func (c *Client) ReplayDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	var res struct{ Replayed int }
	err := c.do(ctx, http.MethodPost, "/admin/v1/targets/"+url.PathEscape(target)+"/deadletters/replay", Selection{IDs: ids, All: ids == nil}, &res)
	return res.Replayed, err
}

// SkipDeadLetters drops target's dead letters (ids nil: all).
func (c *Client) SkipDeadLetters(ctx context.Context, target string, ids []string) (int, error) {
	var res struct{ Skipped int }
	err := c.do(ctx, http.MethodPost, "/admin/v1/targets/"+url.PathEscape(target)+"/deadletters/skip", Selection{IDs: ids, All: ids == nil}, &res)
	return res.Skipped, err
}

// do sends one request and decodes a JSON answer into out; it decodes out also for a 502 (a
// failed pass still has a summary).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		if resp.StatusCode == http.StatusBadGateway && out != nil {
			_ = json.Unmarshal(data, out)
		}
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Error == "" {
			eb.Error = string(bytes.TrimSpace(data))
			if len(eb.Error) > 200 {
				eb.Error = eb.Error[:200]
			}
		}
		return &StatusError{Status: resp.StatusCode, Message: eb.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API at %s: decoding the answer: %w", c.base, err)
		}
	}
	return nil
}
