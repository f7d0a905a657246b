package cache

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// A member edit changes just the members it names: a removal, a new member, a new display. It
// costs writes in proportion to the edit, an edit that changes nothing counts the group as
// unchanged, and an edit of a group that does not exist is ignored.
func TestMemberEdits(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	members := make([]int, 2000)
	for i := range members {
		members[i] = i
	}
	mustApply(t, s, Batch{Upserts: []*scim.Resource{group(1, members...)}})
	var writes int
	s.afterCommit = func(c chunkInfo) { writes += c.writes }
	res := mustApply(t, s, Batch{MemberEdits: []MemberEdit{
		{Group: groupID(1), Remove: []string{userID(5), userID(7), "not-a-member"},
			Set: []scim.Member{{Value: userID(9), Type: scim.UserType, Display: "Renamed"}, {Value: userID(5000), Type: scim.UserType, Display: "New"}}},
		{Group: groupID(404), Remove: []string{userID(1)}},
	}})
	if res != (Result{Updated: 1, MembersAdded: 1, MembersRemoved: 2}) || writes > 20 {
		t.Fatalf("edit: %+v, %d keys written", res, writes)
	}
	n := checkGroupMembers(t, s, groupID(1))
	if n != 1999 {
		t.Fatalf("%d members after the edit, want 1999", n)
	}
	if ok, _ := s.IsMember(ctx, groupID(1), userID(5)); ok {
		t.Fatal("removed member still there")
	}
	m, _ := s.Members(ctx, groupID(1), userID(8), 1)
	if len(m) != 1 || m[0].Display != "Renamed" {
		t.Fatalf("member 9 after the edit: %+v", m)
	}
	audit, _ := s.Audit(ctx, groupID(1))
	diff := audit[len(audit)-1].Diff
	want := []AttrChange{
		{Path: "members", Old: []any{userID(5), userID(7)}, New: []any{userID(5000)}},
		{Path: "members.display", New: []any{userID(9)}},
	}
	if !reflect.DeepEqual(diff, want) {
		t.Fatalf("audit diff %+v, want %+v", diff, want)
	}
	res = mustApply(t, s, Batch{MemberEdits: []MemberEdit{{Group: groupID(1), Remove: []string{userID(5)}}}})
	if res != (Result{Unchanged: 1}) {
		t.Fatalf("an edit that changes nothing: %+v", res)
	}

	// An edit bigger than a transaction goes in slices, each journaled.
	s.memberSlice = 300
	head := mustJournalHead(t, s)
	var drop []string
	for i := 100; i < 1100; i++ {
		drop = append(drop, userID(i))
	}
	res = mustApply(t, s, Batch{MemberEdits: []MemberEdit{{Group: groupID(1), Remove: drop}}})
	if res.Updated != 1 || mustJournalHead(t, s)-head != 4 {
		t.Fatalf("big edit: %+v, %d journal records", res, mustJournalHead(t, s)-head)
	}
	if n := checkGroupMembers(t, s, groupID(1)); n != 999 {
		t.Fatalf("%d members after the big edit, want 999", n)
	}
}

// An upsert with KeepMembers writes a group's other attributes and leaves its members to the
// batch's member edits: the version still covers the members, an unchanged group is counted as
// unchanged, and a group that is not stored is refused rather than created empty.
func TestKeepMembers(t *testing.T) {
	s := openMem(t)
	mustApply(t, s, Batch{Upserts: []*scim.Resource{group(1, 1, 2, 3)}})
	before, err := s.Get(context.Background(), scim.GroupType, groupID(1))
	if err != nil {
		t.Fatal(err)
	}
	renamed := group(1)
	renamed.Attributes["displayName"] = "Renamed"
	keep := map[string]bool{groupID(1): true}
	res := mustApply(t, s, Batch{Upserts: []*scim.Resource{renamed}, KeepMembers: keep,
		MemberEdits: []MemberEdit{{Group: groupID(1), Remove: []string{userID(2)}}}})
	if res.Updated != 2 || res.MembersRemoved != 1 || res.MembersAdded != 0 {
		t.Fatalf("rename and edit: %+v", res)
	}
	if n := checkGroupMembers(t, s, groupID(1)); n != 2 {
		t.Fatalf("%d members, want 2", n)
	}
	after, err := s.Get(context.Background(), scim.GroupType, groupID(1))
	if err != nil {
		t.Fatal(err)
	}
	if after.DisplayName() != "Renamed" || after.Meta.Version == before.Meta.Version {
		t.Fatalf("after: %q version %q (before %q)", after.DisplayName(), after.Meta.Version, before.Meta.Version)
	}
	if res := mustApply(t, s, Batch{Upserts: []*scim.Resource{renamed}, KeepMembers: keep}); res != (Result{Unchanged: 1}) {
		t.Fatalf("the same attributes again: %+v", res)
	}
	if n := checkGroupMembers(t, s, groupID(1)); n != 2 {
		t.Fatalf("%d members after an unchanged upsert, want 2", n)
	}
	_, err = s.Apply(context.Background(), Batch{Upserts: []*scim.Resource{group(2)}, KeepMembers: map[string]bool{groupID(2): true}})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("keeping the members of a group not stored: %v", err)
	}
}
