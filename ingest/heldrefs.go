package ingest

import (
	"context"
	"errors"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// A held deletion changes nothing else about the resource (invariant 5, docs/architecture.md):
// its group memberships and its reports' manager stay until it is approved.

// HeldRefs is what a pass keeps of the users whose deletion it holds, decided once it has read
// every user (before any group): the groups the cache has list them and the reports that name
// them as manager. Groups resolved from then on keep those members (a wrong users base makes
// their member references name entries the pass did not read), and a report whose manager no
// longer resolves keeps the held one. The zero value holds nothing.
type HeldRefs struct {
	users map[string]bool          // users not read whose deletion is held
	in    map[string][]scim.Member // group id → the held users the cache has it list
	mgr   map[string]cache.Ref     // report id → its held manager
}

// Load decides, when a pass has read every user, whether deleting the cached users it did not
// read (unread), with its deact deactivations, crosses th, counted against the users owner owns
// (Pass.Owner); if so it records them, the groups that list them and the reports that name
// them. It costs O(held memberships and reports).
func (h *HeldRefs) Load(ctx context.Context, store Store, th Threshold, owner string, unread []string, deact int) error {
	if len(unread) == 0 {
		return nil
	}
	total, err := store.CountOwned(ctx, scim.UserType, owner)
	if err != nil {
		return err
	}
	if !th.Over(len(unread)+deact, total) {
		return nil
	}
	h.users = make(map[string]bool, len(unread))
	h.in = map[string][]scim.Member{}
	h.mgr = map[string]cache.Ref{}
	for _, id := range unread {
		h.users[id] = true
		ref, err := store.Ref(ctx, id)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		groups, err := store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range groups {
			h.in[g.ID] = append(h.in[g.ID], scim.Member{Value: id, Type: scim.UserType, Display: ref.Display})
		}
		reports, err := store.Lookup(ctx, cache.IndexManager, id)
		if err != nil {
			return err
		}
		for _, r := range reports {
			h.mgr[r] = cache.Ref{ID: id, Type: scim.UserType, Display: ref.Display}
		}
	}
	return nil
}

// Any reports whether Load held any user: the pass must then hold its user deletions.
func (h *HeldRefs) Any() bool { return len(h.users) > 0 }

// KeepMembers adds to group r the held users the cache has it list. r.Members is sorted by id
// with one member per id, and stays so.
func (h *HeldRefs) KeepMembers(r *scim.Resource) { AddMembers(r, h.in[r.ID]) }

// Manager returns the held manager that report id's stored value names, if any.
func (h *HeldRefs) Manager(id string) (cache.Ref, bool) {
	ref, ok := h.mgr[id]
	return ref, ok
}

// KeepHeldGroups adds back, to the groups that upserts restate, the groups whose deletion d
// holds and that the cache has them list (nested groups). Call it when Decide held the group
// deletions. It costs O(memberships of the held groups).
func (d *Deletions) KeepHeldGroups(ctx context.Context, store Store, upserts []*scim.Resource) error {
	in := map[string][]scim.Member{}
	for _, id := range d.IDs(scim.GroupType) {
		parents, err := store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		if len(parents) == 0 {
			continue
		}
		ref, err := store.Ref(ctx, id)
		if errors.Is(err, cache.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, g := range parents {
			in[g.ID] = append(in[g.ID], scim.Member{Value: id, Type: scim.GroupType, Display: ref.Display})
		}
	}
	if len(in) == 0 {
		return nil
	}
	for _, r := range upserts {
		if r.Type == scim.GroupType {
			AddMembers(r, in[r.ID])
		}
	}
	return nil
}
