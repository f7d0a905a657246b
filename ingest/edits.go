package ingest

import (
	"maps"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Edits gathers the member changes a batch makes to groups it does not restate, one
// cache.MemberEdit per group, so a change of k members of a group costs O(k) whatever the
// group's size. A removal wins over a set of the same member: a member removed (deleted, or no
// longer matching a rule) is not brought back by a rename of it in the same batch.
type Edits map[string]*memberEdit

type memberEdit struct {
	remove map[string]bool
	set    map[string]scim.Member
}

func (e Edits) of(gid string) *memberEdit {
	ed := e[gid]
	if ed == nil {
		ed = &memberEdit{remove: map[string]bool{}, set: map[string]scim.Member{}}
		e[gid] = ed
	}
	return ed
}

// Remove drops member id from group gid.
func (e Edits) Remove(gid, id string) {
	ed := e.of(gid)
	ed.remove[id] = true
	delete(ed.set, id)
}

// Set adds m to group gid, or changes its type or display, unless the batch removes it.
func (e Edits) Set(gid string, m scim.Member) {
	ed := e.of(gid)
	if !ed.remove[m.Value] {
		ed.set[m.Value] = m
	}
}

// List returns the edits sorted by group, each with its ids sorted.
func (e Edits) List() []cache.MemberEdit {
	var out []cache.MemberEdit
	for _, gid := range slices.Sorted(maps.Keys(e)) {
		ed := e[gid]
		if len(ed.remove)+len(ed.set) == 0 {
			continue
		}
		me := cache.MemberEdit{Group: gid, Remove: slices.Sorted(maps.Keys(ed.remove))}
		for _, id := range slices.Sorted(maps.Keys(ed.set)) {
			me.Set = append(me.Set, ed.set[id])
		}
		out = append(out, me)
	}
	return out
}

// SortedByID returns members sorted by id, copying only when they are not.
func SortedByID(ms []scim.Member) []scim.Member {
	cmp := func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) }
	if slices.IsSortedFunc(ms, cmp) {
		return ms
	}
	out := slices.Clone(ms)
	slices.SortStableFunc(out, cmp)
	return out
}
