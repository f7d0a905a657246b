package ingest_test

import (
	"context"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

var quiet = slog.New(slog.DiscardHandler)

// seed stores users 1..nu and groups 1..ng (each group lists every user).
func seed(t *testing.T, st *cache.Store, nu, ng int) {
	t.Helper()
	var rs []*scim.Resource
	var all []string
	for i := 1; i <= nu; i++ {
		rs = append(rs, user(i, ""))
		all = append(all, uid('u', i))
	}
	for i := 1; i <= ng; i++ {
		rs = append(rs, group(i, all...))
	}
	apply(t, st, cache.Batch{Upserts: rs})
}

// Users and groups are counted apart: deleting both groups is held even though it is few
// next to the users, while the user deletions below the threshold go ahead.
func TestDecideCountsUsersAndGroupsApart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 100, 2)
	d := ingest.NewDeletions()
	d.Mark(uid('u', 1), scim.UserType)
	d.Mark(uid('u', 2), scim.UserType)
	d.Mark(uid('g', 1), scim.GroupType)
	d.Mark(uid('g', 2), scim.GroupType)
	th := ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 5}
	dec, err := d.Decide(ctx, st, th, "p1", "", false, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Held[scim.UserType] || !dec.Held[scim.GroupType] || dec.HeldCount != 2 {
		t.Errorf("held %v (%d), want the groups only", dec.Held, dec.HeldCount)
	}
	if want := []string{uid('u', 1), uid('u', 2)}; !reflect.DeepEqual(dec.Deletes, want) {
		t.Errorf("deletes %v, want %v", dec.Deletes, want)
	}
	if len(dec.Holds) != 2 || dec.Holds[0].ID != uid('g', 1) || dec.Holds[0].Name != "Group 1" ||
		!strings.HasPrefix(dec.Holds[0].Reason, ingest.ReasonDelete+": pass would delete or deactivate 2 of 2 groups") {
		t.Errorf("holds %+v", dec.Holds)
	}
}

// Deactivations count with user deletions; held ones stay active with their other changes.
func TestDecideHoldsDeactivationsWithDeletions(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 20, 0)
	d := ingest.NewDeletions()
	d.Mark(uid('u', 1), scim.UserType)
	off := user(2, "")
	off.Attributes["active"] = false
	off.Attributes["title"] = "changed"
	d.Deactivate(off)
	th := ingest.Threshold{MaxDeletes: 1, MaxDeletePercent: 100}
	dec, err := d.Decide(ctx, st, th, "p1", "", false, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Held[scim.UserType] || dec.HeldCount != 2 || len(dec.Deletes) != 0 {
		t.Fatalf("decision %+v: want both held", dec)
	}
	if len(dec.Upserts) != 1 || !dec.Upserts[0].Active() || dec.Upserts[0].Attributes["title"] != "changed" {
		t.Errorf("held deactivation upserts %+v: want it active with its change", dec.Upserts)
	}
	if !reflect.DeepEqual(dec.KeptActive, []string{off.ID}) {
		t.Errorf("kept active %v", dec.KeptActive)
	}
	// Forget drops the deletions (a partial read) but keeps the deactivation.
	d.Forget()
	dec, err = d.Decide(ctx, st, th, "p2", "", false, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Held[scim.UserType] || len(dec.Upserts) != 1 {
		t.Errorf("after Forget: %+v, want one deactivation applied", dec)
	}
	// holdUsers holds even under the threshold.
	if dec, err = d.Decide(ctx, st, th, "p3", "", true, quiet); err != nil || !dec.Held[scim.UserType] {
		t.Errorf("holdUsers did not hold: %+v, %v", dec, err)
	}
}

func TestHoldSetAndKeptHolds(t *testing.T) {
	a := cache.Hold{ID: "a", Reason: "delete: x"}
	bm := cache.Hold{ID: "b", Kind: cache.HoldMembers, Members: []string{"m"}}
	b := cache.Hold{ID: "b", Reason: "delete: y"}
	old := []cache.Hold{a, b, bm}
	if got := ingest.HoldSet([]cache.Hold{bm, a, b}, old, false); got != nil {
		t.Errorf("an unchanged set is rewritten: %v", *got)
	}
	if got := ingest.HoldSet([]cache.Hold{bm, b, a}, old, true); got == nil || !reflect.DeepEqual(*got, old) {
		t.Errorf("replace: %v, want %v sorted", got, old)
	}
	if got := ingest.HoldSet(nil, old, false); got == nil || len(*got) != 0 || *got == nil {
		t.Errorf("an emptied set: %v, want an empty non-nil set", got)
	}
	d := ingest.NewDeletions()
	d.Mark("b", scim.UserType)
	kept := d.KeptHolds([]cache.Hold{a, b, {ID: "c"}}, func(id string) bool { return id == "c" })
	if len(kept) != 1 || kept[0].ID != "a" {
		t.Errorf("kept %v, want a (b is deleted, c read again)", kept)
	}
}

// Held users keep their groups and reports; held groups keep their parents.
func TestHeldRefsKeepMembershipsAndManagers(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	boss, rep, other := user(1, ""), user(2, uid('u', 1)), user(3, "")
	inner := group(2, boss.ID)
	apply(t, st, cache.Batch{Upserts: []*scim.Resource{boss, rep, other, inner, group(1, boss.ID, other.ID, inner.ID)}})
	var h ingest.HeldRefs
	th := ingest.Threshold{MaxDeletes: 0, MaxDeletePercent: 100}
	if err := h.Load(ctx, st, th, "", nil, 0); err != nil || h.Any() {
		t.Fatalf("nothing unread: held %v, %v", h.Any(), err)
	}
	if err := h.Load(ctx, st, th, "", []string{boss.ID}, 0); err != nil || !h.Any() {
		t.Fatalf("boss unread: held %v, %v", h.Any(), err)
	}
	if m, ok := h.Manager(rep.ID); !ok || m.ID != boss.ID || m.Display != "User 1" {
		t.Errorf("held manager %+v, %v", m, ok)
	}
	if _, ok := h.Manager(other.ID); ok {
		t.Error("a report of nobody held has a held manager")
	}
	read := group(1, other.ID) // the group as read: boss and inner are gone from its list
	h.KeepMembers(read)
	d := ingest.NewDeletions()
	d.Mark(inner.ID, scim.GroupType)
	if err := d.KeepHeldGroups(ctx, st, []*scim.Resource{read}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range read.Members {
		got = append(got, m.Value)
	}
	if want := []string{uid('g', 2), boss.ID, other.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("group keeps %v, want %v", got, want)
	}
	// Under the threshold nothing is held.
	var h2 ingest.HeldRefs
	if err := h2.Load(ctx, st, ingest.Threshold{MaxDeletes: 5, MaxDeletePercent: 100}, "", []string{boss.ID}, 0); err != nil || h2.Any() {
		t.Errorf("under the threshold: held %v, %v", h2.Any(), err)
	}
}
