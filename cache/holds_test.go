package cache

import (
	"context"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// A members hold and a deletion hold of the same group are stored under distinct keys, and
// Holds returns them sorted by id, the deletion hold first.
func TestMembersHoldDoesNotCollideWithDeletionHold(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	holds := []Hold{
		{ID: "g1", Type: scim.GroupType, Kind: HoldMembers, Members: []string{"u1", "u2"}},
		{ID: "g1", Type: scim.GroupType, Reason: "delete"},
		{ID: "a0", Type: scim.UserType},
	}
	mustApply(t, s, Batch{Holds: &holds})
	got, err := s.Holds(ctx)
	if err != nil || len(got) != 3 {
		t.Fatalf("holds %+v, %v", got, err)
	}
	if got[0].ID != "a0" || got[1].Kind != "" || got[2].Kind != HoldMembers || len(got[2].Members) != 2 {
		t.Fatalf("holds %+v", got)
	}
	st, err := s.Stats(ctx)
	if err != nil || st.Holds != 3 {
		t.Fatalf("stats %+v, %v", st, err)
	}
	mustApply(t, s, Batch{Holds: &[]Hold{}})
	if got, _ := s.Holds(ctx); len(got) != 0 {
		t.Fatalf("holds after replacing with none: %+v", got)
	}
}
