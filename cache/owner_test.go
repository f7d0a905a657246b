package cache

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/scim"
)

// TestOwnedResources: a source that owns what it writes lists exactly its resources; the
// directory (source "") lists exactly the others, however the ids interleave; a deletion
// ends the ownership.
func TestOwnedResources(t *testing.T) {
	ctx := context.Background()
	st, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := func(id string) *scim.Resource {
		return &scim.Resource{Type: scim.UserType, ID: id, Attributes: map[string]any{"userName": id}}
	}
	// Directory ids a, c, e, g; HR ids b, d, f (interleaved), and a group h an HR batch writes
	// (a virtual group of the rules: no source owns groups).
	if _, err := st.Apply(ctx, Batch{Source: "ldap", Upserts: []*scim.Resource{u("a"), u("c"), u("e"), u("g")}}); err != nil {
		t.Fatal(err)
	}
	hrGroup := &scim.Resource{Type: scim.GroupType, ID: "h", Attributes: map[string]any{"displayName": "HR"}}
	if _, err := st.Apply(ctx, Batch{Source: "hr", Own: true, Upserts: []*scim.Resource{u("b"), u("d"), u("f"), hrGroup}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, Batch{Source: "other", Own: true, Upserts: []*scim.Resource{u("dd")}}); err != nil {
		t.Fatal(err)
	}
	list := func(typ scim.ResourceType, source string) []string {
		t.Helper()
		out := []string{}
		if err := st.ForEachOwned(ctx, typ, source, func(id string) error { out = append(out, id); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		typ    scim.ResourceType
		source string
		want   []string
	}{
		{scim.UserType, "", []string{"a", "c", "e", "g"}},
		{scim.UserType, "hr", []string{"b", "d", "f"}},
		{scim.UserType, "other", []string{"dd"}},
		{scim.GroupType, "hr", []string{}},
		{scim.GroupType, "", []string{"h"}},
		{scim.UserType, "nobody", []string{}},
	} {
		if got := list(c.typ, c.source); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s of %q: %v, want %v", c.typ, c.source, got, c.want)
		}
	}
	for id, want := range map[string]string{"a": "", "b": "hr", "dd": "other", "h": "", "nope": ""} {
		if got, err := st.Owner(ctx, id); err != nil || got != want {
			t.Errorf("owner of %s: %q %v, want %q", id, got, err, want)
		}
	}
	// An unchanged re-import keeps the ownership; a deletion ends it.
	if _, err := st.Apply(ctx, Batch{Source: "hr", Own: true, Upserts: []*scim.Resource{u("b")}, Deletes: []string{"d"}}); err != nil {
		t.Fatal(err)
	}
	if got := list(scim.UserType, "hr"); !reflect.DeepEqual(got, []string{"b", "f"}) {
		t.Fatalf("after deleting d: %v", got)
	}
	if got := list(scim.UserType, ""); !reflect.DeepEqual(got, []string{"a", "c", "e", "g"}) {
		t.Fatalf("the directory's after deleting d: %v", got)
	}
}

// TestOwnedSourceHashes: ForEachOwnedSource walks one source's users in id order with their
// source hashes (nil for one without), whether the other keys between are few (stepped over)
// or many (sought past), and none of the others'.
func TestOwnedSourceHashes(t *testing.T) {
	ctx := context.Background()
	st, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := func(id string) *scim.Resource {
		return &scim.Resource{Type: scim.UserType, ID: id, Attributes: map[string]any{"userName": id}}
	}
	// The directory's users, with source hashes, between and around the HR ones: a run of
	// 40 ids between "b" and "d" makes the walk seek.
	dir := []*scim.Resource{u("a"), u("c"), u("e")}
	dirHashes := map[string][]byte{"a": []byte("da"), "c": []byte("dc"), "e": []byte("de")}
	for i := range 40 {
		id := fmt.Sprintf("c%02d", i)
		dir = append(dir, u(id))
		dirHashes[id] = []byte("d" + id)
	}
	if _, err := st.Apply(ctx, Batch{Source: "ldap", Upserts: dir, SourceHashes: dirHashes}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, Batch{Source: "hr", Own: true, Upserts: []*scim.Resource{u("b"), u("d"), u("f"), u("g")},
		SourceHashes: map[string][]byte{"b": []byte("hb"), "d": []byte("hd"), "g": []byte("hg")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Apply(ctx, Batch{Source: "other", Own: true, Upserts: []*scim.Resource{u("dd")},
		SourceHashes: map[string][]byte{"dd": []byte("od")}}); err != nil {
		t.Fatal(err)
	}
	walk := func(source string) []string {
		t.Helper()
		var out []string
		err := st.ForEachOwnedSource(ctx, scim.UserType, source, func(id string, h []byte) error {
			out = append(out, id+"="+string(h))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := walk("hr"), []string{"b=hb", "d=hd", "f=", "g=hg"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("hr: %q, want %q", got, want)
	}
	if got, want := walk("other"), []string{"dd=od"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("other: %q, want %q", got, want)
	}
	if err := st.ForEachOwnedSource(ctx, scim.UserType, "", func(string, []byte) error { return nil }); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no source: %v", err)
	}
	stop := errors.New("stop")
	if err := st.ForEachOwnedSource(ctx, scim.UserType, "hr", func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: %v", err)
	}
}
