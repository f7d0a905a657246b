package ingest

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Pass is the source-neutral state of one pass of one source: what it would delete or
// deactivate, the holds it decides, the virtual groups its rules fill and, in a delta, the
// renames it saw. A source makes one per pass with NewPass, hands it every resource it is about
// to write (Queue), marks deletions (Dels), and builds its last batch with Last, so that every
// source gets the same safety (invariant 5, docs/architecture.md). One goroutine.
type Pass struct {
	ID     string // the pass id, in holds, journal and audit
	Source string // the source's watermark key
	// Owner is whose resources the deletion threshold counts this pass's deletions against:
	// "" (the default) for the directory's, which no source owns, and for an enriching source,
	// which acts on them; the source's name for one that owns its users (cache.Batch.Own).
	// Counted against every resource of the cache, 200 contractors of a truncated file
	// beside a directory of 100,000 were 0.2%: under any percentage limit.
	Owner     string
	Store     Store
	Threshold Threshold
	Log       *slog.Logger
	// Delta is set for a pass that reads only what changed: renamed and deleted resources then
	// have their copies in other resources refreshed (a full pass rewrites them all).
	Delta bool

	Dels        *Deletions
	Held        *HeldRefs
	MemberHolds *MemberHolds
	Virtual     *VirtualGroups

	renamed map[string]scim.Member // id → the resource as a member with its new display (delta)
}

// NewPass returns the state of pass id of source, with the rules rs (nil: none).
func NewPass(id, source string, store Store, th Threshold, rs *Rules, delta bool, log *slog.Logger) *Pass {
	return &Pass{ID: id, Source: source, Store: store, Threshold: th, Log: log, Delta: delta,
		Dels: NewDeletions(), Held: &HeldRefs{}, MemberHolds: NewMemberHolds(th, id, log),
		Virtual: NewVirtualGroups(rs), renamed: map[string]scim.Member{}}
}

// Queue takes a resource the source is about to write: it runs the rules on it, notes a
// rename (delta), and sets aside a user the cache has active and the source shows inactive:
// deactivations count against the deletion threshold and are decided by Last. aside reports
// that r is set aside: the source must not write it.
func (c *Pass) Queue(ctx context.Context, r *scim.Resource) (aside bool, err error) {
	c.Virtual.Eval(r)
	if c.Delta {
		if err := c.noteRename(ctx, r); err != nil {
			return false, err
		}
	}
	if r.Type == scim.UserType && !r.Active() {
		old, err := c.Store.Get(ctx, scim.UserType, r.ID)
		switch {
		case err == nil && old.Active():
			c.Dels.Deactivate(r)
			return true, nil
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return false, err
		}
	}
	return false, nil
}

// Tail is what a source hands to Last: the end of its pass.
type Tail struct {
	// Upserts are the resources not written yet, Sources their source records.
	Upserts []*scim.Resource
	Sources map[string][]byte
	// Times are the source's own times of the changes of Upserts (cache.Batch.SourceTimes).
	Times map[string]time.Time
	// Overlays are the overlays to store (nil: delete) beside Upserts or alone (cache.Batch).
	Overlays map[string]*cache.Overlay
	// KeepMembers names groups of Upserts whose members are not restated (cache.Batch).
	KeepMembers map[string]bool
	// Edits are member edits the source made; Last adds its own.
	Edits Edits
	// ReplaceHolds is set by a pass that saw everything (a complete full pass): the stored
	// holds are replaced. Otherwise earlier holds stay, except for resources read again.
	ReplaceHolds bool
	// Read reports whether the pass read id (or id is a virtual group).
	Read func(id string) bool
}

// Last decides the pass's deletions and deactivations against the threshold and returns the
// pass's last batch: the rest of its resources, the deletions not held, the held ones kept
// from touching anything else (memberships, managers, nested groups), the virtual groups,
// members pruned and copies refreshed, member edits, and the hold set. The source adds its
// watermark, so that it is written in the same transaction (invariant 2). held counts the
// deletions and deactivations held, heldMembers the members kept by mass-removal holds.
func (c *Pass) Last(ctx context.Context, t Tail) (b cache.Batch, held, heldMembers int, err error) {
	dec, err := c.Dels.Decide(ctx, c.Store, c.Threshold, c.ID, c.Owner, c.Held.Any(), c.Log)
	if err != nil {
		return cache.Batch{}, 0, 0, err
	}
	for _, id := range dec.KeptActive {
		delete(t.Sources, id) // the next full pass must see the deactivation again
	}
	old, err := c.Store.Holds(ctx)
	if err != nil {
		return cache.Batch{}, 0, 0, err
	}
	var holds []cache.Hold
	if !t.ReplaceHolds {
		holds = c.Dels.KeptHolds(old, t.Read)
	} else {
		// A pass that saw everything of its source replaces that source's holds only.
		for _, h := range old {
			if h.Source != "" && h.Source != c.Source {
				holds = append(holds, h)
			}
		}
	}
	for _, h := range dec.Holds {
		h.Source = c.Source
		holds = append(holds, h)
	}
	b = cache.Batch{Source: c.Source, Pass: c.ID, Deletes: dec.Deletes}
	b.Upserts = append(slices.Clone(dec.Upserts), t.Upserts...)
	if dec.Held[scim.GroupType] {
		// A held group stays a member of the groups that list it (nested groups).
		if err := c.Dels.KeepHeldGroups(ctx, c.Store, b.Upserts); err != nil {
			return cache.Batch{}, 0, 0, err
		}
	}
	b.SourceHashes, b.SourceTimes, b.KeepMembers, b.Overlays = t.Sources, t.Times, t.KeepMembers, t.Overlays
	edits := t.Edits
	if edits == nil {
		edits = Edits{}
	}
	vgs, err := c.Virtual.Build(ctx, c.Store, edits)
	if err != nil {
		return cache.Batch{}, 0, 0, err
	}
	b.Upserts = append(b.Upserts, vgs...)
	restated := slices.DeleteFunc(slices.Clone(b.Upserts), func(r *scim.Resource) bool { return t.KeepMembers[r.ID] })
	if err := PruneMembers(ctx, c.Store, restated, b.Deletes, edits); err != nil {
		return cache.Batch{}, 0, 0, err
	}
	if c.Delta {
		if err := c.refreshCopies(ctx, &b, edits, t.KeepMembers); err != nil {
			return cache.Batch{}, 0, 0, err
		}
	}
	b.MemberEdits = edits.List()
	for _, h := range c.MemberHolds.List() {
		h.Source = c.Source
		holds = append(holds, h)
		heldMembers += len(h.Members)
	}
	b.Holds = HoldSet(holds, old, t.ReplaceHolds)
	return b, dec.HeldCount, heldMembers, nil
}
