package push

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// task is the delivery of one resource to one target: its attempts, their audit records and
// the retry policy. fn is called again on each retry and must start from the durable state.
type task struct {
	id       string
	typ      scim.ResourceType
	seq      uint64
	op       string // what the task is about, for the dead letter
	attempts int
	audit    []cache.PushAudit
	// ambiguous is set when a request got no answer: the target may have applied it, so the
	// next attempt must look before it writes.
	ambiguous bool
}

// retrier runs tasks under a target's or webhook's RetryPolicy.
type retrier struct {
	policy  RetryPolicy
	breaker *breaker
	onDead  func(dl *cache.DeadLetter)
	record  func(ctx context.Context, out cache.PushOutcome) error
	// perEvent keys dead letters by journal record (webhooks), not by resource (targets).
	perEvent bool
}

// errStopTask ends a task without a dead letter (nothing to do).
var errStopTask = errors.New("nothing to do")

// run calls fn until it succeeds, fails permanently or runs out of attempts, then records the
// outcome (delivered: fn's outcome; failed: a dead letter) with every attempt's audit record.
// It returns only ctx errors and store errors: a failed delivery is a dead letter, not an error.
func (rp *retrier) run(ctx context.Context, tk *task, fn func(ctx context.Context, tk *task) (cache.PushOutcome, error)) error {
	for {
		out, err := fn(ctx, tk)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrMayNotSend) {
			return err // the batch stops; the change stays queued behind the cursor
		}
		if err == nil || errors.Is(err, errStopTask) {
			if err != nil && len(tk.audit) == 0 {
				return nil
			}
			out.ID = tk.id
			out.Audit = tk.audit
			out.EventSeq = rp.eventSeq(tk)
			if err := rp.record(ctx, out); err != nil {
				return err
			}
			tallyOf(ctx).count(tk, false)
			return nil
		}
		var he *HTTPError
		permanent := errors.As(err, &he) && he.Permanent()
		if permanent || tk.attempts >= rp.policy.MaxAttempts {
			return rp.deadLetter(ctx, tk, err)
		}
		wait := rp.policy.delay(tk.attempts, retryAfterOf(err))
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func retryAfterOf(err error) time.Duration {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.RetryAfter
	}
	return 0
}

func (rp *retrier) deadLetter(ctx context.Context, tk *task, err error) error {
	dl := &cache.DeadLetter{ID: tk.id, Type: tk.typ, Seq: tk.seq, Op: tk.op, Error: err.Error(), Attempts: tk.attempts}
	var he *HTTPError
	if errors.As(err, &he) {
		dl.Status, dl.Body = he.Status, he.Body
	}
	if rp.onDead != nil {
		rp.onDead(dl)
	}
	if err := rp.record(ctx, cache.PushOutcome{ID: tk.id, DeadLetter: dl, Audit: tk.audit, EventSeq: rp.eventSeq(tk)}); err != nil {
		return err
	}
	tallyOf(ctx).count(tk, true)
	return nil
}

// tally counts what the tasks of one batch did, for the batch's log line (Target.PushOnce).
// It travels in the batch's context, so that a dead-letter replay running at the same time
// counts apart. Safe for concurrent use; a nil *tally counts nothing.
type tally struct {
	created, updated, deleted, deactivated, failed atomic.Int64
}

type tallyKey struct{}

func withTally(ctx context.Context, tl *tally) context.Context {
	return context.WithValue(ctx, tallyKey{}, tl)
}

func tallyOf(ctx context.Context) *tally {
	tl, _ := ctx.Value(tallyKey{}).(*tally)
	return tl
}

// count adds a finished task: failed when it was dead-lettered, else by the requests that
// changed the target (a task that only looked, or found nothing to change, is not counted).
func (tl *tally) count(tk *task, dead bool) {
	if tl == nil {
		return
	}
	if dead {
		tl.failed.Add(1)
		return
	}
	var posted, deleted, wrote bool
	for _, a := range tk.audit {
		if a.Error != "" || a.Method == "" || a.Method == "GET" {
			continue
		}
		wrote = true
		posted = posted || a.Method == "POST"
		deleted = deleted || a.Method == "DELETE"
	}
	switch {
	case !wrote:
	case deleted:
		tl.deleted.Add(1)
	case tk.op == "deactivate":
		tl.deactivated.Add(1)
	case posted:
		tl.created.Add(1)
	default:
		tl.updated.Add(1)
	}
}

// sent is how many resources the batch sent a change of, failed ones included.
func (tl *tally) sent() int64 {
	return tl.created.Load() + tl.updated.Load() + tl.deleted.Load() + tl.deactivated.Load() + tl.failed.Load()
}

func (rp *retrier) eventSeq(tk *task) uint64 {
	if rp.perEvent {
		return tk.seq
	}
	return 0
}

// call sends one request for tk through c and records it in tk's audit trail. A failure counts
// as an attempt unless the target is quarantined or refused or lacks credentials (then it is the
// target, not the change, that is failing).
func (tk *task) call(ctx context.Context, c *client, op, method, path string, body any) (*response, error) {
	start := time.Now()
	resp, err := c.do(ctx, method, path, body)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, ErrMayNotSend) {
		return nil, err // not sent: no attempt, nothing to audit
	}
	a := cache.PushAudit{Time: start, Seq: tk.seq, Op: op, Method: method, Latency: time.Since(start)}
	if resp != nil {
		a.Status = resp.status
	}
	if err != nil {
		a.Error = err.Error()
		var he *HTTPError
		var te *transportError
		switch {
		case errors.As(err, &he):
			a.Status = he.Status
			tk.ambiguous = tk.ambiguous || he.Status >= 500
		case errors.As(err, &te):
			tk.ambiguous = true
		}
		if q, _, _ := c.breaker.state(); !q && !targetLevel(err) {
			tk.attempts++
		}
	}
	tk.audit = append(tk.audit, a)
	return resp, err
}

// pool runs jobs with at most n at a time and returns the first error (after every started job
// has returned).
func pool(ctx context.Context, n int, jobs []func(ctx context.Context) error) error {
	if len(jobs) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	next := make(chan func(context.Context) error)
	for range min(n, len(jobs)) {
		wg.Go(func() {
			for job := range next {
				if err := job(ctx); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- j
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func wrapStore(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("push: %s: %w", what, err)
}
