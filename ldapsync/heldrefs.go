package ldapsync

import (
	"context"
	"maps"
	"slices"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// A held deletion changes nothing else about the resource (invariant 5, docs/architecture.md): its group
// memberships and its reports' manager stay until it is approved. A full pass reads every user
// before any group, so once the users are read it knows which cached users it did not see and
// whether their deletion will be held. Groups resolved from then on keep the held users the
// cache has them list (a wrong users base DN leaves their member DNs naming entries the pass did
// not read), and users whose manager DN no longer resolves keep a held manager.

// decideUserHolds runs in a full pass once every user is read: if the users the pass did not
// see will be held, it records them, the groups that list them and the reports that name them
// as manager. Its cost is O(users) ids plus O(held memberships and reports).
func (p *pass) decideUserHolds(ctx context.Context) error {
	var unread []string
	err := p.s.store.ForEachID(ctx, scim.UserType, func(id string) error {
		if !p.wasRead(id) {
			unread = append(unread, id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// findDeletions reuses the list: the ids are scanned once per pass.
	p.unreadUsers, p.usersScanned = unread, true
	total, err := p.s.store.Count(ctx, scim.UserType)
	if err != nil {
		return err
	}
	if !p.s.threshold().Over(len(unread)+len(p.deact), total) || len(unread) == 0 {
		return nil
	}
	p.heldUsers = make(map[string]bool, len(unread))
	p.heldIn = map[string][]scim.Member{}
	p.heldMgr = map[string]cache.Ref{}
	for _, id := range unread {
		p.heldUsers[id] = true
		ref, err := p.s.store.Ref(ctx, id)
		if isNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		groups, err := p.s.store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range groups {
			p.heldIn[g.ID] = append(p.heldIn[g.ID], scim.Member{Value: id, Type: scim.UserType, Display: ref.Display})
		}
		reports, err := p.s.store.Lookup(ctx, cache.IndexManager, id)
		if err != nil {
			return err
		}
		for _, r := range reports {
			p.heldMgr[r] = cache.Ref{ID: id, Type: scim.UserType, Display: ref.Display}
		}
	}
	return nil
}

// keepHeldMembers adds to group r the held users the cache has it list. r.Members is sorted by
// id with one member per id.
func (p *pass) keepHeldMembers(r *scim.Resource) {
	ingest.AddMembers(r, p.heldIn[r.ID])
}

// keepHeldGroups adds back, to the groups that upserts restate, the groups whose deletion
// finish holds and that the cache has them list (nested groups). It costs O(memberships of
// the held groups).
func (p *pass) keepHeldGroups(ctx context.Context, upserts []*scim.Resource) error {
	in := map[string][]scim.Member{}
	for _, id := range slices.Sorted(maps.Keys(p.deletes)) {
		if p.deletes[id] != scim.GroupType {
			continue
		}
		parents, err := p.s.store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		if len(parents) == 0 {
			continue
		}
		ref, err := p.s.store.Ref(ctx, id)
		if isNotFound(err) {
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
			ingest.AddMembers(r, in[r.ID])
		}
	}
	return nil
}

// heldManager returns the held manager user id's stored value names, if any.
func (p *pass) heldManager(id string) (cache.Ref, bool) {
	ref, ok := p.heldMgr[id]
	return ref, ok
}
