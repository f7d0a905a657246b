package ingest

import (
	"context"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/scim"
)

// PruneMembers removes deleted resources from the groups that list them. A deleted entry is no
// longer a member even when its group was not re-read: a source may keep naming it (a group
// entry without refint still names a DN that resolves to nothing) or never report the group
// changed (slapd's refint rewrite changes neither entryCSN nor modifyTimestamp).
//
// A group upserts restates loses them from its member list; any other group that lists them
// (the member index says which) gets a member edit naming only them, so a deletion costs as
// much whatever the size of its groups.
func PruneMembers(ctx context.Context, store Store, upserts []*scim.Resource, deletes []string, edits Edits) error {
	if len(deletes) == 0 {
		return nil
	}
	gone := make(map[string]bool, len(deletes))
	for _, id := range deletes {
		gone[id] = true
	}
	queued := map[string]bool{}
	for _, r := range upserts {
		if r.Type == scim.GroupType {
			queued[r.ID] = true
			if slices.ContainsFunc(r.Members, func(m scim.Member) bool { return gone[m.Value] }) {
				// A copy: a resource from a plan's dry-run store shares its members with the plan.
				r.Members = slices.DeleteFunc(slices.Clone(r.Members), func(m scim.Member) bool { return gone[m.Value] })
			}
		}
	}
	for _, id := range deletes {
		groups, err := store.GroupsOf(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if !gone[g.ID] && !queued[g.ID] {
				edits.Remove(g.ID, id)
			}
		}
	}
	return nil
}

// AddMembers adds the members of held that r does not list. r.Members is sorted by id with one
// member per id, and stays so.
func AddMembers(r *scim.Resource, held []scim.Member) {
	if len(held) == 0 {
		return
	}
	cmp := func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) }
	var add []scim.Member
	for _, m := range held {
		if _, found := slices.BinarySearchFunc(r.Members, m, cmp); !found {
			add = append(add, m)
		}
	}
	if len(add) == 0 {
		return
	}
	// A new slice: a resource from a plan's dry-run store shares its members with the plan.
	ms := make([]scim.Member, 0, len(r.Members)+len(add))
	ms = append(append(ms, r.Members...), add...)
	slices.SortStableFunc(ms, cmp)
	r.Members = ms
}
