package cache

import (
	"context"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// TestOverlays: an overlay is written with its user's upsert or alone with the batch's last
// transaction, read back by id, by source and by the prefix check; an overlay of a user that
// is not stored is not written; nil deletes one; deleting the user deletes its overlay.
func TestOverlays(t *testing.T) {
	ctx := context.Background()
	st := openMem(t)
	has := func() bool {
		t.Helper()
		ok, err := st.HasOverlays(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if has() {
		t.Fatal("empty cache has overlays")
	}
	mustApply(t, st, Batch{Source: "ldap", Upserts: users(1, 4)})
	ov := func(src, title string) *Overlay {
		return &Overlay{Source: src, Key: title, Set: map[string]any{"title": title, "active": false}, Under: map[string]any{"title": "old"}}
	}
	// User 1 upserted with its overlay; user 2 not upserted; user 9 not stored.
	u1 := user(1)
	u1.Attributes["title"] = "HR title"
	mustApply(t, st, Batch{Source: "csv:hr", Upserts: []*scim.Resource{u1},
		Overlays: map[string]*Overlay{userID(1): ov("csv:hr", "a"), userID(2): ov("csv:hr", "b"), userID(9): ov("csv:hr", "c")}})
	mustApply(t, st, Batch{Source: "csv:other", Overlays: map[string]*Overlay{userID(3): ov("csv:other", "d")}})
	if !has() {
		t.Fatal("HasOverlays: false after writing overlays")
	}
	got, err := st.Overlays(ctx, []string{userID(1), userID(2), userID(3), userID(9)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[userID(9)] != nil {
		t.Fatalf("Overlays: got %d (%v), want users 1, 2 and 3 only", len(got), got)
	}
	if want := ov("csv:hr", "a"); !reflect.DeepEqual(got[userID(1)], want) {
		t.Fatalf("overlay 1: got %+v, want %+v", got[userID(1)], want)
	}
	if b, ok := got[userID(1)].Set["active"].(bool); !ok || b {
		t.Fatalf("active came back as %T %v, want bool false", got[userID(1)].Set["active"], got[userID(1)].Set["active"])
	}
	list := func(src string) []string {
		t.Helper()
		var ids []string
		if err := st.ForEachOverlay(ctx, src, func(id string, o *Overlay) error {
			if src != "" && o.Source != src {
				t.Fatalf("ForEachOverlay(%q) gave an overlay of %q", src, o.Source)
			}
			ids = append(ids, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got, want := list("csv:hr"), []string{userID(1), userID(2)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ForEachOverlay(csv:hr) = %v, want %v", got, want)
	}
	if got := list(""); len(got) != 3 {
		t.Fatalf("ForEachOverlay(\"\") = %v, want 3 ids", got)
	}
	// nil deletes; deleting a user deletes its overlay.
	mustApply(t, st, Batch{Source: "csv:hr", Overlays: map[string]*Overlay{userID(1): nil}})
	mustApply(t, st, Batch{Source: "ldap", Deletes: []string{userID(2), userID(3)}})
	if got := list(""); len(got) != 0 {
		t.Fatalf("overlays left after nil and deletions: %v", got)
	}
	if has() {
		t.Fatal("HasOverlays: true with none left")
	}
}
