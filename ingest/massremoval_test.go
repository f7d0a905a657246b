package ingest_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// A group read with most of its members gone keeps them and gets a members hold; members the
// pass deletes do not count.
func TestMemberHoldsCheck(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 40, 1)
	th := ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 10}
	mh := ingest.NewMemberHolds(th, "p1", quiet)
	gid := uid('g', 1)
	read := group(1, uid('u', 1), uid('u', 2)) // 38 of 40 removed
	deleted := map[string]bool{uid('u', 3): true}
	if err := mh.Check(ctx, st, read, func(m scim.Member) bool { return deleted[m.Value] }); err != nil {
		t.Fatal(err)
	}
	if len(read.Members) != 39 {
		t.Errorf("group keeps %d members, want 39 (all but the deleted one)", len(read.Members))
	}
	hs := mh.List()
	if len(hs) != 1 || hs[0].ID != gid || hs[0].Kind != cache.HoldMembers || len(hs[0].Members) != 37 {
		t.Fatalf("holds %+v, want one members hold of 37", hs)
	}
	// Checked again with few removals: the hold goes.
	small := group(1)
	for i := 1; i <= 35; i++ {
		small.Members = append(small.Members, scim.Member{Value: uid('u', i), Type: scim.UserType})
	}
	if err := mh.Check(ctx, st, small, func(scim.Member) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if len(mh.List()) != 0 || len(small.Members) != 35 {
		t.Errorf("5 of 40 removed: holds %v, members %d", mh.List(), len(small.Members))
	}
}

// A member edit's removals are held the same way, and the edit loses them.
func TestMemberHoldsCheckEdit(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 40, 1)
	gid := uid('g', 1)
	mh := ingest.NewMemberHolds(ingest.Threshold{MaxDeletes: 1000, MaxDeletePercent: 10}, "p1", quiet)
	remove := map[string]bool{"not-a-member": true}
	for i := 1; i <= 20; i++ {
		remove[uid('u', i)] = true
	}
	named := 0
	name := func() string { named++; return "Group 1" }
	if err := mh.CheckEdit(ctx, st, gid, "cn=g1", name, remove, func(id string) bool { return id == uid('u', 1) }); err != nil {
		t.Fatal(err)
	}
	if len(remove) != 1 || !remove["not-a-member"] {
		t.Errorf("edit still removes %v, want only the id that is not a member", remove)
	}
	hs := mh.List()
	if len(hs) != 1 || len(hs[0].Members) != 19 || hs[0].Name != "Group 1" || named != 1 || hs[0].Members[0] != uid('u', 2) {
		t.Errorf("holds %+v (named %d times)", hs, named)
	}
	// Few removals: nothing held, the group not even named.
	few := map[string]bool{uid('u', 5): true}
	if err := mh.CheckEdit(ctx, st, gid, "cn=g1", name, few, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	if len(mh.List()) != 0 || !reflect.DeepEqual(few, map[string]bool{uid('u', 5): true}) || named != 1 {
		t.Errorf("one removal: holds %v, edit %v, named %d", mh.List(), few, named)
	}
}

func TestMemberHoldsHeldBefore(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	holds := []cache.Hold{{ID: "g1", Kind: cache.HoldMembers, Members: []string{"x"}}, {ID: "g2"}}
	apply(t, st, cache.Batch{Holds: &holds})
	mh := ingest.NewMemberHolds(ingest.Threshold{}, "p", quiet)
	for id, want := range map[string]bool{"g1": true, "g2": false, "g3": false} {
		if got, err := mh.HeldBefore(ctx, st, id); err != nil || got != want {
			t.Errorf("HeldBefore(%s) = %v, %v; want %v", id, got, err, want)
		}
	}
}
