package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// `deletes list` shows a held mass removal of members with the group's name and how many are
// held; `deletes approve --all` removes just those members.
func TestDeletesListAndApproveMemberHold(t *testing.T) {
	cfg := evilCache(t)
	st, err := cache.Open(cache.Options{Dir: filepath.Join(filepath.Dir(cfg), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g := &scim.Resource{Type: scim.GroupType, ID: "g1", DN: "cn=staff,dc=x", Attributes: map[string]any{"displayName": "staff"}}
	var held []string
	for i := range 40 {
		id := fmt.Sprintf("m%02d", i)
		u := &scim.Resource{Type: scim.UserType, ID: id, DN: "uid=" + id + ",dc=x",
			Attributes: map[string]any{"userName": id, "active": true}}
		if _, err := st.Apply(ctx, cache.Batch{Pass: "p1", Upserts: []*scim.Resource{u}}); err != nil {
			t.Fatal(err)
		}
		g.Members = append(g.Members, scim.Member{Value: id, Type: scim.UserType})
		if i >= 10 {
			held = append(held, id)
		}
	}
	holds := []cache.Hold{{ID: "g1", Type: scim.GroupType, Name: "staff", DN: g.DN, Pass: "p2", Kind: cache.HoldMembers,
		Members: held, Reason: "remove members: pass would remove 30 of 40 members", HeldAt: time.Unix(0, 0).UTC()}}
	if _, err := st.Apply(ctx, cache.Batch{Pass: "p2", Upserts: []*scim.Resource{g}, Holds: &holds}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCLI(t, "deletes", "list", "--config", cfg)
	if err != nil || !strings.Contains(out, "staff") || !strings.Contains(out, "30 of 40") || !strings.Contains(out, "1 held") {
		t.Fatalf("deletes list: %v\n%s", err, out)
	}
	if _, _, err := runCLI(t, "deletes", "approve", "--config", cfg, "--all"); err != nil {
		t.Fatal(err)
	}
	st, err = cache.Open(cache.Options{Dir: filepath.Join(filepath.Dir(cfg), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.MemberCount(ctx, "g1"); err != nil || n != 10 {
		t.Fatalf("staff has %d members after approval (%v), want 10", n, err)
	}
	if hs, err := st.Holds(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("holds after approve --all: %+v, %v", hs, err)
	}
}
