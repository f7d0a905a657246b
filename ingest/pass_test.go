package ingest_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// A delta pass through the core: a rename refreshes the copies others hold (a member's
// display, a report's manager), a deactivation is set aside and applied at the end, a
// deletion leaves its groups; everything lands in one batch.
func TestPassLastBatchOfADelta(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 20, 0)
	boss, rep := user(1, ""), user(2, uid('u', 1))
	g := group(1, uid('u', 1), uid('u', 2), uid('u', 4))
	apply(t, st, cache.Batch{Upserts: []*scim.Resource{boss, rep, g},
		SourceHashes: map[string][]byte{rep.ID: ingest.SourceRecord{Digest: [16]byte{7}, Manager: cache.Ref{ID: boss.ID, Display: "User 1"}}.Encode()}})

	c := ingest.NewPass("delta-1", "test", st, ingest.Threshold{MaxDeletes: 10, MaxDeletePercent: 50}, nil, true, quiet)
	renamed := user(1, "")
	renamed.Attributes["displayName"] = "Boss New"
	off := user(3, "")
	off.Attributes["active"] = false
	var upserts []*scim.Resource
	for _, r := range []*scim.Resource{renamed, off} {
		aside, err := c.Queue(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !aside {
			upserts = append(upserts, r)
		}
	}
	if len(upserts) != 1 || c.Dels.Deactivations() != 1 {
		t.Fatalf("queued %d, set aside %d: want the deactivation set aside", len(upserts), c.Dels.Deactivations())
	}
	c.Dels.Mark(uid('u', 4), scim.UserType)
	read := map[string]bool{renamed.ID: true, off.ID: true}
	b, held, _, err := c.Last(ctx, ingest.Tail{Upserts: upserts, Sources: map[string][]byte{}, Read: func(id string) bool { return read[id] }})
	if err != nil {
		t.Fatal(err)
	}
	if held != 0 || !reflect.DeepEqual(b.Deletes, []string{uid('u', 4)}) || b.Holds != nil {
		t.Fatalf("held %d, deletes %v, holds %v", held, b.Deletes, b.Holds)
	}
	want := []cache.MemberEdit{{Group: g.ID, Remove: []string{uid('u', 4)},
		Set: []scim.Member{{Value: boss.ID, Type: scim.UserType, Display: "Boss New"}}}}
	if !reflect.DeepEqual(b.MemberEdits, want) {
		t.Errorf("member edits %+v, want %+v", b.MemberEdits, want)
	}
	apply(t, st, b)
	if r, err := st.Get(ctx, scim.UserType, off.ID); err != nil || r.Active() {
		t.Errorf("deactivation not applied: %v", err)
	}
	r, err := st.Get(ctx, scim.UserType, rep.ID)
	if err != nil {
		t.Fatal(err)
	}
	mgr, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)["manager"].(map[string]any)
	if mgr["displayName"] != "Boss New" {
		t.Errorf("the report's manager is %v, want the new display", mgr)
	}
	srcs, _ := st.SourceHashes(ctx, []string{rep.ID})
	if rec, ok := ingest.DecodeSource(srcs[rep.ID]); !ok || rec.Manager.Display != "Boss New" || rec.Digest != [16]byte{7} {
		t.Errorf("the report's source record %+v", rec)
	}
}

// Over the threshold the deletion is held: nothing is deleted, the group keeps the member.
func TestPassLastHoldsOverTheThreshold(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	seed(t, st, 5, 1)
	c := ingest.NewPass("full-1", "test", st, ingest.Threshold{MaxDeletes: 0, MaxDeletePercent: 0}, nil, false, quiet)
	c.Dels.Mark(uid('u', 1), scim.UserType)
	read := func(id string) bool { return id != uid('u', 1) }
	b, held, _, err := c.Last(ctx, ingest.Tail{ReplaceHolds: true, Read: read})
	if err != nil {
		t.Fatal(err)
	}
	if held != 1 || len(b.Deletes) != 0 || b.Holds == nil || len(*b.Holds) != 1 || len(b.MemberEdits) != 0 {
		t.Fatalf("held %d, deletes %v, holds %v, edits %v", held, b.Deletes, b.Holds, b.MemberEdits)
	}
	apply(t, st, b)
	if n := len(memberIDs(t, st, uid('g', 1))); n != 5 {
		t.Errorf("group has %d members, want 5", n)
	}
}
