package ldapsync

import (
	"context"

	"github.com/ldapscim/ldapscim/cache"
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
		p.apply = startApplier(ctx, p.s.store)
	}
	err := p.apply.send(cache.Batch{Source: Source, Pass: p.id, Upserts: p.batch, SourceHashes: p.batchSrc,
		KeepMembers: p.keptMembers(), Overlays: p.batchOv})
	p.batch = make([]*scim.Resource, 0, flushSize)
	p.batchSrc = map[string][]byte{}
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

func startApplier(ctx context.Context, store Store) *applier {
	a := &applier{ch: make(chan cache.Batch, 1), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		for batch := range a.ch {
			if a.err != nil {
				continue // keep draining so send never blocks forever
			}
			res, err := store.Apply(ctx, batch)
			a.res.Created += res.Created
			a.res.Updated += res.Updated
			a.res.Deactivated += res.Deactivated
			a.res.Deleted += res.Deleted
			a.res.Unchanged += res.Unchanged
			if a.err = err; err == nil {
				a.err = a.dups.check(ctx, store, batch.Upserts)
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
