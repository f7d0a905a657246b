package scimapi

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// idSnapshots keeps, per resource type, the sorted list of every id as of a journal head, so a
// page at any offset is a slice expression rather than an O(offset) scan. A request first reads
// the journal head (one small read); when it moved, the snapshot catches up by replaying the
// journal's creates and deletes since its head (or, far behind, by reading every id again).
// Snapshots are immutable once published: a request keeps the one it got.
type idSnapshots struct {
	store Store
	mu    sync.Mutex // serializes refreshes
	users atomic.Pointer[idSet]
	grps  atomic.Pointer[idSet]
}

type idSet struct {
	head uint64
	ids  []string // sorted
}

// replayLimit is how many journal records a refresh replays before it reads every id instead.
const replayLimit = 20000

func newIDSnapshots(st Store) *idSnapshots { return &idSnapshots{store: st} }

func (x *idSnapshots) slot(typ scim.ResourceType) *atomic.Pointer[idSet] {
	if typ == scim.GroupType {
		return &x.grps
	}
	return &x.users
}

// get returns the sorted ids of typ as of the current journal head (or later).
func (x *idSnapshots) get(ctx context.Context, typ scim.ResourceType) ([]string, error) {
	head, err := x.store.JournalHead(ctx)
	if err != nil {
		return nil, err
	}
	slot := x.slot(typ)
	if cur := slot.Load(); cur != nil && cur.head >= head {
		return cur.ids, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	cur := slot.Load()
	if cur != nil && cur.head >= head {
		return cur.ids, nil
	}
	next, err := x.refresh(ctx, typ, cur, head)
	if err != nil {
		return nil, err
	}
	slot.Store(next)
	return next.ids, nil
}

func (x *idSnapshots) refresh(ctx context.Context, typ scim.ResourceType, cur *idSet, head uint64) (*idSet, error) {
	if cur != nil && head-cur.head <= replayLimit {
		recs, err := x.store.Journal(ctx, cur.head, replayLimit+1)
		if err != nil {
			return nil, err
		}
		if len(recs) <= replayLimit {
			return replay(cur, typ, recs), nil
		}
	}
	ids, h, err := x.store.IDs(ctx, typ)
	if err != nil {
		return nil, err
	}
	return &idSet{head: h, ids: ids}, nil
}

// replay applies the creates and deletes of typ in recs to cur; the last record of an id wins.
func replay(cur *idSet, typ scim.ResourceType, recs []cache.JournalRecord) *idSet {
	next := &idSet{head: cur.head}
	present := map[string]bool{}
	for _, r := range recs {
		next.head = max(next.head, r.Seq)
		if r.Type != typ {
			continue
		}
		present[r.ID] = r.Op != cache.OpDeleted
	}
	if len(present) == 0 {
		next.ids = cur.ids
		return next
	}
	var added []string
	for id, p := range present {
		if _, found := slices.BinarySearch(cur.ids, id); p && !found {
			added = append(added, id)
		}
	}
	slices.Sort(added)
	out := make([]string, 0, len(cur.ids)+len(added))
	i := 0
	for _, id := range cur.ids {
		for i < len(added) && added[i] < id {
			out = append(out, added[i])
			i++
		}
		if p, ok := present[id]; ok && !p {
			continue
		}
		out = append(out, id)
	}
	next.ids = append(out, added[i:]...)
	return next
}
