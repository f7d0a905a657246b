package ingest

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// VirtualGroups accumulates, over one pass, which users the [[rules]] put in which virtual
// group, and brings the groups up to date at the end of the pass. Use one per pass; the zero
// value of *VirtualGroups (nil rules) does nothing.
type VirtualGroups struct {
	rules *Rules
	in    map[string][]scim.Member // virtual group id → users this pass found matching
	out   map[string][]string      // virtual group id → users this pass found not matching
}

// NewVirtualGroups returns an empty accumulator for rs (nil: no rules).
func NewVirtualGroups(rs *Rules) *VirtualGroups {
	return &VirtualGroups{rules: rs, in: map[string][]scim.Member{}, out: map[string][]string{}}
}

// Eval runs the rules on a user about to be written (adding the roles of the rules it
// matches) and records its virtual memberships. Other resource types are left alone.
func (v *VirtualGroups) Eval(u *scim.Resource) {
	if v.rules == nil || len(v.rules.list) == 0 || u.Type != scim.UserType {
		return
	}
	in := v.rules.Apply(u)
	m := scim.Member{Value: u.ID, Type: scim.UserType, Display: DisplayOf(u)}
	for _, id := range v.rules.groups {
		if in[id] {
			v.in[id] = append(v.in[id], m)
		} else {
			v.out[id] = append(v.out[id], u.ID)
		}
	}
}

// Build brings every virtual group up to date with the users this pass evaluated: the cached
// members, minus those that no longer match, plus those that do. Users the pass did not
// evaluate (unchanged) keep their membership.
//
// A cached group gets a member edit (in edits) naming only the users evaluated in this pass, so
// its other members are neither read nor written, whatever their number. Only a group that is
// new, or whose display name changed (the same name in another case), is restated as a whole,
// its cached members streamed; Build returns those.
func (v *VirtualGroups) Build(ctx context.Context, store Store, edits Edits) ([]*scim.Resource, error) {
	if v.rules == nil {
		return nil, nil
	}
	var out []*scim.Resource
	for _, name := range slices.Sorted(maps.Keys(v.rules.groups)) {
		id := v.rules.groups[name]
		// The users evaluated in this pass: in wins when one was evaluated twice, as before.
		in := make(map[string]scim.Member, len(v.in[id]))
		for _, m := range v.in[id] {
			in[m.Value] = m
		}
		ref, err := store.Ref(ctx, id)
		switch {
		case err == nil && ref.Type == scim.GroupType && ref.Display == name:
			for _, uid := range v.out[id] {
				if _, ok := in[uid]; !ok {
					edits.Remove(id, uid)
				}
			}
			for _, uid := range slices.Sorted(maps.Keys(in)) {
				edits.Set(id, in[uid])
			}
			continue
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return nil, err
		}
		g := &scim.Resource{Type: scim.GroupType, ID: id, Attributes: map[string]any{"displayName": name}}
		if err == nil {
			left := make(map[string]bool, len(v.out[id]))
			for _, uid := range v.out[id] {
				left[uid] = true
			}
			err := store.ForEachMember(ctx, id, "", func(m scim.Member) error {
				if _, ok := in[m.Value]; !ok && !left[m.Value] {
					g.Members = append(g.Members, m)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		for _, m := range in {
			g.Members = append(g.Members, m)
		}
		slices.SortFunc(g.Members, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
		out = append(out, g)
	}
	return out, nil
}
