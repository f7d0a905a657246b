package push_test

import (
	"sync"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/push"
)

// Every request a worker sends reaches the observer (metrics), with its status and latency.
func TestObserveRequestsSeesEveryRequest(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+userLDIF("bob", "Bob", "Brown", "Sales", ""))
	cfg := e.targetConfig(e.target.URL, nil)
	var mu sync.Mutex
	statuses := map[int]int{}
	p := push.New([]push.TargetConfig{cfg}, nil, e.store, push.Options{ObserveRequests: func(name string, status int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if name != cfg.Name || d <= 0 {
			t.Errorf("observed %q after %v", name, d)
		}
		statuses[status]++
	}})
	tg, ok := p.TargetNamed(cfg.Name)
	if !ok {
		t.Fatal("TargetNamed")
	}
	drain(t, tg)
	mu.Lock()
	defer mu.Unlock()
	if statuses[201] != 2 {
		t.Fatalf("observed statuses %v; want two 201 creates", statuses)
	}
}
