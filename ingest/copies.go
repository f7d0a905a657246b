package ingest

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// noteRename records, in a delta pass, a resource whose display name differs from the cached
// one.
func (c *Pass) noteRename(ctx context.Context, r *scim.Resource) error {
	old, err := c.Store.Ref(ctx, r.ID)
	if errors.Is(err, cache.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if d := DisplayOf(r); d != old.Display {
		c.renamed[r.ID] = scim.Member{Value: r.ID, Type: r.Type, Display: d}
	}
	return nil
}

// refreshCopies updates what other resources copy from the resources this delta pass renamed
// or deletes: a group member's display, and a report's manager (its displayName, or the whole
// manager when the manager is deleted). A delta reads only what changed, so without it the
// copies would stay stale until the next full pass (on LDAP: with refint, slapd's rewrite of
// the reports is invisible to syncrepl; without it, their manager DN names nothing). Deleted
// members are pruned from groups by PruneMembers. The groups come from the member index, the
// reports from the manager index. A refreshed report's source record gets the new manager too,
// so the next full pass does not see it as stale again. A group the batch does not upsert gets
// a member edit naming only the renamed member, whatever the group's size; keepMembers names
// the groups of the batch whose members it does not restate.
func (c *Pass) refreshCopies(ctx context.Context, b *cache.Batch, edits Edits, keepMembers map[string]bool) error {
	if len(c.renamed)+len(b.Deletes) == 0 {
		return nil
	}
	queued := make(map[string]*scim.Resource, len(b.Upserts))
	for _, r := range b.Upserts {
		queued[r.ID] = r
	}
	deleted := make(map[string]bool, len(b.Deletes))
	for _, id := range b.Deletes {
		deleted[id] = true
	}
	// load returns the resource to change: the one this batch writes, else the cached one
	// (nil if gone), which it adds to the batch.
	load := func(typ scim.ResourceType, id string) (*scim.Resource, bool, error) {
		if r := queued[id]; r != nil {
			return r, true, nil
		}
		r, err := c.Store.Get(ctx, typ, id)
		if errors.Is(err, cache.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		queued[id] = r
		b.Upserts = append(b.Upserts, r)
		return r, false, nil
	}
	for _, id := range slices.Sorted(maps.Keys(c.renamed)) {
		m := c.renamed[id]
		groups, err := c.Store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if deleted[g.ID] {
				continue
			}
			r := queued[g.ID]
			if r == nil || r.Type != scim.GroupType || keepMembers[g.ID] {
				edits.Set(g.ID, m)
				continue
			}
			// The batch restates the group: change its list. A copy: a resource from a plan's
			// dry-run store shares its members with the plan.
			if i := slices.IndexFunc(r.Members, func(x scim.Member) bool { return x.Value == id }); i >= 0 && r.Members[i].Display != m.Display {
				r.Members = slices.Clone(r.Members)
				r.Members[i].Display = m.Display
			}
		}
	}
	// The reports of the renamed and the deleted, from the manager index.
	managerOf := map[string]string{} // report id → the manager id it names
	var ids []string
	for _, m := range append(slices.Collect(maps.Keys(c.renamed)), b.Deletes...) {
		reports, err := c.Store.Lookup(ctx, cache.IndexManager, m)
		if err != nil {
			return err
		}
		for _, id := range reports {
			if !deleted[id] {
				managerOf[id] = m
				ids = append(ids, id)
			}
		}
	}
	srcs, err := c.Store.SourceHashes(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		m := managerOf[id]
		r, inBatch, err := load(scim.UserType, id)
		if err != nil {
			return err
		}
		if r == nil {
			continue
		}
		ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		mgr, _ := ext["manager"].(map[string]any)
		if mgr == nil || mgr["value"] != m {
			continue // this batch gave it another manager
		}
		// Copies, as for the members above.
		ext = maps.Clone(ext)
		now := cache.Ref{} // what the manager DN resolves to now: nothing, if she is deleted
		if deleted[m] {
			delete(ext, "manager")
		} else {
			now = cache.Ref{ID: m, Display: c.renamed[m].Display}
			mgr = maps.Clone(mgr)
			mgr["displayName"] = now.Display
			ext["manager"] = mgr
		}
		if len(ext) == 0 {
			delete(r.Attributes, scim.SchemaEnterpriseUser)
		} else {
			r.Attributes[scim.SchemaEnterpriseUser] = ext
		}
		// The source record names the manager too (a report read in this pass has its own).
		if enc, ok := WithManager(srcs[id], now); ok && !inBatch {
			if b.SourceHashes == nil {
				b.SourceHashes = map[string][]byte{}
			}
			b.SourceHashes[id] = enc
		}
	}
	return nil
}
