package ingest_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

func TestThreshold(t *testing.T) {
	th := ingest.Threshold{MaxDeletes: 3, MaxDeletePercent: 10}
	for _, tc := range []struct {
		n, total int
		want     bool
	}{{0, 0, false}, {1, 100, false}, {3, 100, false}, {4, 100, true}, {2, 10, true}, {1, 10, false}, {11, 1000, true}} {
		if got := th.Over(tc.n, tc.total); got != tc.want {
			t.Errorf("Over(%d, %d) = %v, want %v", tc.n, tc.total, got, tc.want)
		}
	}
	// A mass removal ignores MaxDeletes and always allows MassRemovalFloor.
	for _, tc := range []struct {
		n, total int
		want     bool
	}{{ingest.MassRemovalFloor, ingest.MassRemovalFloor, false}, {11, 12, true}, {11, 200, false}, {50, 400, true}} {
		if got := th.MassRemoval(tc.n, tc.total); got != tc.want {
			t.Errorf("MassRemoval(%d, %d) = %v, want %v", tc.n, tc.total, got, tc.want)
		}
	}
}

func TestSourceRecordRoundTrip(t *testing.T) {
	for _, rec := range []ingest.SourceRecord{
		{Digest: [16]byte{1, 2, 3}},
		{Digest: [16]byte{0xff}, Manager: cache.Ref{ID: uid('u', 7), Type: scim.UserType, Display: "Ann Smith"}},
	} {
		got, ok := ingest.DecodeSource(rec.Encode())
		if !ok || got != rec {
			t.Errorf("DecodeSource(Encode(%+v)) = %+v, %v", rec, got, ok)
		}
		enc, ok := ingest.WithManager(rec.Encode(), cache.Ref{ID: "m", Display: "M"})
		got, _ = ingest.DecodeSource(enc)
		if !ok || got.Digest != rec.Digest || got.Manager.ID != "m" || got.Manager.Display != "M" {
			t.Errorf("WithManager kept %+v, want the digest and manager m", got)
		}
	}
	if _, ok := ingest.DecodeSource([]byte("short")); ok {
		t.Error("a short value decodes")
	}
	if _, ok := ingest.WithManager(nil, cache.Ref{}); ok {
		t.Error("WithManager of no record succeeds")
	}
}

func TestEditsRemovalWins(t *testing.T) {
	e := ingest.Edits{}
	e.Set("g2", scim.Member{Value: "b"})
	e.Set("g1", scim.Member{Value: "x", Display: "X"})
	e.Remove("g1", "x")
	e.Set("g1", scim.Member{Value: "x", Display: "renamed"}) // a rename does not bring it back
	e.Set("g1", scim.Member{Value: "a"})
	e.Remove("g3", "z")
	e.Set("g3", scim.Member{Value: "z"})
	want := []cache.MemberEdit{
		{Group: "g1", Remove: []string{"x"}, Set: []scim.Member{{Value: "a"}}},
		{Group: "g2", Remove: []string{}, Set: []scim.Member{{Value: "b"}}},
		{Group: "g3", Remove: []string{"z"}},
	}
	got := e.List()
	for i := range got {
		if got[i].Remove == nil {
			got[i].Remove = []string{}
		}
		if len(want[i].Remove) == 0 {
			want[i].Remove = []string{}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List() = %+v, want %+v", got, want)
	}
}

func TestAddMembersKeepsOrderAndCopies(t *testing.T) {
	r := group(1, uid('u', 1), uid('u', 3))
	orig := r.Members
	ingest.AddMembers(r, []scim.Member{{Value: uid('u', 2)}, {Value: uid('u', 3)}, {Value: uid('u', 0)}})
	var got []string
	for _, m := range r.Members {
		got = append(got, m.Value)
	}
	if want := []string{uid('u', 0), uid('u', 1), uid('u', 2), uid('u', 3)}; !reflect.DeepEqual(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if len(orig) != 2 || orig[0].Value != uid('u', 1) {
		t.Errorf("AddMembers changed the caller's slice: %v", orig)
	}
}

// A deleted member leaves a restated group's list and, by a member edit, every other group.
func TestPruneMembers(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	u1, u2 := user(1, ""), user(2, "")
	apply(t, st, cache.Batch{Upserts: []*scim.Resource{u1, u2, group(1, u1.ID, u2.ID), group(2, u1.ID, u2.ID)}})
	restated := group(1, u1.ID, u2.ID)
	edits := ingest.Edits{}
	if err := ingest.PruneMembers(ctx, st, []*scim.Resource{restated}, []string{u1.ID}, edits); err != nil {
		t.Fatal(err)
	}
	if len(restated.Members) != 1 || restated.Members[0].Value != u2.ID {
		t.Errorf("restated group keeps %v", restated.Members)
	}
	want := []cache.MemberEdit{{Group: uid('g', 2), Remove: []string{u1.ID}}}
	if got := edits.List(); !reflect.DeepEqual(got, want) {
		t.Errorf("edits %+v, want %+v", got, want)
	}
}

// Approving applies exactly what was held: a deletion (which drops the manager its reports
// kept and prunes it from its groups), a deactivation, a members hold; the rest stays held.
func TestApproveHolds(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	boss, rep, inactive, keep := user(1, ""), user(2, uid('u', 1)), user(3, ""), user(4, "")
	g := group(1, boss.ID, rep.ID, inactive.ID, keep.ID)
	src := ingest.SourceRecord{Digest: [16]byte{9}, Manager: cache.Ref{ID: boss.ID, Display: "User 1"}}.Encode()
	holds := []cache.Hold{
		{ID: boss.ID, Type: scim.UserType, Reason: ingest.ReasonDelete + ": test"},
		{ID: inactive.ID, Type: scim.UserType, Reason: ingest.ReasonDeactivate + ": test"},
		{ID: g.ID, Type: scim.GroupType, Kind: cache.HoldMembers, Members: []string{keep.ID}, Reason: ingest.ReasonMembers + ": test"},
		{ID: uid('u', 9), Type: scim.UserType, Reason: ingest.ReasonDelete + ": another"},
	}
	apply(t, st, cache.Batch{Upserts: []*scim.Resource{boss, rep, inactive, keep, g}, Holds: &holds,
		SourceHashes: map[string][]byte{rep.ID: src}})

	if _, err := ingest.ApproveHolds(ctx, st, "test", []string{"nope"}); err == nil {
		t.Fatal("approving an id that is not held succeeds")
	}
	if _, err := ingest.ApproveHolds(ctx, st, "test", []string{boss.ID, inactive.ID, g.ID}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, scim.UserType, boss.ID); !errors.Is(err, cache.ErrNotFound) {
		t.Errorf("held deletion not applied: %v", err)
	}
	r, err := st.Get(ctx, scim.UserType, rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Attributes[scim.SchemaEnterpriseUser]; ok {
		t.Errorf("the report keeps the deleted manager: %v", r.Attributes[scim.SchemaEnterpriseUser])
	}
	srcs, err := st.SourceHashes(ctx, []string{rep.ID})
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok := ingest.DecodeSource(srcs[rep.ID]); !ok || rec.Manager.ID != "" || rec.Digest != [16]byte{9} {
		t.Errorf("the report's source record is %+v, %v: want its digest and no manager", rec, ok)
	}
	if r, err := st.Get(ctx, scim.UserType, inactive.ID); err != nil || r.Active() {
		t.Errorf("held deactivation not applied: %v, %v", r, err)
	}
	if got, want := memberIDs(t, st, g.ID), []string{rep.ID, inactive.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("group members %v, want %v", got, want)
	}
	left, err := st.Holds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != uid('u', 9) {
		t.Errorf("holds left: %+v", left)
	}
}
