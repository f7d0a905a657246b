package ldapsync_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// slapd keeps its contextCSN in memory and writes it back at checkpoints (syncprov-checkpoint
// 100 10 in internal/testenv: every 100 writes) and on a clean shutdown. Killed, it restarts
// with the contextCSN of its last checkpoint while the entries written after it keep their
// later entryCSNs; syncprov's refresh leaves those entries out until a new write moves the
// contextCSN past them.

// crashState returns slapd's contextCSN and the DNs of the entries whose entryCSN is past it.
func crashState(t *testing.T, sl *testenv.Slapd) (string, []string) {
	t.Helper()
	c := sl.Root(t)
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(sl.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"contextCSN"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("reading contextCSN: %v", err)
	}
	ctxCSN := res.Entries[0].GetAttributeValue("contextCSN")
	res, err = c.Search(ldap.NewSearchRequest(sl.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(entryCSN>="+ctxCSN+")", []string{"entryCSN"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var past []string
	for _, e := range res.Entries {
		if e.GetAttributeValue("entryCSN") > ctxCSN {
			past = append(past, e.DN)
		}
	}
	return ctxCSN, past
}

// crash makes filler writes (so that a checkpoint falls among them), then the writes of ldif,
// kills slapd -9 and starts it again, and checks that the crash took slapd's contextCSN back
// before every entry ldif changed or added (wantPast DNs).
func (e *env) crash(filler int, ldif string, wantPast ...string) {
	e.t.Helper()
	var b strings.Builder
	for i := range filler {
		fmt.Fprintf(&b, "dn: uid=carl,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: Filler %d\n\n", i)
	}
	e.sl.Modify(e.t, b.String()+ldif)
	e.sl.Kill()
	e.sl.Start(e.t)
	ctxCSN, past := crashState(e.t, e.sl)
	for _, d := range wantPast {
		found := false
		for _, p := range past {
			found = found || strings.EqualFold(p, d)
		}
		if !found {
			e.t.Fatalf("after the crash slapd's contextCSN %s is not behind %s (past it: %v): the test proves nothing", ctxCSN, d, past)
		}
	}
}

// TestDeltaAfterSlapdCrash: slapd was killed after changes past its last checkpoint (R2 "slapd
// kill -9 mid-pass" of `make reliability`, when the pass died before it could note that the
// next one must be full, or ran after the restart; or a crash between two passes). The next
// delta has them all, and deletes no one the directory still has.
func TestDeltaAfterSlapdCrash(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(true)
	e.crash(120, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Crashed once

dn: uid=dora,ou=people,dc=example,dc=com
changetype: add
objectClass: inetOrgPerson
uid: dora
cn: Dora New
sn: New
title: Newcomer

dn: cn=engineering,ou=groups,dc=example,dc=com
changetype: modify
add: member
member: uid=dora,ou=people,dc=example,dc=com
`, "uid=ann,ou=people,dc=example,dc=com", "uid=dora,ou=people,dc=example,dc=com", "cn=engineering,ou=groups,dc=example,dc=com")
	sum := e.sync(false)
	t.Logf("the delta after the crash: %+v", sum)
	if sum.Deleted != 0 || sum.Deactivated != 0 || sum.Held != 0 {
		t.Fatalf("the delta after the crash deleted or held: %+v", sum)
	}
	if got := e.user("ann").Attributes["title"]; got != "Crashed once" {
		t.Errorf("ann's title %v, want the one written before the crash", got)
	}
	if got := e.user("carl").Attributes["title"]; got != "Filler 119" {
		t.Errorf("carl's title %v, want Filler 119", got)
	}
	if !e.hasUser("dora") {
		t.Errorf("dora, added before the crash, is not in the cache")
	}
	if got := memberNames(e.group("engineering")); !slices.Contains(got, "User:Dora New") {
		t.Errorf("engineering's members %v lack dora, added before the crash", got)
	}
	if n := e.count(scim.UserType); n != 4 {
		t.Errorf("%d users, want 4", n)
	}
}

// atCheckpoint adds dora, runs a full pass, restarts slapd cleanly and makes two writes (the
// second write after a start is a checkpoint: syncprov-checkpoint's time limit counts from the
// first), then a delta: the stored cookie is the contextCSN slapd has on disk. Then ann's title
// changes and dora goes (gone, an LDIF change of her entry), and slapd is killed: it comes back
// with the contextCSN of the stored cookie, and syncprov reports nothing.
func atCheckpoint(t *testing.T, gone string, tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)) *env {
	return atCheckpointWith(t, "dn: uid=dora,ou=people,dc=example,dc=com\n"+gone, tweak)
}

// atCheckpointWith is atCheckpoint with the LDIF of the change that goes with ann's before the
// crash.
func atCheckpointWith(t *testing.T, ldif string, tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)) *env {
	t.Helper()
	e := smallEnv(t, tweak)
	e.sl.Modify(t, "dn: uid=dora,ou=people,dc=example,dc=com\nchangetype: add\nobjectClass: inetOrgPerson\nuid: dora\ncn: Dora New\nsn: New\n")
	e.sync(true)
	e.sl.Restart(t)
	for _, title := range []string{"One", "Two"} {
		e.sl.Modify(t, "dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: "+title+"\n")
	}
	if sum := e.sync(false); sum.Full {
		t.Fatalf("a delta was expected: %+v", sum)
	}
	e.crash(0, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Crashed at the checkpoint

`+ldif, "uid=ann,ou=people,dc=example,dc=com")
	ctxCSN, _ := crashState(t, e.sl)
	if wm := string(e.watermark()); !strings.Contains(wm, "usersCookie") {
		t.Fatalf("watermark %s", wm)
	}
	if got := storedUsersCSN(t, e); got != ctxCSN {
		t.Fatalf("after the crash slapd's contextCSN is %s, the stored cookie's %s: the test proves nothing", ctxCSN, got)
	}
	return e
}

// storedUsersCSN returns the CSN of the stored users cookie.
func storedUsersCSN(t *testing.T, e *env) string {
	t.Helper()
	var wm struct {
		UsersCookie []byte `json:"usersCookie"`
	}
	if err := json.Unmarshal(e.watermark(), &wm); err != nil {
		t.Fatal(err)
	}
	_, csn, _ := strings.Cut(string(wm.UsersCookie), "csn=")
	return csn
}

// TestDeltaAfterSlapdCrashWithTheCookieAtItsCheckpoint: when the stored cookie is the very
// contextCSN slapd comes back with, its refresh reports nothing at all: the changed entry is
// read past the snapshot, and the deletion, which only the accesslog still shows, makes the
// pass a full one. Then again with a write after the restart, which moves the contextCSN past
// the deletion: syncprov's new session log starts after it and still does not report it. And
// with dora moved out of the users' base instead of deleted, or taken out of the users' filter.
func TestDeltaAfterSlapdCrashWithTheCookieAtItsCheckpoint(t *testing.T) {
	// Offboarding by an attribute the users' filter tests: dora leaves the filter.
	withoutFormer := func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.Users.Filter = "(&(objectClass=inetOrgPerson)(!(employeeType=former)))"
	}
	for _, c := range []struct {
		gone  string
		write bool
		tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)
	}{
		{"changetype: delete\n", false, nil},
		{"changetype: delete\n", true, nil},
		{"changetype: modrdn\nnewrdn: uid=dora\ndeleteoldrdn: 1\nnewsuperior: ou=former,dc=example,dc=com\n", false, nil},
		{"changetype: modify\nreplace: employeeType\nemployeeType: former\n", false, withoutFormer},
	} {
		write := c.write
		t.Run(fmt.Sprintf("%s write after the restart %v", strings.Fields(c.gone)[1], write), func(t *testing.T) {
			e := atCheckpoint(t, c.gone, c.tweak)
			if write {
				e.sl.Modify(t, "dn: uid=carl,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: title\ntitle: After the restart\n")
			}
			sum := e.sync(false)
			t.Logf("the pass after the crash: %+v", sum)
			if got := e.user("ann").Attributes["title"]; got != "Crashed at the checkpoint" {
				t.Errorf("ann's title %v, want the one written before the crash", got)
			}
			if e.hasUser("dora") {
				t.Errorf("dora, gone before the crash (deleted, moved out or out of the filter), is still in the cache")
			}
			if sum.Deleted != 1 || e.count(scim.UserType) != 3 || !e.hasUser("bob") || !e.hasUser("carl") {
				t.Errorf("%d users after %+v, want ann, bob and carl", e.count(scim.UserType), sum)
			}
			if write {
				if got := e.user("carl").Attributes["title"]; got != "After the restart" {
					t.Errorf("carl's title %v", got)
				}
			}
			if sum := e.sync(false); sum.Full || sum.Deleted != 0 {
				t.Errorf("the pass after: %+v, want a delta that deletes nothing", sum)
			}
		})
	}
}

// A group taken out of the groups' filter in the crash window (archived by an attribute the
// filter tests) is deleted by the delta, as a user is.
func TestDeltaAfterSlapdCrashGroupLeftTheFilter(t *testing.T) {
	e := atCheckpointWith(t, `dn: cn=engineering,ou=groups,dc=example,dc=com
changetype: modify
replace: businessCategory
businessCategory: archived
`, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.Groups.Filter = "(&(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))(!(businessCategory=archived)))"
	})
	groups := e.count(scim.GroupType)
	sum := e.sync(false)
	t.Logf("the pass after the crash: %+v", sum)
	if got := e.user("ann").Attributes["title"]; got != "Crashed at the checkpoint" {
		t.Errorf("ann's title %v, want the one written before the crash", got)
	}
	if e.hasGroup("engineering") || e.count(scim.GroupType) != groups-1 || sum.Deleted != 1 {
		t.Errorf("engineering, archived before the crash: still there %v, %d groups of %d, pass %+v", e.hasGroup("engineering"), e.count(scim.GroupType), groups, sum)
	}
	if sum := e.sync(false); sum.Full || sum.Deleted != 0 {
		t.Errorf("the pass after: %+v, want a delta that deletes nothing", sum)
	}
}
