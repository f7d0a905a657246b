package ingest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// openStore opens a real in-memory cache, closed when the test ends.
func openStore(t *testing.T) *cache.Store {
	t.Helper()
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// uid returns the id of test user or group n of a kind (u or g): a canonical UUID.
func uid(kind byte, n int) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012d", kind, n)
}

func user(n int, manager string) *scim.Resource {
	r := &scim.Resource{Type: scim.UserType, ID: uid('u', n), Attributes: map[string]any{
		"userName": fmt.Sprintf("user%d", n), "displayName": fmt.Sprintf("User %d", n), "active": true}}
	if manager != "" {
		r.Attributes[scim.SchemaEnterpriseUser] = map[string]any{"manager": map[string]any{"value": manager, "displayName": "Boss"}}
	}
	return r
}

func group(n int, members ...string) *scim.Resource {
	g := &scim.Resource{Type: scim.GroupType, ID: uid('g', n), Attributes: map[string]any{"displayName": fmt.Sprintf("Group %d", n)}}
	for _, m := range members {
		typ := scim.UserType
		if m[:8] == uid('g', 0)[:8] {
			typ = scim.GroupType
		}
		g.Members = append(g.Members, scim.Member{Value: m, Type: typ})
	}
	return g
}

func apply(t *testing.T, st *cache.Store, b cache.Batch) cache.Result {
	t.Helper()
	b.Source, b.Pass = "test", "test-pass"
	res, err := st.Apply(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func memberIDs(t *testing.T, st *cache.Store, gid string) []string {
	t.Helper()
	var out []string
	err := st.ForEachMember(context.Background(), gid, "", func(m scim.Member) error {
		out = append(out, m.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
