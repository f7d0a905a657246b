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
	"github.com/ldapscim/ldapscim/hrsync"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/ops"
	"github.com/ldapscim/ldapscim/push"
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

var _ ops.Operations = (*Client)(nil)

// Sync runs a pass in the server and waits for it. A pass that ran and failed returns its
// Summary together with an error carrying the server's message.
func (c *Client) Sync(ctx context.Context, full bool) (ldapsync.Summary, error) {
	var res SyncResult
	err := c.do(ctx, http.MethodPost, "/admin/v1/sync?full="+fmt.Sprint(full), nil, &res)
	return res.Summary, err
}

// Holds lists the held changes.
func (c *Client) Holds(ctx context.Context) ([]cache.Hold, error) {
	var body HoldList
	err := c.do(ctx, http.MethodGet, "/admin/v1/holds", nil, &body)
	return body.Holds, err
}

// ApproveHolds approves held changes: ids nil approves all.
func (c *Client) ApproveHolds(ctx context.Context, ids []string) (cache.Result, error) {
	var res cache.Result
	err := c.do(ctx, http.MethodPost, "/admin/v1/holds/approve", Selection{IDs: ids, All: ids == nil}, &res)
	return res, err
}

// Plan runs a dry-run pass in serve. A failed pass still returns the plan so far with the
// pass's error.
func (c *Client) Plan(ctx context.Context, req ops.PlanRequest) (*ops.Plan, error) {
	p := &ops.Plan{PlanReport: &ldapsync.PlanReport{}}
	err := c.do(ctx, http.MethodPost, "/admin/v1/plan", req, p)
	if err != nil && p.Summary.Pass == "" {
		return nil, err
	}
	return p, err
}

// Explain is serve's explanation of the user with that id or userName.
func (c *Client) Explain(ctx context.Context, user string) (*ops.Explanation, error) {
	var ex ops.Explanation
	if err := c.do(ctx, http.MethodGet, "/admin/v1/explain/"+url.PathEscape(user), nil, &ex); err != nil {
		return nil, err
	}
	return &ex, nil
}

// Audit returns the sync and push history of the resource with that id.
func (c *Client) Audit(ctx context.Context, id string) (*ops.AuditHistory, error) {
	var h ops.AuditHistory
	if err := c.do(ctx, http.MethodGet, "/admin/v1/audit/"+url.PathEscape(id), nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// DeadLetters lists target's dead letters.
func (c *Client) DeadLetters(ctx context.Context, target string) ([]cache.DeadLetter, error) {
	var body DeadLetterList
	err := c.do(ctx, http.MethodGet, "/admin/v1/targets/"+url.PathEscape(target)+"/deadletters", nil, &body)
	return body.DeadLetters, err
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

// TargetsStatus is the running push workers' status.
func (c *Client) TargetsStatus(ctx context.Context) (*ops.TargetsStatus, error) {
	var ts ops.TargetsStatus
	if err := c.do(ctx, http.MethodGet, "/admin/v1/targets", nil, &ts); err != nil {
		return nil, err
	}
	return &ts, nil
}

// Reconcile asks serve to compare a push target with its cache (req.Apply: and correct it).
func (c *Client) Reconcile(ctx context.Context, req ops.ReconcileRequest) (*push.ReconcileReport, error) {
	var rep push.ReconcileReport
	err := c.do(ctx, http.MethodPost, "/admin/v1/targets/"+url.PathEscape(req.Target)+"/reconcile?apply="+fmt.Sprint(req.Apply), nil, &rep)
	if err != nil {
		return nil, err
	}
	return &rep, nil
}

// Import sends file to serve as the current content of the [[csv]] source.
func (c *Client) Import(ctx context.Context, source string, file io.ReadSeeker, dryRun bool) (*hrsync.Summary, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		c.base+importPath+url.PathEscape(source)+"?dry_run="+fmt.Sprint(dryRun), file)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "text/csv")
	var sum hrsync.Summary
	if err := c.send(req, &sum); err != nil {
		return nil, err
	}
	return &sum, nil
}

// answerError is the one translation of an error answer back into the error the operation
// gave in serve (the inverse of Server.opError): a refusal becomes its *ops.Error, a failed
// pass (502) its message; anything else is a *StatusError.
func answerError(status int, msg string) error {
	switch status {
	case http.StatusBadRequest:
		return &ops.Error{Code: ops.Invalid, Msg: msg}
	case http.StatusNotFound:
		return &ops.Error{Code: ops.NotFound, Msg: msg}
	case http.StatusNotImplemented:
		return &ops.Error{Code: ops.Unavailable, Msg: msg}
	case http.StatusBadGateway:
		return errors.New(msg)
	}
	return &StatusError{Status: status, Message: msg}
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
	return c.send(req, out)
}

// send sends req with the token and decodes a JSON answer into out (also for a 502: a failed
// pass still has a summary).
func (c *Client) send(req *http.Request, out any) error {
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
		return answerError(resp.StatusCode, eb.Error)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API at %s: decoding the answer: %w", c.base, err)
		}
	}
	return nil
}
