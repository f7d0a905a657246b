package ldapsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// A user created while a delta pass runs, after the pass has read the users and before it
// reads the groups, and added to a group right away (onboarding does exactly that): the pass
// sees the group name a DN that is neither read nor cached. The user is then read in that same
// pass and is a member, instead of being dropped; the next delta, whose cookie is past the
// member add, would never look at the group again (found by the HA kill test in
// cmd/ldapscim: members missing at the target for good). The user is created from the pass's
// progress report at the 1,000th changed user.
func TestDeltaMemberCreatedDuringThePass(t *testing.T) {
	for _, mode := range []string{ldapsync.TrackSyncrepl, ldapsync.TrackModifyTimestamp} {
		t.Run(mode, func(t *testing.T) { testMemberCreatedDuringThePass(t, mode) })
	}
}

func testMemberCreatedDuringThePass(t *testing.T, mode string) {
	const n = 1000
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range n {
		fmt.Fprintf(&b, "dn: uid=u%04d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%04d\ncn: U %04d\nsn: U\n\n", i, i, i)
	}
	b.WriteString("dn: cn=staff,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: staff\nmember: uid=u0000,ou=people,dc=example,dc=com\n\n")
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, b.String())}}, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.ChangeTracking = mode
	})
	e.sync(true)

	var mods strings.Builder
	for i := range n {
		fmt.Fprintf(&mods, "dn: uid=u%04d,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: T%d\n\n", i, i)
	}
	e.sl.Modify(t, mods.String())
	var hookErr error
	fired := false
	e.rebuildWith(ldapsync.Options{Progress: func(stage string, entries int) {
		if fired || stage != "User" {
			return
		}
		fired = true
		hookErr = onboard(e.sl, "newbie", "cn=staff,ou=groups,dc=example,dc=com")
	}})
	e.sync(false)
	if hookErr != nil || !fired {
		t.Fatalf("creating the user during the pass: fired %v, %v", fired, hookErr)
	}
	check := func(when string) {
		t.Helper()
		if !e.hasUser("newbie") {
			t.Fatalf("%s: newbie is not in the cache", when)
		}
		is, err := e.store.MemberSet(context.Background(), e.group("staff").ID, []string{e.user("newbie").ID})
		if err != nil {
			t.Fatal(err)
		}
		if !is[e.user("newbie").ID] {
			t.Fatalf("%s: newbie is not a member of staff in the cache (%d members)", when, e.memberCount("staff"))
		}
	}
	check("after the pass that saw the member add")
	e.rebuild()
	e.sync(false)
	check("after the next delta")
	if got := e.memberCount("staff"); got != 2 {
		t.Errorf("staff has %d members, want 2", got)
	}
}

// onboard adds user uid and makes it a member of group, as two LDAP operations.
func onboard(sl *testenv.Slapd, uid, group string) error {
	c, err := ldap.DialURL(sl.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(sl.RootDN, sl.RootPassword); err != nil {
		return err
	}
	dn := "uid=" + uid + ",ou=people,dc=example,dc=com"
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{uid})
	add.Attribute("cn", []string{uid})
	add.Attribute("sn", []string{uid})
	if err := c.Add(add); err != nil {
		return err
	}
	mod := ldap.NewModifyRequest(group, nil)
	mod.Add("member", []string{dn})
	return c.Modify(mod)
}
