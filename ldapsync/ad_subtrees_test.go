package ldapsync_test

import (
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/ldapsync"
)

// Moving an OU in Active Directory changes the uSNChanged (and the DirSync state) of the OU
// only, not of the users under it. A delta follows the changed OU (subtrees.go): an OU moved out
// of the users' base takes its users out of the cache, one moved in brings its users in, with
// the groups that already listed them, one renamed inside the base gives its users their new DNs.
func TestADDeltaFollowsMovedOUs(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{ldapsync.TrackUSN, ldapsync.TrackDirSync} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testADMovedOUs(t, mode)
		})
	}
}

func testADMovedOUs(t *testing.T, mode string) {
	const root = "DC=example,DC=com"
	contractors, staging := "OU=Contractors,"+adStaff, "OU=Staging,"+root
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) { c.ChangeTracking = mode })
	c := e.admin
	addOU(t, c, contractors)
	addOU(t, c, staging)
	var stagingDNs []string
	for i := range 3 {
		addUser(t, c, contractors, fmt.Sprintf("Con Tractor%d", i), fmt.Sprintf("con%d", i), nil)
		addUser(t, c, staging, fmt.Sprintf("Stan Ging%d", i), fmt.Sprintf("stan%d", i), nil)
		stagingDNs = append(stagingDNs, fmt.Sprintf("CN=Stan Ging%d,%s", i, staging))
	}
	modify(t, c, "CN=eng,"+adGroups, func(m *ldap.ModifyRequest) { m.Add("member", stagingDNs) })
	e.sync(true)
	for i := range 3 {
		if e.findUser(upn(fmt.Sprintf("con%d", i))) == nil || e.findUser(upn(fmt.Sprintf("stan%d", i))) != nil {
			t.Fatalf("after the first sync: con%d should be cached, stan%d not", i, i)
		}
	}
	engBefore := len(e.group("eng").Members)

	if err := c.ModifyDN(ldap.NewModifyDNRequest(contractors, "OU=Contractors", true, root)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Deleted != 3 || sum.Created != 0 {
		t.Errorf("contractors moved out of the users' base: %+v; want their 3 users deleted\n%s", sum, e.logs)
	}
	for i := range 3 {
		if e.findUser(upn(fmt.Sprintf("con%d", i))) != nil {
			t.Errorf("con%d is still cached after its OU moved out", i)
		}
	}
	oracle := func(when string) {
		t.Helper()
		if sum := e.sync(true); sum.Created+sum.Updated+sum.Deleted != 0 {
			t.Errorf("a full pass after %s changed the cache: %+v; the delta should have left it as a full pass does", when, sum)
		}
	}
	oracle("contractors moved out")

	if err := c.ModifyDN(ldap.NewModifyDNRequest(staging, "OU=Staging", true, adStaff)); err != nil {
		t.Fatal(err)
	}
	sum := e.delta()
	if sum.Created != 3 || sum.Deleted != 0 {
		t.Fatalf("staging moved into the users' base: %+v; want its 3 users created\n%s", sum, e.logs)
	}
	members := map[string]bool{}
	for _, m := range e.group("eng").Members {
		members[m.Value] = true
	}
	for i := range 3 {
		if u := e.user(upn(fmt.Sprintf("stan%d", i))); !members[u.ID] {
			t.Errorf("stan%d is not a member of eng after moving in (eng: %d members, %d before)", i, len(members), engBefore)
		}
	}

	oracle("staging moved in")

	// Renamed inside the base: the users keep their ids and get their new DNs.
	annID := e.user(upn("ann")).ID
	if err := c.ModifyDN(ldap.NewModifyDNRequest(adEng, "OU=Engineering", true, "")); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Created != 0 || sum.Deleted != 0 || sum.Updated != 2 {
		t.Errorf("Eng renamed: %+v; want ann and bob updated, nothing created or deleted\n%s", sum, e.logs)
	}
	if ann := e.user(upn("ann")); ann.ID != annID || ann.DN != "CN=Ann Smith,OU=Engineering,"+adStaff {
		t.Errorf("ann after the rename: id %s dn %s; want id %s under OU=Engineering", ann.ID, ann.DN, annID)
	}
	oracle("Eng renamed")
}
