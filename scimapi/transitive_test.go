package scimapi_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// With [scim] groups = "transitive" a user's groups include the groups reached through nested
// groups, typed "indirect"; with the default only direct ones. A membership cycle terminates.
func TestUserGroupsDirectOrTransitive(t *testing.T) {
	st := openStore(t, t.TempDir())
	u := genUser(1)
	inner := &scim.Resource{Type: scim.GroupType, ID: groupID(1), Attributes: map[string]any{"displayName": "inner"},
		Members: []scim.Member{{Value: u.ID, Type: scim.UserType}}}
	outer := &scim.Resource{Type: scim.GroupType, ID: groupID(2), Attributes: map[string]any{"displayName": "outer"},
		Members: []scim.Member{{Value: groupID(1), Type: scim.GroupType}, {Value: groupID(3), Type: scim.GroupType}}}
	cycle := &scim.Resource{Type: scim.GroupType, ID: groupID(3), Attributes: map[string]any{"displayName": "cycle"},
		Members: []scim.Member{{Value: groupID(2), Type: scim.GroupType}}}
	if _, err := st.Apply(context.Background(), cache.Batch{Source: "t", Pass: "p", Upserts: []*scim.Resource{u, inner, outer, cycle}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode string
		want []string
	}{
		{scimapi.GroupsDirect, []string{"inner:direct"}},
		{scimapi.GroupsTransitive, []string{"cycle:indirect", "inner:direct", "outer:indirect"}},
	} {
		cfg := testConfig(t)
		cfg.Groups = tc.mode
		c := client{t: t, h: scimapi.New(cfg, st, scimapi.Options{}), tok: testToken}
		for _, target := range []string{"/scim/v2/Users/" + u.ID, "/scim/v2/Users?filter=" + q(`userName eq "user1@example.com"`)} {
			r := c.get(target)
			obj := r.json
			if _, isList := r.json["Resources"]; isList {
				obj = resources(t, r)[0]
			}
			var got []string
			groups, _ := obj["groups"].([]any)
			for _, g := range groups {
				m := g.(map[string]any)
				got = append(got, fmt.Sprintf("%s:%s", m["display"], m["type"]))
			}
			slices.Sort(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s %s: groups %v, want %v", tc.mode, target, got, tc.want)
			}
		}
	}
	cfg := testConfig(t)
	cfg.Groups = "nested"
	if errs := cfg.Validate(); len(errs) == 0 {
		t.Fatal(`groups = "nested" validated`)
	}
}
