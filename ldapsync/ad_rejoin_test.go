package ldapsync_test

import (
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// The two usual ways an AD account comes (back) into scope without any write to its groups or
// to its reports: enabled again under a users filter that leaves disabled accounts out, and
// moved into the users' base after its groups were set up (AD keeps a moved member's DN
// current without writing the group). A delta gives it those groups and its reports' manager,
// as a full pass would, which afterwards finds nothing to change (rejoin.go).
func TestADDeltaRejoinsGroupsOfAccountsThatCameIntoScope(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ldapsync.TrackUSN, ldapsync.TrackDirSync} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testADRejoin(t, mode)
		})
	}
}

func testADRejoin(t *testing.T, mode string) {
	const enabledOnly = "(&(objectClass=user)(objectCategory=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) {
		c.Users.Filter = enabledOnly
		c.ChangeTracking = mode
	})
	e.sync(false)
	members := func(group string) map[string]bool {
		t.Helper()
		out := map[string]bool{}
		for _, m := range e.group(group).Members {
			out[m.Value] = true
		}
		return out
	}
	managerOf := func(user string) any {
		t.Helper()
		m, _ := e.user(upn(user)).Attributes[scim.SchemaEnterpriseUser].(map[string]any)["manager"].(map[string]any)
		return m["value"]
	}
	c := e.admin
	bob := "CN=Bob Jones," + adEng
	modify(t, c, bob, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deleted != 1 {
		t.Fatalf("bob disabled: %+v\n%s", sum, e.logs)
	}
	if len(members("eng")) != 1 || managerOf("ann") != nil {
		t.Fatalf("after bob was disabled: eng %v, ann's manager %v", members("eng"), managerOf("ann"))
	}
	modify(t, c, bob, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacEnabled}) })
	sum := e.delta()
	if sum.Created != 1 || sum.Rejoined != 2 { // eng, cyc-a
		t.Errorf("bob enabled again: %+v; want bob created and 2 memberships rejoined\n%s", sum, e.logs)
	}
	bobID := e.user(upn("bob")).ID
	if !members("eng")[bobID] || !members("cyc-a")[bobID] {
		t.Errorf("bob enabled again: eng %v, cyc-a %v; want bob (%s) in both", members("eng"), members("cyc-a"), bobID)
	}
	if managerOf("ann") != bobID {
		t.Errorf("bob enabled again: ann's manager %v, want bob (%s)", managerOf("ann"), bobID)
	}

	staging := "OU=Staging,DC=example,DC=com"
	addOU(t, c, staging)
	addUser(t, c, staging, "Dan New", "dan", nil)
	modify(t, c, "CN=eng,"+adGroups, func(m *ldap.ModifyRequest) { m.Add("member", []string{"CN=Dan New," + staging}) })
	if sum := e.delta(); sum.Created != 0 || len(members("eng")) != 2 {
		t.Fatalf("dan created in staging and added to eng: %+v, eng %v; want nothing new in scope", sum, members("eng"))
	}
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=Dan New,"+staging, "CN=Dan New", true, adEng)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Created != 1 {
		t.Errorf("dan moved into the users' base: %+v\n%s", sum, e.logs)
	}
	if !members("eng")[e.user(upn("dan")).ID] {
		t.Errorf("dan moved into the users' base: eng %v, want dan in it", members("eng"))
	}

	if sum := e.sync(true); sum.Created+sum.Updated+sum.Deleted != 0 {
		t.Errorf("a full pass after the deltas changed the cache: %+v", sum)
	}
}
