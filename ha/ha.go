// Package ha elects, among the replicas of ldapscim serve, the one that pushes to targets and
// webhooks. Every replica syncs and serves reads on its own; only the leader of an etcd
// election (go.etcd.io/etcd/client/v3/concurrency) runs the push workers.
//
// The leader holds an etcd lease of lease_ttl. It renews the lease several times per TTL and
// gives up leading once half the TTL has passed without a successful renewal, so it stops
// pushing before its lease can expire and another replica can win: two replicas never push at
// once for longer than an HTTP request already on its way.
package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Role is a replica's part in the election.
type Role string

// The roles; standalone is a serve without [ha], staging one with [ha] and [safety] staging =
// true, which does not campaign.
const (
	Leader     Role = "leader"
	Follower   Role = "follower"
	Standalone Role = "standalone"
	Staging    Role = "staging"
)

// Options tune an Elector; the zero value is usable.
type Options struct {
	Log *slog.Logger
	// OnRole is called (from the elector's goroutine) each time this replica starts or stops
	// leading; metrics use it.
	OnRole func(leader bool)
}

// Elector campaigns for the leadership. Its status methods are safe for concurrent use.
type Elector struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	cli  *clientv3.Client
	ttl  time.Duration

	mu          sync.Mutex
	leading     bool
	leader      string    // the leader's node name as last observed ("" unknown)
	leaderSince time.Time // when this replica saw the current leader take over
	lastRenew   time.Time // start of the last successful renewal of our lease
}

// Status is what /status and /readyz show of the election.
type Status struct {
	Role   Role   `json:"role"`
	Node   string `json:"node,omitempty"`
	Leader string `json:"leader,omitempty"`
	// LeaseAge is how long the current leader has held its lease, as seen by this replica.
	LeaseAge time.Duration `json:"-"`
}

// New connects to etcd (lazily: it fails only on a bad configuration). cfg must have been
// resolved (Config.Resolve) and validated. Close releases the client.
func New(cfg Config, opts Options) (*Elector, error) {
	if !cfg.Enabled() {
		return nil, errors.New("ha: no etcd_endpoints")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	ttl := cfg.LeaseTTL.D()
	cc := clientv3.Config{
		Endpoints:   cfg.EtcdEndpoints,
		DialTimeout: ttl / 2,
		// gRPC pings a connection idle this long (it allows no less than 10 s) and drops it
		// when no answer comes back: a hung member is left for another.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: ttl / 2,
		TLS:                  cfg.tls,
		Username:             cfg.Username,
		Password:             cfg.Password.Reveal(),
		Logger:               zap.NewNop(), // its errors reach us as return values
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("ha: etcd client: %w", err)
	}
	return &Elector{cfg: cfg, opts: opts, log: opts.Log.With("component", "ha", "node", cfg.Node), cli: cli, ttl: ttl}, nil
}

// Close closes the etcd client. Call it after Run has returned.
func (e *Elector) Close() error { return e.cli.Close() }

// Node is this replica's name.
func (e *Elector) Node() string { return e.cfg.Node }

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading
}

// MaySend reports whether this replica leads and has renewed its lease within half the TTL:
// the check the leader's context makes. Unlike IsLeader it turns false at once when a paused
// leader resumes past its deadline, before keepRenewing has run; push asks it right before each
// request it sends.
func (e *Elector) MaySend() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.leading && time.Since(e.lastRenew) < e.ttl/2
}

// LeaderName returns the leader's node name, or "" when this replica does not know one (no
// leader yet, or it has lost touch with etcd).
func (e *Elector) LeaderName() string {
	s := e.Status()
	return s.Leader
}

// LeaseAge returns how long the current leader has led, as this replica saw it; 0 when no
// leader is known.
func (e *Elector) LeaseAge() time.Duration { return e.Status().LeaseAge }

// Status returns the role, the leader and the lease age.
func (e *Elector) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Status{Role: Follower, Node: e.cfg.Node}
	if e.leading {
		s.Role = Leader
	}
	// A replica that has not renewed its own lease for half a TTL cannot tell who leads.
	if e.leader != "" && time.Since(e.lastRenew) <= e.ttl/2 {
		s.Leader = e.leader
		s.LeaseAge = time.Since(e.leaderSince)
	}
	return s
}

// Run campaigns until ctx ends. Each time this replica wins it calls lead with a context that
// is cancelled as soon as the leadership may be lost: the session's lease is gone, or no
// renewal has succeeded for half the lease TTL (etcd unreachable, this process paused). Run
// waits for lead to return, then campaigns again. On the way out it resigns, so another
// replica takes over at once. It returns nil when ctx ends.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		if err := e.term(ctx, lead); err != nil && ctx.Err() == nil {
			if e.cli.Ctx().Err() != nil {
				return fmt.Errorf("ha: etcd client closed: %w", err)
			}
			e.log.Warn("etcd election: retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, e.ttl/2)
			continue
		}
		backoff = 200 * time.Millisecond
	}
	return nil
}

// term is one session: a lease, a campaign, and at most one leadership.
func (e *Elector) term(ctx context.Context, lead func(context.Context)) error {
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	start := time.Now()
	sess, err := concurrency.NewSession(e.cli, concurrency.WithTTL(int(e.ttl/time.Second)), concurrency.WithContext(sctx))
	if err != nil {
		return fmt.Errorf("creating the lease: %w", err)
	}
	defer e.closeSession(sess)
	e.renewed(start)
	// lost is closed when the lease may be gone: the session says so, or renewals stall.
	lost := make(chan struct{})
	go e.keepRenewing(sctx, sess.Lease(), sess.Done(), lost)
	el := concurrency.NewElection(sess, e.cfg.Election)
	go e.observe(sctx, el)

	cctx, cancelCampaign := context.WithCancel(sctx)
	go func() {
		select {
		case <-lost:
			cancelCampaign()
		case <-cctx.Done():
		}
	}()
	err = el.Campaign(cctx, e.cfg.Node)
	cancelCampaign()
	if err != nil {
		select {
		case <-lost:
			return errors.New("lease lost while campaigning")
		default:
			return fmt.Errorf("campaign: %w", err)
		}
	}
	e.setLeading(true)
	e.log.Info("elected: this replica pushes now")
	lctx, cancelLead := e.fence(sctx)
	keyGone := e.watchDelete(lctx, el.Key(), el.Rev())
	done := make(chan struct{})
	go func() { defer close(done); lead(lctx) }()
	why := "shutting down"
	select {
	case <-lost:
		why = "lease lost or not renewed for half its TTL"
	case <-keyGone:
		why = "the election key was deleted (the lease was revoked)"
	case <-ctx.Done():
	case <-done:
		why = "the leader's work returned"
	}
	cancelLead()
	e.setLeading(false)
	<-done
	if ctx.Err() != nil {
		e.log.Info("stopped leading: " + why)
	} else {
		e.log.Warn("stopped leading: " + why)
	}
	// Resign (best effort, briefly) so that a follower need not wait for the lease to expire.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.ttl/4)
	defer cancel()
	if err := el.Resign(rctx); err != nil {
		e.log.Debug("resigning", "err", err)
	}
	return nil
}

// keepRenewing renews the lease every TTL/6 itself and closes lost once half the TTL passes
// without a successful renewal, or when etcd says the lease is gone. It does not trust the
// session's keepalive stream alone: that stream stays on one member, and a member that hangs
// without closing the connection (SIGSTOP, a frozen VM) starves it until gRPC notices, while
// the lease is alive and renewable through the others. Each renewal is a new stream, so the
// retry after a timeout goes to another member. When the session gives up (Session.Done) a
// renewal is tried at once: it fails, and ends the leadership, unless the lease is still alive.
func (e *Elector) keepRenewing(ctx context.Context, id clientv3.LeaseID, sessDone <-chan struct{}, lost chan<- struct{}) {
	defer close(lost)
	every, timeout := e.ttl/6, e.ttl/8
	next := time.NewTimer(every)
	defer next.Stop()
	for {
		e.mu.Lock()
		deadline := e.lastRenew.Add(e.ttl / 2)
		e.mu.Unlock()
		if !time.Now().Before(deadline) {
			return
		}
		watchdog := time.NewTimer(time.Until(deadline))
		select {
		case <-ctx.Done():
			watchdog.Stop()
			return
		case <-sessDone:
			sessDone = nil
			e.log.Debug("the session's keepalive stream gave up; renewing directly")
		case <-watchdog.C:
			continue // the check above ends the leadership
		case <-next.C:
		}
		watchdog.Stop()
		start := time.Now()
		// A renewal that answers after the deadline is too late: the leadership ends then.
		rctx, cancel := context.WithTimeout(ctx, min(timeout, deadline.Sub(start)))
		resp, err := e.cli.KeepAliveOnce(rctx, id)
		cancel()
		switch {
		case err == nil && resp.TTL > 0:
			e.renewed(start)
			next.Reset(every)
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0):
			e.log.Warn("the etcd lease is gone")
			return
		default:
			e.log.Debug("renewing the lease failed; retrying", "err", err, "took", time.Since(start))
			next.Reset(0) // at once, on another member
		}
	}
}

// fenced is the leader's context. Beside the cancellation by keepRenewing, it checks the
// renewal deadline itself each time Done or Err is asked: a process that resumes after a pause
// (SIGSTOP, a frozen VM) has all its goroutines runnable at once, and a push worker could send
// before keepRenewing gets to run. Every context derived from it, and every Done on a chain of
// values down to it (an HTTP request's, when the transport looks before sending), asks first.
type fenced struct {
	context.Context // a cancelCtx: derived contexts register with it
	cancel          context.CancelFunc
	e               *Elector
}

func (e *Elector) fence(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	return &fenced{Context: ctx, cancel: cancel, e: e}, cancel
}

func (f *fenced) Done() <-chan struct{} {
	f.check()
	return f.Context.Done()
}

func (f *fenced) Err() error {
	f.check()
	return f.Context.Err()
}

func (f *fenced) check() {
	if f.e.late() {
		f.cancel()
	}
}

// late reports whether half the TTL has passed since the last successful renewal.
func (e *Elector) late() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Since(e.lastRenew) >= e.ttl/2
}

// watchDelete returns a channel closed when key, created at rev, is deleted: a lease that
// etcd revokes ends the leadership at once, before a renewal would tell (etcd 3.4.23 has a
// member that resumes after a pause revoke leases others renewed, etcd-io/etcd#15247).
func (e *Elector) watchDelete(ctx context.Context, key string, rev int64) <-chan struct{} {
	gone := make(chan struct{})
	wch := e.cli.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	go func() {
		for resp := range wch {
			if len(resp.Events) > 0 || resp.CompactRevision != 0 {
				close(gone)
				for range wch { // drain until ctx ends
				}
				return
			}
		}
	}()
	return gone
}

func (e *Elector) renewed(at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if at.After(e.lastRenew) {
		e.lastRenew = at
	}
}

// observe follows who leads, for the status.
func (e *Elector) observe(ctx context.Context, el *concurrency.Election) {
	for resp := range el.Observe(ctx) {
		if len(resp.Kvs) == 0 {
			continue
		}
		name := string(resp.Kvs[0].Value)
		e.mu.Lock()
		if name != e.leader {
			e.leader, e.leaderSince = name, time.Now()
		}
		e.mu.Unlock()
	}
}

func (e *Elector) setLeading(v bool) {
	e.mu.Lock()
	e.leading = v
	if v && e.leader != e.cfg.Node {
		e.leader, e.leaderSince = e.cfg.Node, time.Now()
	}
	e.mu.Unlock()
	if e.opts.OnRole != nil {
		e.opts.OnRole(v)
	}
}

// closeSession revokes the lease, briefly: when etcd is unreachable it expires on its own.
func (e *Elector) closeSession(sess *concurrency.Session) {
	ctx, cancel := context.WithTimeout(context.Background(), e.ttl/4)
	defer cancel()
	sess.Orphan()
	_, _ = e.cli.Revoke(ctx, sess.Lease())
}
