package ldapsync_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
)

// A delta that brings a user or group into the cache also gives it the memberships and the
// reports the directory already had, in groups and users the delta did not read: an account
// disabled under a filter that leaves disabled accounts out and enabled again, a group that
// listed a DN before its entry existed (OpenLDAP allows it), a nested group created after the
// group that lists it, a manager created after the reports that name it, a posixGroup that
// lists a uid before its user exists. Before, each stayed out until the nightly full pass. The
// oracle is a full pass afterwards: it must find nothing to change.
func TestDeltaRejoinsWhatAlreadyNamedANewcomer(t *testing.T) {
	for _, mode := range []string{ldapsync.TrackSyncrepl, ldapsync.TrackModifyTimestamp} {
		t.Run(mode, func(t *testing.T) { testRejoin(t, mode) })
	}
}

func testRejoin(t *testing.T, mode string) {
	const people, groups = "ou=people,dc=example,dc=com", "ou=groups,dc=example,dc=com"
	var b strings.Builder
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: people\n\n", people)
	fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: groups\n\n", groups)
	for i := range 20 {
		fmt.Fprintf(&b, "dn: uid=u%02d,%s\nobjectClass: inetOrgPerson\nuid: u%02d\ncn: U %02d\nsn: U\n", i, people, i, i)
		switch i {
		case 2:
			fmt.Fprintf(&b, "manager: uid=boss,%s\n", people) // created later
		case 3:
			fmt.Fprintf(&b, "manager: uid=u01,%s\n", people) // disabled and enabled again
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "dn: cn=staff,%s\nobjectClass: groupOfNames\ncn: staff\nmember: uid=u00,%[2]s\nmember: uid=u01,%[2]s\nmember: uid=ghost,%[2]s\n\n", groups, people)
	fmt.Fprintf(&b, "dn: cn=outer,%s\nobjectClass: groupOfNames\ncn: outer\nmember: uid=u00,%s\nmember: cn=inner,%[1]s\n\n", groups, people)
	fmt.Fprintf(&b, "dn: cn=posix,%s\nobjectClass: posixGroup\ncn: posix\ngidNumber: 5000\nmemberUid: u00\nmemberUid: ghost\n\n", groups)
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, b.String())}}, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.ChangeTracking = mode
		c.Users.Filter = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))"
		c.Overlap = confval.Duration(time.Second)
	})
	e.sync(true)
	want := map[string]int{"staff": 2, "outer": 1, "posix": 1}
	check := func(when string) {
		t.Helper()
		for g, n := range want {
			if got := e.memberCount(g); got != n {
				t.Errorf("%s: %s has %d members, want %d", when, g, got, n)
			}
		}
	}
	check("after the first sync")
	hasManager := func(user, manager string) bool {
		t.Helper()
		m, ok := e.user(user).Attributes[ent].(map[string]any)["manager"].(map[string]any)
		return ok && m["value"] == e.user(manager).ID
	}
	if !hasManager("u03", "u01") {
		t.Fatal("u03's manager is not u01 after the first sync")
	}
	// A modifyTimestamp delta reads again what changed within the overlap: let the groups'
	// timestamps fall out of it, as they do in a directory where nobody touched them.
	time.Sleep(2100 * time.Millisecond)

	// u19's change moves the modifyTimestamp watermark past the groups' (u01, out of the
	// filter, is not read).
	e.sl.Modify(t, "dn: uid=u01,"+people+"\nchangetype: modify\nreplace: employeeType\nemployeeType: disabled\n\n"+
		"dn: uid=u19,"+people+"\nchangetype: modify\nreplace: title\ntitle: T\n")
	if sum := e.sync(true); sum.Deleted != 1 {
		t.Fatalf("disabling u01: %+v; want u01 deleted", sum)
	}
	want["staff"] = 1
	check("after u01 was disabled")
	if _, ok := e.user("u03").Attributes[ent].(map[string]any)["manager"]; ok {
		t.Fatal("u03 still has a manager after u01 was disabled")
	}
	time.Sleep(2100 * time.Millisecond)

	e.sl.Modify(t, "dn: uid=u01,"+people+"\nchangetype: modify\ndelete: employeeType\n")
	sum := e.sync(false)
	if sum.Full || sum.Created != 1 {
		t.Fatalf("enabling u01 again: %+v; want a delta that creates u01", sum)
	}
	want["staff"] = 2
	check("after u01 was enabled again")
	if !hasManager("u03", "u01") {
		t.Error("u03's manager is not u01 after u01 was enabled again")
	}
	if sum.Rejoined != 1 {
		t.Errorf("rejoined memberships %d, want 1 (staff)", sum.Rejoined)
	}

	e.sl.Modify(t, "dn: uid=ghost,"+people+"\nchangetype: add\nobjectClass: inetOrgPerson\nuid: ghost\ncn: Ghost\nsn: G\n\n"+
		"dn: uid=boss,"+people+"\nchangetype: add\nobjectClass: inetOrgPerson\nuid: boss\ncn: Boss\nsn: B\n\n"+
		"dn: cn=inner,"+groups+"\nchangetype: add\nobjectClass: groupOfNames\ncn: inner\nmember: uid=u05,"+people+"\n")
	if sum := e.sync(false); sum.Full || sum.Created != 3 || sum.Rejoined != 3 {
		t.Fatalf("creating ghost, boss and inner: %+v; want a delta that creates 3 and rejoins 3 (staff, posix, outer)", sum)
	}
	want["staff"], want["posix"], want["outer"] = 3, 2, 2
	check("after ghost, boss and inner were created")
	if !hasManager("u02", "boss") {
		t.Error("u02's manager is not boss after boss was created")
	}
	is, err := e.store.MemberSet(context.Background(), e.group("outer").ID, []string{e.group("inner").ID})
	if err != nil {
		t.Fatal(err)
	}
	if !is[e.group("inner").ID] {
		t.Error("outer does not list the group inner")
	}

	if sum := e.sync(true); sum.Updated != 0 || sum.Created != 0 || sum.Deleted != 0 {
		t.Errorf("a full pass after the deltas changed the cache: %+v; the deltas should have left it as a full pass does", sum)
	}
	check("after the full pass")
}

// Above the limit of newcomers a delta looks up, the next pass is a full one, which reads every
// group.
func TestDeltaWithManyNewcomersMakesTheNextPassFull(t *testing.T) {
	defer ldapsync.SetRejoinLimit(2)()
	const people, groups = "ou=people,dc=example,dc=com", "ou=groups,dc=example,dc=com"
	ldif := fmt.Sprintf("dn: %s\nobjectClass: organizationalUnit\nou: people\n\ndn: %s\nobjectClass: organizationalUnit\nou: groups\n\n"+
		"dn: uid=u00,%[1]s\nobjectClass: inetOrgPerson\nuid: u00\ncn: U\nsn: U\n\n"+
		"dn: cn=staff,%[2]s\nobjectClass: groupOfNames\ncn: staff\nmember: uid=u00,%[1]s\nmember: uid=n0,%[1]s\nmember: uid=n1,%[1]s\nmember: uid=n2,%[1]s\n\n", people, groups)
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, ldif)}}, nil)
	e.sync(true)
	var add strings.Builder
	for i := range 3 {
		fmt.Fprintf(&add, "dn: uid=n%d,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: n%d\ncn: N\nsn: N\n\n", i, people, i)
	}
	e.sl.Modify(t, add.String())
	if sum := e.sync(false); sum.Full || sum.Created != 3 || sum.Rejoined != 0 {
		t.Fatalf("three newcomers: %+v; want a delta that creates them and looks nothing up", sum)
	}
	if sum := e.sync(false); !sum.Full {
		t.Fatalf("the pass after: %+v; want a full one", sum)
	}
	if got := e.memberCount("staff"); got != 4 {
		t.Errorf("staff has %d members after the full pass, want 4", got)
	}
}
