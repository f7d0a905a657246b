package cache

import (
	"context"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

func nest(g *scim.Resource, groups ...int) *scim.Resource {
	for _, i := range groups {
		g.Members = append(g.Members, scim.Member{Value: groupID(i), Type: scim.GroupType})
	}
	return g
}

func refIDs(refs []Ref) []string {
	out := []string{}
	for _, r := range refs {
		out = append(out, r.ID)
	}
	return out
}

func TestTransitiveGroupsOfThreeLevelsAndCycle(t *testing.T) {
	s := openMem(t)
	ctx := context.Background()
	// user 1 ∈ group 1 ∈ group 2 ∈ group 3; groups 4 → 5 → 4 form a cycle that user 2 is in.
	mustApply(t, s, Batch{Source: "t", Upserts: []*scim.Resource{
		user(1), user(2), user(3),
		group(1, 1), nest(group(2), 1), nest(group(3), 2),
		group(4, 2), nest(group(5), 4), nest(group(4, 2), 5),
	}})
	got, err := s.TransitiveGroupsOf(ctx, userID(1))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{groupID(1), groupID(2), groupID(3)}; !reflect.DeepEqual(refIDs(got), want) {
		t.Errorf("user 1: %v, want %v", refIDs(got), want)
	}
	if got[2].Display != "Group 3" || got[2].Type != scim.GroupType {
		t.Errorf("ref %+v lacks display or type", got[2])
	}
	direct, _ := s.GroupsOf(ctx, userID(1))
	if want := []string{groupID(1)}; !reflect.DeepEqual(refIDs(direct), want) {
		t.Errorf("direct groups of user 1: %v, want %v", refIDs(direct), want)
	}
	got, err = s.TransitiveGroupsOf(ctx, userID(2))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{groupID(4), groupID(5)}; !reflect.DeepEqual(refIDs(got), want) {
		t.Errorf("user 2 (cycle): %v, want %v", refIDs(got), want)
	}
	got, _ = s.TransitiveGroupsOf(ctx, groupID(4))
	if want := []string{groupID(4), groupID(5)}; !reflect.DeepEqual(refIDs(got), want) {
		t.Errorf("group 4 in its own cycle: %v, want %v", refIDs(got), want)
	}
	if got, _ := s.TransitiveGroupsOf(ctx, userID(3)); got == nil || len(got) != 0 {
		t.Errorf("user 3: %v, want an empty slice", got)
	}
	many, err := s.TransitiveGroupsOfMany(ctx, []string{userID(1), userID(2), userID(3)})
	if err != nil || len(many) != 2 || len(many[userID(1)]) != 3 || len(many[userID(2)]) != 2 {
		t.Errorf("many: %v, %v", many, err)
	}
	// Deleting the middle group cuts the chain.
	mustApply(t, s, Batch{Source: "t", Deletes: []string{groupID(2)}})
	got, _ = s.TransitiveGroupsOf(ctx, userID(1))
	if want := []string{groupID(1)}; !reflect.DeepEqual(refIDs(got), want) {
		t.Errorf("after deleting group 2: %v, want %v", refIDs(got), want)
	}
}
