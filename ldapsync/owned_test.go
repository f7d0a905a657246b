package ldapsync_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// TestDirectoryPassesLeaveOtherSourcesAlone: users another source owns (an HR file's) are not
// in the directory, and no pass of the directory takes them for deleted, holds them, or
// counts them against the threshold; the directory's own deletions still happen.
func TestDirectoryPassesLeaveOtherSourcesAlone(t *testing.T) {
	ctx := context.Background()
	e := smallEnv(t, func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 1, 100 })
	e.sync(true)
	var hr []*scim.Resource
	for i := range 5 {
		hr = append(hr, &scim.Resource{Type: scim.UserType, ID: fmt.Sprintf("hr-%d", i),
			Attributes: map[string]any{"userName": fmt.Sprintf("contractor%d@example.com", i), "active": true}})
	}
	if _, err := e.store.Apply(ctx, cache.Batch{Source: "csv:hr", Pass: "import-1", Own: true, Upserts: hr}); err != nil {
		t.Fatal(err)
	}
	for _, full := range []bool{true, false, true} {
		if sum := e.sync(full); sum.Deleted != 0 || sum.Held != 0 {
			t.Fatalf("pass (full=%v) deleted or held HR users: %+v", full, sum)
		}
	}
	e.sl.Modify(t, "dn: uid=carl,ou=people,dc=example,dc=com\nchangetype: delete\n")
	if sum := e.sync(true); sum.Deleted != 1 || sum.Held != 0 {
		t.Fatalf("the directory's own deletion: %+v", sum)
	}
	for _, r := range hr {
		if _, err := e.store.Get(ctx, scim.UserType, r.ID); err != nil {
			t.Fatalf("%s after the directory's passes: %v", r.ID, err)
		}
	}
	if holds, _ := e.store.Holds(ctx); len(holds) != 0 {
		t.Fatalf("holds: %+v", holds)
	}
}
