package push

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
)

// RetryPolicy is how a target or a webhook retries what fails: how many attempts a change gets,
// the backoff between them, and when the breaker quarantines the endpoint. [[targets]] and
// [[webhooks]] embed it, so its keys are keys of each entry itself (max_attempts, backoff_base,
// backoff_max, quarantine_after, quarantine_retry); both sections have the same defaults.
type RetryPolicy struct {
	// MaxAttempts is how many times a change is tried before it becomes a dead letter.
	MaxAttempts int `toml:"max_attempts"`
	// BackoffBase is the wait before the first retry; it doubles up to BackoffMax.
	BackoffBase confval.Duration `toml:"backoff_base"`
	BackoffMax  confval.Duration `toml:"backoff_max"`
	// QuarantineAfter is how many requests in a row must fail before the endpoint is
	// quarantined; QuarantineRetry is the interval of its probe requests meanwhile.
	QuarantineAfter int              `toml:"quarantine_after"`
	QuarantineRetry confval.Duration `toml:"quarantine_retry"`
}

// DefaultRetryPolicy returns the policy of a target or webhook that sets none of its keys.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		MaxAttempts:     8,
		BackoffBase:     confval.Duration(time.Second),
		BackoffMax:      confval.Duration(5 * time.Minute),
		QuarantineAfter: 20,
		QuarantineRetry: confval.Duration(5 * time.Minute),
	}
}

// defaults fills in the keys left at zero.
func (p *RetryPolicy) defaults() {
	d := DefaultRetryPolicy()
	defInt(&p.MaxAttempts, d.MaxAttempts)
	defInt(&p.QuarantineAfter, d.QuarantineAfter)
	dur(&p.BackoffBase, d.BackoffBase.D())
	dur(&p.BackoffMax, d.BackoffMax.D())
	dur(&p.QuarantineRetry, d.QuarantineRetry.D())
}

// validate returns the problems of a policy whose defaults are filled in, each starting with
// where (the entry's key path).
func (p RetryPolicy) validate(where string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+"."+format, args...)) }
	if p.MaxAttempts < 1 {
		add("max_attempts: must be at least 1")
	}
	if p.BackoffBase < 0 {
		add("backoff_base: must not be negative")
	}
	if p.BackoffMax < 0 {
		add("backoff_max: must not be negative")
	}
	if p.QuarantineAfter < 1 {
		add("quarantine_after: must be at least 1")
	}
	if p.QuarantineRetry < 0 {
		add("quarantine_retry: must not be negative")
	}
	return errs
}

// delay returns the wait before retry n (n >= 1 is the first retry): exponential from
// BackoffBase, capped at BackoffMax, with jitter (between half and all of it), and never
// shorter than the endpoint's Retry-After.
func (p RetryPolicy) delay(n int, retryAfter time.Duration) time.Duration {
	maxWait := p.BackoffMax.D()
	d := p.BackoffBase.D() << min(max(n, 1)-1, 20)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, retryAfter)
}

// breaker returns a breaker that quarantines after QuarantineAfter failures in a row and then
// probes every QuarantineRetry; onChange (may be nil) hears of quarantines starting and ending.
func (p RetryPolicy) breaker(onChange func(quarantined bool, since time.Time)) *breaker {
	return &breaker{after: p.QuarantineAfter, retry: p.QuarantineRetry.D(), onChange: onChange}
}
