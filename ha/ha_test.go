package ha

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

// terms records who leads, and checks that two never lead at once.
type terms struct {
	mu      sync.Mutex
	leading map[string]bool
	started map[string]int       // terms begun per node
	ended   map[string]time.Time // when each node's last term's ctx was cancelled
	overlap []string
}

func newTerms() *terms {
	return &terms{leading: map[string]bool{}, started: map[string]int{}, ended: map[string]time.Time{}}
}

// lead is the work of a leader: it holds until its ctx ends.
func (r *terms) lead(node string) func(context.Context) {
	return func(ctx context.Context) {
		r.mu.Lock()
		for n, l := range r.leading {
			if l {
				r.overlap = append(r.overlap, fmt.Sprintf("%s started leading while %s led", node, n))
			}
		}
		r.leading[node] = true
		r.started[node]++
		r.mu.Unlock()
		<-ctx.Done()
		r.mu.Lock()
		r.leading[node] = false
		r.ended[node] = time.Now()
		r.mu.Unlock()
	}
}

// leaders returns the nodes leading now.
func (r *terms) leaders() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n, l := range r.leading {
		if l {
			out = append(out, n)
		}
	}
	return out
}

func (r *terms) count(node string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.started[node]
}

func (r *terms) endedAt(node string) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended[node]
}

func (r *terms) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, o := range r.overlap {
		t.Error(o)
	}
}

// waitLeader waits up to d for exactly one leader, other than any of not, and returns it.
func (r *terms) waitLeader(t *testing.T, d time.Duration, not ...string) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if l := r.leaders(); len(l) == 1 && !slices.Contains(not, l[0]) {
			return l[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single leader after %v: %v", d, r.leaders())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logLevel: LDAPSCIM_HA_DEBUG=1 shows every failed renewal.
var logLevel = func() slog.Level {
	if os.Getenv("LDAPSCIM_HA_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}()

// running is an elector whose Run goroutine the test can stop.
type running struct {
	*Elector
	cancel context.CancelFunc
	done   chan struct{}
}

// start runs an elector named node on endpoints until the test ends (or stop).
func start(t *testing.T, endpoints []string, node string, ttl time.Duration, r *terms) *running {
	t.Helper()
	cfg := DefaultConfig()
	cfg.EtcdEndpoints = endpoints
	cfg.Election = "/test/" + t.Name()
	cfg.LeaseTTL = confval.Duration(ttl)
	cfg.Node = node
	if errs := append(cfg.Resolve(), cfg.Validate()...); len(errs) > 0 {
		t.Fatal(errs)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel}))
	e, err := New(cfg, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	el := &running{Elector: e, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(el.done)
		if err := e.Run(ctx, r.lead(node)); err != nil && ctx.Err() == nil {
			t.Logf("%s: Run: %v", node, err)
		}
	}()
	t.Cleanup(func() { el.stop(t) })
	return el
}

// stop ends Run (the elector resigns) and closes the client.
func (el *running) stop(t *testing.T) {
	t.Helper()
	el.cancel()
	select {
	case <-el.done:
	case <-time.After(30 * time.Second):
		t.Errorf("%s: Run did not return 30 s after its ctx ended", el.Node())
	}
	el.Close()
}

// crash cuts the elector off from etcd at once, without resigning or revoking: as kill -9 would,
// except that its lead ctx must still end.
func (el *running) crash() { el.cli.Close() }

// Two replicas: exactly one leads and both name it; when the leader's process dies the other
// leads within lease_ttl + 5 s (and the dead one's work is cancelled before its lease can
// expire); a replica that shuts down resigns, so a third takes over at once.
func TestElectionFailover(t *testing.T) {
	t.Parallel()
	const ttl = 3 * time.Second
	etcd := testenv.StartEtcd(t, 3)
	r := newTerms()
	els := map[string]*running{}
	for _, n := range []string{"a", "b"} {
		els[n] = start(t, etcd.Endpoints, n, ttl, r)
	}
	first := r.waitLeader(t, 15*time.Second)
	// It stays the only leader, and both replicas name it.
	time.Sleep(2 * ttl)
	if l := r.leaders(); len(l) != 1 || l[0] != first || r.count(first) != 1 {
		t.Fatalf("leaders %v (first %s, its terms %d)", l, first, r.count(first))
	}
	for n, el := range els {
		st := el.Status()
		if st.Leader != first || (n == first) != (st.Role == Leader) || el.IsLeader() != (n == first) {
			t.Errorf("%s: status %+v, want leader %s", n, st, first)
		}
		if el.LeaseAge() < ttl {
			t.Errorf("%s: lease age %v after %v of leadership", n, el.LeaseAge(), 2*ttl)
		}
	}

	other := map[string]string{"a": "b", "b": "a"}[first]
	crashed := time.Now()
	els[first].crash()
	second := r.waitLeader(t, ttl+5*time.Second, first)
	took := time.Since(crashed)
	if second != other {
		t.Fatalf("after %s crashed, %s leads", first, second)
	}
	end := r.endedAt(first)
	if end.IsZero() || end.Sub(crashed) > ttl/2+500*time.Millisecond {
		t.Errorf("the crashed leader's work ended %v after the crash, want < %v", end.Sub(crashed), ttl/2)
	}
	t.Logf("failover after a crash: %v (lease_ttl %v)", took, ttl)
	if took < ttl/2 {
		t.Errorf("%s led %v after %s crashed: before its lease could expire", second, took, first)
	}

	// A third replica; the leader shuts down cleanly and resigns: the third leads at once.
	els["c"] = start(t, etcd.Endpoints, "c", ttl, r)
	time.Sleep(time.Second)
	stopped := time.Now()
	els[second].stop(t)
	if third := r.waitLeader(t, ttl, second); third != "c" {
		t.Fatalf("after %s resigned, %s leads", second, third)
	}
	t.Logf("handover after a resignation: %v", time.Since(stopped))
	r.check(t)
}

// The leader keeps leading while one etcd member of three is frozen (SIGSTOP): each follower
// member in turn. While the raft leader member is frozen (the other two elect another raft
// leader) it keeps leading when that election is quick, and steps down otherwise; never two
// leaders.
// With two members stopped there is no quorum: the leader stops within the lease TTL and
// nobody leads; once the members are back, a replica leads again.
//
// etcd 3.4.23 (Debian's) has a bug when the frozen raft leader resumes: it revokes the leases
// that the others renewed meanwhile (etcd-io/etcd#15247, fixed upstream by #16822). The
// leader's lease can go then; the test checks that it stops leading at once and that another
// replica takes over, with at most a moment of overlap.
func TestElectionEtcdMemberLoss(t *testing.T) {
	t.Parallel()
	const ttl = 10 * time.Second // the default: half of it must cover a raft leader election
	etcd := testenv.StartEtcd(t, 3)
	r := newTerms()
	els := map[string]*running{}
	for _, n := range []string{"a", "b"} {
		els[n] = start(t, etcd.Endpoints, n, ttl, r)
	}
	leader := r.waitLeader(t, 15*time.Second)
	raft := etcd.RaftLeader(t)
	for i := range etcd.Members {
		if i == raft {
			continue
		}
		etcd.Pause(t, i)
		time.Sleep(ttl)
		etcd.Resume(t, i)
		if l := r.leaders(); len(l) != 1 || l[0] != leader || r.count(leader) != 1 {
			t.Fatalf("with etcd member %d (a raft follower) frozen for %v: leaders %v, %s's terms %d", i, ttl, l, leader, r.count(leader))
		}
		etcd.WaitHealthy(t)
	}
	r.check(t)
	// The raft leader frozen: the other two elect a raft leader of their own, and the lease
	// renewals go on through them if that takes less than TTL/2. On a loaded machine (CI, the
	// race detector, other packages' tests) it can take longer, and then the leader must step
	// down rather than risk leading past its lease: both outcomes are safe, and the check is
	// that there is never more than one leader (r.check) and a leader again after the resume.
	etcd.Pause(t, raft)
	time.Sleep(ttl)
	if l := r.leaders(); len(l) == 1 && l[0] == leader && r.count(leader) == 1 {
		t.Logf("with the raft leader member %d frozen for %v: %s kept leading", raft, ttl, leader)
	} else {
		t.Logf("with the raft leader member %d frozen for %v: leaders %v, %s's terms %d (stepped down: renewals failed for TTL/2)", raft, ttl, l, leader, r.count(leader))
	}
	r.check(t)
	etcd.Resume(t, raft)
	etcd.WaitHealthy(t)
	time.Sleep(ttl / 2)
	leader = r.waitLeader(t, ttl+5*time.Second)

	// Without a quorum the leader stops at its last renewal + TTL/2, well before its lease
	// could expire. A raft leader member that lost its quorum keeps renewing leases until it
	// steps down (up to two election timeouts, 2 s with etcd's defaults): allow for that.
	lost := time.Now()
	etcd.Kill(t, 1)
	etcd.Kill(t, 2)
	deadline := time.Now().Add(ttl/2 + 3*time.Second)
	for len(r.leaders()) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if l := r.leaders(); len(l) > 0 {
		t.Fatalf("%v still lead %v after etcd lost its quorum", l, time.Since(lost))
	}
	els[leader].mu.Lock()
	lastRenew := els[leader].lastRenew
	els[leader].mu.Unlock()
	if after := r.endedAt(leader).Sub(lastRenew); after > ttl/2+500*time.Millisecond {
		t.Errorf("the leader stopped %v after its last renewal, want about %v (its lease lasts %v)", after, ttl/2, ttl)
	}
	t.Logf("the leader stopped %v after etcd lost its quorum (lease_ttl %v)", r.endedAt(leader).Sub(lost), ttl)
	time.Sleep(ttl)
	if l := r.leaders(); len(l) > 0 {
		t.Fatalf("%v lead without an etcd quorum", l)
	}
	for n, el := range els {
		if el.IsLeader() || el.Status().Role != Follower {
			t.Errorf("%s: status %+v without an etcd quorum", n, el.Status())
		}
	}

	etcd.Start(t, 1)
	etcd.Start(t, 2)
	etcd.WaitHealthy(t)
	r.waitLeader(t, 3*ttl)
}

type tallyKey struct{}

// The leader's context ends on the first look once half the TTL has passed without a renewal,
// before any goroutine has cancelled it: a process resumed after SIGSTOP does not send first.
func TestLeadContextFenced(t *testing.T) {
	e := &Elector{ttl: 4 * time.Second, lastRenew: time.Now()}
	ctx, cancel := e.fence(context.Background())
	defer cancel()
	value := context.WithValue(ctx, tallyKey{}, 1) // as push wraps it
	if value.Err() != nil || ctx.Err() != nil {
		t.Fatal("the lead context ended with a fresh renewal")
	}
	e.mu.Lock()
	e.lastRenew = time.Now().Add(-e.ttl / 2) // as after a pause: no goroutine ran meanwhile
	e.mu.Unlock()
	select {
	case <-value.Done():
	default:
		t.Fatal("Done of a context derived by value is open past the renewal deadline")
	}
	if ctx.Err() == nil {
		t.Fatal("Err is nil past the renewal deadline")
	}

	// A context derived after the deadline is born cancelled.
	e2 := &Elector{ttl: 4 * time.Second, lastRenew: time.Now()}
	ctx2, cancel2 := e2.fence(context.Background())
	defer cancel2()
	e2.mu.Lock()
	e2.lastRenew = time.Now().Add(-e2.ttl)
	e2.mu.Unlock()
	child, stop := context.WithTimeout(ctx2, time.Hour)
	defer stop()
	if child.Err() == nil {
		t.Fatal("a context derived past the renewal deadline is not cancelled")
	}
}

// MaySend is false for a follower, true for a leader with a fresh renewal, and false the
// moment the renewal deadline has passed, while leading is still set (no goroutine has run
// since a pause): push asks it right before each request.
func TestMaySendChecksDeadline(t *testing.T) {
	e := &Elector{ttl: 4 * time.Second, lastRenew: time.Now()}
	if e.MaySend() {
		t.Fatal("a follower may send")
	}
	e.leading = true
	if !e.MaySend() {
		t.Fatal("a leader with a fresh renewal may not send")
	}
	e.mu.Lock()
	e.lastRenew = time.Now().Add(-e.ttl / 2)
	e.mu.Unlock()
	if !e.IsLeader() {
		t.Fatal("IsLeader turned false by itself: the test no longer shows the gap MaySend closes")
	}
	if e.MaySend() {
		t.Fatal("a leader past its renewal deadline may send")
	}
}
