package cache

import (
	"sync"
	"sync/atomic"
)

// gate keeps every read and write of the database out while a bulk load streams its tables
// (load.go): Badger's StreamWriter drops the database first and swaps its internals while it
// writes, which Badger does not make safe for concurrent readers.
//
// Unlike a sync.RWMutex it prefers the readers: close waits until nobody is inside, and never
// makes a newcomer wait before that. A store method may enter again from inside (a callback of a
// scan calling another method), and with a waiting writer in between an RWMutex would deadlock
// on that second entry. The price is that close can wait as long as entries keep overlapping;
// it is only used by a first sync into an empty store, where entries are short.
//
// enter and leave cost one atomic add each while the gate is open.
type gate struct {
	n       atomic.Int64 // goroutines inside; closedBias added while closed
	waiters atomic.Int32 // goroutines in close or waiting in enter
	mu      sync.Mutex
	cond    *sync.Cond // on mu: n reached 0, or the gate opened
}

const closedBias = -(1 << 40)

func newGate() *gate {
	g := &gate{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// enter waits while the gate is closed and counts the caller in.
func (g *gate) enter() {
	if g.n.Add(1) > 0 {
		return
	}
	g.n.Add(-1)
	g.waiters.Add(1)
	g.mu.Lock()
	for {
		n := g.n.Load()
		if n < 0 {
			g.cond.Wait()
		} else if g.n.CompareAndSwap(n, n+1) {
			break
		}
	}
	g.mu.Unlock()
	g.waiters.Add(-1)
}

// leave counts the caller out.
func (g *gate) leave() {
	if g.n.Add(-1) == 0 && g.waiters.Load() > 0 {
		g.mu.Lock()
		g.cond.Broadcast()
		g.mu.Unlock()
	}
}

// close waits until nobody is inside and shuts the gate; open opens it again.
func (g *gate) close() {
	g.waiters.Add(1)
	g.mu.Lock()
	for !g.n.CompareAndSwap(0, closedBias) {
		g.cond.Wait()
	}
	g.mu.Unlock()
	g.waiters.Add(-1)
}

func (g *gate) open() {
	g.mu.Lock()
	g.n.Add(-closedBias)
	g.cond.Broadcast()
	g.mu.Unlock()
}
