package push

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// breaker is a target's health: it pauses every request while the target asked us to wait
// (Retry-After on a 429 or 503), and quarantines a target whose requests failed `after` times
// in a row. A quarantined target gets one probe request every `retry`; the first success ends
// the quarantine. Attempts that fail while quarantined do not count towards max_attempts, so a
// target that is down does not turn its whole backlog into dead letters. A target that refuses
// our credentials is quarantined at once (trip): it is the target, not the change, that fails.
type breaker struct {
	after int
	retry time.Duration
	// onChange is called (without the lock) when the quarantine starts or ends.
	onChange func(quarantined bool, since time.Time)

	mu          sync.Mutex
	failures    int
	quarantined bool
	since       time.Time
	nextProbe   time.Time
	probing     bool
	pauseUntil  time.Time
	// cause says why the quarantine is in force ("" when it is not); unauthorized marks one
	// that trip started (credentials refused).
	cause        string
	unauthorized bool
}

// wait blocks until a request may be sent: no pause in force and, when quarantined, this
// request is the probe.
func (b *breaker) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		now := time.Now()
		var d time.Duration
		switch {
		case now.Before(b.pauseUntil):
			d = b.pauseUntil.Sub(now)
		case !b.quarantined:
			b.mu.Unlock()
			return nil
		case !b.probing && !now.Before(b.nextProbe):
			b.probing = true
			b.mu.Unlock()
			return nil
		default:
			d = max(b.nextProbe.Sub(now), 50*time.Millisecond)
		}
		b.mu.Unlock()
		if err := sleep(ctx, min(d, time.Second)); err != nil {
			return err
		}
	}
}

// record notes the outcome of a request: failed is nil when the target answered as a working
// target does, else the failure. retryAfter > 0 pauses every request that long.
func (b *breaker) record(failed error, retryAfter time.Duration) {
	ok := failed == nil
	b.mu.Lock()
	now := time.Now()
	if retryAfter > 0 && now.Add(retryAfter).After(b.pauseUntil) {
		b.pauseUntil = now.Add(retryAfter)
	}
	b.probing = false
	changed := false
	if ok {
		b.failures = 0
		changed = b.quarantined
		b.quarantined, b.cause, b.unauthorized = false, "", false
	} else {
		b.failures++
		if b.quarantined {
			b.nextProbe = now.Add(b.retry)
		} else if b.failures >= b.after {
			b.quarantined, b.since, b.nextProbe, changed = true, now, now.Add(b.retry), true
			b.cause = fmt.Sprintf("%d requests in a row failed, the last with: %v", b.failures, failed)
		}
	}
	q, since := b.quarantined, b.since
	b.mu.Unlock()
	if changed && b.onChange != nil {
		b.onChange(q, since)
	}
}

// trip quarantines the target now, for cause (which names no secret): it refused our
// credentials, so every request would fail until they are fixed. The next probe is one
// quarantine interval away. onChange also hears of a quarantine that was already in force for
// another cause, so the alert says the credentials are the problem now.
func (b *breaker) trip(cause string) {
	b.mu.Lock()
	now := time.Now()
	b.failures++
	b.probing = false
	changed := !b.quarantined || !b.unauthorized
	if !b.quarantined {
		b.quarantined, b.since = true, now
	}
	b.nextProbe = now.Add(b.retry)
	b.cause, b.unauthorized = cause, true
	since := b.since
	b.mu.Unlock()
	if changed && b.onChange != nil {
		b.onChange(true, since)
	}
}

// reason returns why the quarantine is in force ("" when it is not), and whether it is
// because the target refused our credentials.
func (b *breaker) reason() (cause string, unauthorized bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cause, b.unauthorized
}

// release gives up a probe that was cancelled before it got an answer.
func (b *breaker) release() {
	b.mu.Lock()
	b.probing = false
	b.mu.Unlock()
}

// state returns whether the target is quarantined, since when, and the failures in a row.
func (b *breaker) state() (quarantined bool, since time.Time, failures int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.quarantined, b.since, b.failures
}
