package cache

import (
	"errors"
	"sync/atomic"
	"time"
)

// ErrBusy means the store is writing a first sync's bulk load (Load.Commit) and takes no other
// writes until it is done: a few seconds per 100k resources. Try again. (Reads meanwhile see
// the store as it was before the load: empty of resources.)
var ErrBusy = errors.New("cache: busy writing a first sync; try again in a few seconds")

// gate keeps every read and write of the database out while a bulk load streams its tables
// (load.go): Badger's StreamWriter drops the database first and swaps its internals while it
// writes, which Badger does not make safe for concurrent readers.
//
// Entries do not wait at a shut gate, they fail with ErrBusy: a store method may enter again
// from inside another (a scan's callback calling the store), and a waiting second entry of a
// goroutine that is already inside would wait for itself. shut waits only for those inside,
// who cannot be held up by it, so it cannot deadlock, and no stream of newcomers delays it.
// While the gate is open, enter and leave cost one atomic add each.
type gate struct {
	inside atomic.Int64
	closed atomic.Bool
}

// enter counts the caller in, or returns ErrBusy while the gate is shut.
func (g *gate) enter() error {
	g.inside.Add(1)
	if g.closed.Load() {
		g.inside.Add(-1)
		return ErrBusy
	}
	return nil
}

// leave counts the caller out.
func (g *gate) leave() { g.inside.Add(-1) }

// shut turns newcomers away and waits until nobody is inside; open lets them in again.
func (g *gate) shut() {
	g.closed.Store(true)
	for g.inside.Load() > 0 {
		time.Sleep(time.Millisecond)
	}
}

func (g *gate) open() { g.closed.Store(false) }
