package ldapsync

import (
	"context"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

func (p *pass) flush(ctx context.Context) error {
	if len(p.batch) == 0 {
		return nil
	}
	if p.s.progress != nil {
		p.s.progress("apply", p.sum.Read)
	}
	if p.apply == nil {
		if p.load != nil {
			p.apply = startApplier(ctx, p.load.Apply, nil)
		} else {
			p.apply = startApplier(ctx, p.s.store.Apply, p.s.store)
		}
	}
	err := p.apply.send(cache.Batch{Source: Source, Pass: p.id, Upserts: p.batch, SourceHashes: p.batchSrc,
		SourceTimes: p.batchTimes, KeepMembers: p.keptMembers(), Overlays: p.batchOv})
	p.batch = make([]*scim.Resource, 0, flushSize)
	p.batchSrc = map[string][]byte{}
	p.batchTimes = map[string]time.Time{}
	p.batchOv = map[string]*cache.Overlay{}
	return err
}

// drain waits until every flushed batch is in the cache and adds their results to the summary.
func (p *pass) drain() error {
	if p.apply == nil {
		return nil
	}
	res, err := p.apply.wait()
	p.dups.merge(p.apply.dups)
	p.apply = nil
	p.sum.add(res)
	return err
}

// applier writes batches to the cache in order on its own goroutine, so that reading and
// decoding the directory overlaps with writing the cache.
type applier struct {
	ch   chan cache.Batch
	done chan struct{}
	res  cache.Result
	dups dupNames // of the users written
	err  error    // set before done is closed
}

// startApplier starts a writer of batches through apply; dups, if set, is the store it checks
// their userNames in (dupnames.go).
func startApplier(ctx context.Context, apply func(context.Context, cache.Batch) (cache.Result, error), dups Store) *applier {
	a := &applier{ch: make(chan cache.Batch, 1), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for batch := range a.ch {
			if a.err != nil {
				continue // keep draining so send never blocks forever
			}
			res, err := apply(ctx, batch)
			a.res.Created += res.Created
			a.res.Updated += res.Updated
			a.res.Deactivated += res.Deactivated
			a.res.Deleted += res.Deleted
			a.res.Unchanged += res.Unchanged
			if a.err = err; err == nil && dups != nil {
				a.err = a.dups.check(ctx, dups, batch.Upserts)
			}
		}
	}()
	return a
}

func (a *applier) send(batch cache.Batch) error {
	select {
	case <-a.done:
		return a.err
	default:
	}
	a.ch <- batch
	return nil
}

func (a *applier) wait() (cache.Result, error) {
	close(a.ch)
	<-a.done
	return a.res, a.err
}

// beginLoad starts a bulk load for a first sync into a cache without resources
// (cache.Store.BeginLoad): the pass's batches are then written as finished tables by endLoad,
// at a fraction of the cost of transactions. A store that cannot load (in memory, or a test's)
// is written to as usual.
func (p *pass) beginLoad(ctx context.Context) error {
	l, err := ingest.BeginLoad(ctx, p.s.store)
	p.load = l
	return err
}

// endLoad writes the bulk load, if any, into the cache; later batches go to the cache.
func (p *pass) endLoad(ctx context.Context) error {
	if p.load == nil {
		return nil
	}
	if err := p.drain(); err != nil {
		return err
	}
	l := p.load
	p.load = nil
	if err := l.Commit(ctx); err != nil {
		return err
	}
	d := l.Duplicates()
	p.dups.merge(dupNames{count: d.Users, sample: d.Sample})
	return nil
}
