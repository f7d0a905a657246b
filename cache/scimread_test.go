package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// groupsOfOne is GroupsOfMany for one member, as "id:display" strings.
func groupsOfOne(t *testing.T, s *Store, id string) []string {
	t.Helper()
	m, err := s.GroupsOfMany(context.Background(), []string{id})
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, r := range m[id] {
		out = append(out, r.ID+":"+r.Display)
	}
	return out
}

// TestGroupsOfManyRefsFollowWrites: GroupsOfMany keeps the group refs it read for the journal
// head; a renamed, deleted or new group (also one written in member slices) is seen at once.
func TestGroupsOfManyRefsFollowWrites(t *testing.T) {
	s := openMem(t)
	s.memberSlice = 3
	mustApply(t, s, Batch{Source: "t", Upserts: []*scim.Resource{user(1), user(2), group(1, 1, 2), group(2, 1)}})
	want := fmt.Sprint([]string{groupID(1) + ":Group 1", groupID(2) + ":Group 2"})
	for range 2 { // the second read takes the refs from the cache
		if got := fmt.Sprint(groupsOfOne(t, s, userID(1))); got != want {
			t.Fatalf("groups of user 1: %s, want %s", got, want)
		}
	}
	if s.refs.head == 0 || len(s.refs.m) != 2 {
		t.Fatalf("ref cache at head %d holds %d refs, want 2 (the test is not testing the cache)", s.refs.head, len(s.refs.m))
	}

	renamed := group(1, 1, 2)
	renamed.Attributes["displayName"] = "Renamed"
	mustApply(t, s, Batch{Source: "t", Upserts: []*scim.Resource{renamed}})
	if got, want := fmt.Sprint(groupsOfOne(t, s, userID(2))), fmt.Sprint([]string{groupID(1) + ":Renamed"}); got != want {
		t.Errorf("after the rename: %s, want %s", got, want)
	}

	mustApply(t, s, Batch{Source: "t", Deletes: []string{groupID(2)}})
	if got, want := fmt.Sprint(groupsOfOne(t, s, userID(1))), fmt.Sprint([]string{groupID(1) + ":Renamed"}); got != want {
		t.Errorf("after deleting group 2: %s, want %s", got, want)
	}

	// A group of 8 members goes in slices of 3 member changes, each its own transaction.
	var big []int
	for i := 1; i <= 8; i++ {
		big = append(big, i)
	}
	ups := []*scim.Resource{group(3, big...)}
	for i := 3; i <= 8; i++ {
		ups = append(ups, user(i))
	}
	mustApply(t, s, Batch{Source: "t", Upserts: ups[1:]})
	groupsOfOne(t, s, userID(8)) // caches the refs of the current head
	mustApply(t, s, Batch{Source: "t", Upserts: ups[:1]})
	if got, want := fmt.Sprint(groupsOfOne(t, s, userID(8))), fmt.Sprint([]string{groupID(3) + ":Group 3"}); got != want {
		t.Errorf("after adding the big group: %s, want %s", got, want)
	}
	grown := group(3, big...)
	grown.Attributes["displayName"] = "Big"
	mustApply(t, s, Batch{Source: "t", Upserts: []*scim.Resource{grown}})
	want = fmt.Sprint([]string{groupID(1) + ":Renamed", groupID(3) + ":Big"})
	if got := fmt.Sprint(groupsOfOne(t, s, userID(1))); got != want {
		t.Errorf("after renaming the big group: %s, want %s", got, want)
	}
}

// TestGroupRefsKeepsOneHead: refs of an older head never replace a newer head's, and a full
// cache starts over.
func TestGroupRefsKeepsOneHead(t *testing.T) {
	var c groupRefs
	c.put(2, map[string]refRecord{"g": {tb: 'G', display: "new"}})
	c.put(1, map[string]refRecord{"g": {tb: 'G', display: "old"}, "h": {tb: 'G', display: "old"}})
	if rec, ok := c.get(2, "g"); !ok || rec.display != "new" {
		t.Errorf("get(2, g) = %+v, %v; want new", rec, ok)
	}
	if _, ok := c.get(1, "h"); ok {
		t.Error("a ref of an older head was kept")
	}
	if _, ok := c.get(3, "g"); ok {
		t.Error("a ref was returned for another head")
	}
	full := map[string]refRecord{}
	for i := range maxGroupRefs {
		full[fmt.Sprint(i)] = refRecord{tb: 'G'}
	}
	c.put(2, full)
	if len(c.m) > maxGroupRefs {
		t.Errorf("%d refs held, bound %d", len(c.m), maxGroupRefs)
	}
}
