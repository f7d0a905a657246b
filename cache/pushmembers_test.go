package cache

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// Member keys of a target's group: written with the outcome in one transaction when few, in
// slices after an uncertain mark when many; read in pages, by id and streamed; dropped with
// the state.
func TestRecordPushMemberKeys(t *testing.T) {
	st := openMem(t)
	st.memberSlice = 10
	ctx := context.Background()
	mid := func(i int) string { return fmt.Sprintf("m%04d", i) }
	var add []SentMember
	for i := range 35 {
		add = append(add, SentMember{ID: mid(i), TargetID: "t" + mid(i)})
	}
	gs := &PushState{Type: scim.GroupType, TargetID: "tg", Hash: "h1", Active: true}
	// Few: one transaction.
	if err := st.RecordPush(ctx, "x", []PushOutcome{{ID: "g", State: gs, SentAdded: add[:4]}}); err != nil {
		t.Fatal(err)
	}
	// Many: slices, the state last.
	if err := st.RecordPush(ctx, "x", []PushOutcome{{ID: "g", State: gs, SentAdded: add[4:], SentRemoved: []string{mid(1)}}}); err != nil {
		t.Fatal(err)
	}
	all, err := st.SentMembers(ctx, "x", "g", "", 0)
	if err != nil || len(all) != 34 || all[0].ID != mid(0) || all[1].ID != mid(2) || all[1].TargetID != "t"+mid(2) {
		t.Fatalf("sent members %v %+v", err, all[:2])
	}
	page, _ := st.SentMembers(ctx, "x", "g", mid(2), 5)
	if len(page) != 5 || page[0].ID != mid(3) {
		t.Fatalf("page %+v", page)
	}
	n := 0
	if err := st.ForEachSentMember(ctx, "x", "g", func(SentMember) error { n++; return nil }); err != nil || n != 34 {
		t.Fatalf("streamed %d, %v", n, err)
	}
	got, _ := st.SentMemberIDs(ctx, "x", "g", []string{mid(1), mid(7), "nope"})
	if len(got) != 1 || got[mid(7)] != "t"+mid(7) {
		t.Fatalf("by id %v", got)
	}
	if s, _ := st.PushStates(ctx, "x", []string{"g"}); s["g"].Hash != "h1" {
		t.Fatalf("state after the slices %+v", s["g"])
	}
	// Another target's keys are apart.
	if other, _ := st.SentMembers(ctx, "y", "g", "", 0); len(other) != 0 {
		t.Fatalf("target y sees %d", len(other))
	}
	// The uncertain mark, as a crash between slices leaves it.
	if _, err := st.write(func(w *writer) error { return w.markUncertain("x", "g") }); err != nil {
		t.Fatal(err)
	}
	if s, _ := st.PushStates(ctx, "x", []string{"g"}); s["g"].Hash != "" || s["g"].TargetID != "tg" {
		t.Fatalf("marked state %+v", s["g"])
	}
	// Dropping the state drops every member key, in slices.
	if err := st.RecordPush(ctx, "x", []PushOutcome{{ID: "g", DropState: true}}); err != nil {
		t.Fatal(err)
	}
	if all, _ := st.SentMembers(ctx, "x", "g", "", 0); len(all) != 0 {
		t.Fatalf("%d member keys left", len(all))
	}
	if s, _ := st.PushStates(ctx, "x", []string{"g"}); len(s) != 0 {
		t.Fatalf("state left %+v", s)
	}
	// A few keys go in the same transaction as the rest.
	if err := st.RecordPush(ctx, "x", []PushOutcome{{ID: "g", State: gs, SentAdded: add[:3]}}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordPush(ctx, "x", []PushOutcome{{ID: "g", State: gs, DropSent: true, SentAdded: add[5:7]}}); err != nil {
		t.Fatal(err)
	}
	if all, _ := st.SentMembers(ctx, "x", "g", "", 0); len(all) != 2 || all[0].ID != mid(5) {
		t.Fatalf("after drop and add %+v", all)
	}
	if _, largest, _, err := st.PushValueSizes(ctx, "x"); err != nil || largest > 200 {
		t.Fatalf("largest push value %d, %v", largest, err)
	}
}

func TestAuditAtAndMemberSet(t *testing.T) {
	st := openMem(t)
	ctx := context.Background()
	mustApply(t, st, Batch{Upserts: append(users(0, 3), group(0, 0, 1))})
	mustApply(t, st, Batch{MemberEdits: []MemberEdit{{Group: groupID(0), Remove: []string{userID(0)}, Set: []scim.Member{{Value: userID(2), Type: scim.UserType}}}}})
	recs := mustJournal(t, st, 0)
	last := recs[len(recs)-1]
	a, err := st.AuditAt(ctx, groupID(0), last.Seq)
	if err != nil || len(a.Diff) == 0 || a.Diff[0].Path != "members" {
		t.Fatalf("audit at %d: %+v, %v", last.Seq, a, err)
	}
	if _, err := st.AuditAt(ctx, groupID(0), last.Seq+100); err != ErrNotFound {
		t.Fatalf("missing audit: %v", err)
	}
	is, err := st.MemberSet(ctx, groupID(0), []string{userID(0), userID(1), userID(2)})
	if err != nil || len(is) != 2 || !is[userID(1)] || !is[userID(2)] {
		t.Fatalf("member set %v, %v", is, err)
	}
}
