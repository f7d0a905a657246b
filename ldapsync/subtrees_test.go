package ldapsync_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// Moving a whole OU (a modrdn of an entry with children) changes the DNs of the entries below
// it without writing them, so no syncrepl refresh reports them. A delta follows the changed
// containers instead (subtrees.go). The directory:
//
//	ou=people                   users base: u0, u1
//	  ou=contractors            c0..c4        (group contractors lists them)
//	  ou=eng                    e0..e2        (group eng lists them), ex (in no group)
//	ou=staging                  s0..s4        (outside; group staging lists them already), sx
//	ou=former                   empty, outside
//	ou=groups                   groups base: contractors, eng, staging
//	  ou=teams                  team (lists u0)
const (
	ouPeople  = "ou=people,dc=example,dc=com"
	ouGroups  = "ou=groups,dc=example,dc=com"
	ouStaging = "ou=staging,dc=example,dc=com"
	ouFormer  = "ou=former,dc=example,dc=com"
	ouTeams   = "ou=teams," + ouGroups
)

func ouDir() string {
	var b strings.Builder
	for _, ou := range []string{ouPeople, "ou=contractors," + ouPeople, "ou=eng," + ouPeople, ouStaging, ouFormer, ouGroups, ouTeams} {
		name, _, _ := strings.Cut(strings.TrimPrefix(ou, "ou="), ",")
		fmt.Fprintf(&b, "dn: %s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, name)
	}
	groups := map[string][]string{}
	add := func(prefix string, n int, parent, group string) {
		for i := range n {
			uid := fmt.Sprintf("%s%d", prefix, i)
			d := "uid=" + uid + "," + parent
			fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: %s\n\n", d, uid, strings.ToUpper(uid), prefix)
			if group != "" {
				groups[group] = append(groups[group], d)
			}
		}
	}
	add("u", 2, ouPeople, "")
	add("c", 5, "ou=contractors,"+ouPeople, "contractors")
	add("e", 3, "ou=eng,"+ouPeople, "eng")
	add("s", 5, ouStaging, "staging")
	// In no group: no group's change brings them in (refint's rewrites of the groups show in
	// their modifyTimestamp).
	add("ex", 1, "ou=eng,"+ouPeople, "")
	add("sx", 1, ouStaging, "")
	for _, g := range []string{"contractors", "eng", "staging"} {
		fmt.Fprintf(&b, "dn: cn=%s,%s\nobjectClass: groupOfNames\ncn: %s\n", g, ouGroups, g)
		for _, m := range groups[g] {
			b.WriteString("member: " + m + "\n")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "dn: cn=team,%s\nobjectClass: groupOfNames\ncn: team\nmember: uid=u0,%s\n\n", ouTeams, ouPeople)
	return b.String()
}

// forModes runs test with syncrepl and with modifyTimestamp tracking.
func forModes(t *testing.T, test func(*testing.T, string)) {
	for _, mode := range []string{ldapsync.TrackSyncrepl, ldapsync.TrackModifyTimestamp} {
		t.Run(mode, func(t *testing.T) { test(t, mode) })
	}
}

func ouEnv(t *testing.T, mode string, refint bool, tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)) *env {
	t.Helper()
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, ouDir())}, Refint: refint}, func(c *ldapsync.Config, s *ldapsync.SafetyConfig) {
		c.ChangeTracking = mode
		c.Overlap = confval.Duration(time.Second)
		if tweak != nil {
			tweak(c, s)
		}
	})
	if sum := e.sync(true); sum.Created != 11+4 {
		t.Fatalf("first sync: %+v; want 11 users and 4 groups created", sum)
	}
	if mode == ldapsync.TrackModifyTimestamp {
		// Move the watermark past the loaded entries, as in a directory where nobody touched
		// them for a while, or every delta reads them all again (the newest timestamp seen,
		// minus the overlap).
		time.Sleep(2100 * time.Millisecond)
		e.sl.Modify(t, "dn: uid=u1,"+ouPeople+"\nchangetype: modify\nreplace: title\ntitle: T\n")
		if sum := e.delta(); sum.Updated != 1 {
			t.Fatalf("u1's title changed: %+v", sum)
		}
	}
	return e
}

// moveOU moves (or renames) the OU ou to newRDN under newSuperior ("" keeps the parent).
func moveOU(t *testing.T, e *env, ou, newRDN, newSuperior string) {
	t.Helper()
	ldif := "dn: " + ou + "\nchangetype: modrdn\nnewrdn: " + newRDN + "\ndeleteoldrdn: 1\n"
	if newSuperior != "" {
		ldif += "newsuperior: " + newSuperior + "\n"
	}
	e.sl.Modify(t, ldif)
}

// delta runs a delta pass and fails the test unless it was one.
func (e *env) delta() ldapsync.Summary {
	e.t.Helper()
	sum := e.sync(false)
	if sum.Full {
		e.t.Fatalf("pass was full, want a delta: %+v", sum)
	}
	return sum
}

// oracle runs a full pass, which must find nothing the deltas left to change.
func (e *env) oracle() ldapsync.Summary {
	e.t.Helper()
	sum := e.sync(true)
	if sum.Created != 0 || sum.Updated != 0 || sum.Deleted != 0 || sum.Deactivated != 0 {
		e.t.Errorf("a full pass after the delta changed the cache: %+v; the delta should have left it as a full pass does", sum)
	}
	return sum
}

func TestDeltaOUMovedOutOfTheUsersBase(t *testing.T) { forModes(t, testDeltaOUMovedOutOfTheUsersBase) }

func testDeltaOUMovedOutOfTheUsersBase(t *testing.T, mode string) {
	e := ouEnv(t, mode, true, nil)
	moveOU(t, e, "ou=contractors,"+ouPeople, "ou=contractors", ouFormer)
	testenv.WaitFor(t, func() bool { return e.sl.Has(t, "(member=uid=c0,ou=contractors,"+ouFormer+")") })
	sum := e.delta()
	if sum.Deleted != 5 || sum.Created != 0 {
		t.Fatalf("contractors moved out: %+v; want their 5 users deleted", sum)
	}
	for i := range 5 {
		if e.hasUser(fmt.Sprintf("c%d", i)) {
			t.Errorf("c%d is still cached after its OU moved out of the users' base", i)
		}
	}
	if n := e.count(scim.UserType); n != 6 {
		t.Errorf("%d users cached, want 6", n)
	}
	if n := e.memberCount("contractors"); n != 0 {
		t.Errorf("contractors has %d members, want 0", n)
	}
	e.oracle()
}

func TestDeltaOUMovedIntoTheUsersBase(t *testing.T) { forModes(t, testDeltaOUMovedIntoTheUsersBase) }

func testDeltaOUMovedIntoTheUsersBase(t *testing.T, mode string) {
	e := ouEnv(t, mode, true, nil)
	if n := e.memberCount("staging"); n != 0 {
		t.Fatalf("staging has %d members before the move, want 0 (they are out of scope)", n)
	}
	moveOU(t, e, ouStaging, "ou=staging", ouPeople)
	testenv.WaitFor(t, func() bool { return e.sl.Has(t, "(member=uid=s0,ou=staging,"+ouPeople+")") })
	sum := e.delta()
	if sum.Created != 6 || sum.Deleted != 0 {
		t.Fatalf("staging moved in: %+v; want its 6 users created", sum)
	}
	for i := range 5 {
		if u := e.user(fmt.Sprintf("s%d", i)); u.DN != fmt.Sprintf("uid=s%d,ou=staging,%s", i, ouPeople) {
			t.Errorf("s%d: DN %s", i, u.DN)
		}
	}
	if n := e.memberCount("staging"); n != 5 {
		t.Errorf("staging has %d members after its users moved in, want 5", n)
	}
	// refint's rewrite of the group is invisible to syncrepl: the members come from rejoin.go.
	// (The modifyTimestamp delta reads the group again within its overlap.)
	if mode == ldapsync.TrackSyncrepl && sum.Rejoined != 5 {
		t.Errorf("%d memberships rejoined, want 5", sum.Rejoined)
	}
	e.oracle()
}

func TestDeltaOURenamedInsideTheUsersBase(t *testing.T) {
	forModes(t, testDeltaOURenamedInsideTheUsersBase)
}

func testDeltaOURenamedInsideTheUsersBase(t *testing.T, mode string) {
	e := ouEnv(t, mode, true, nil)
	ids := map[string]string{}
	for _, uid := range []string{"e0", "e1", "e2", "ex0"} {
		ids[uid] = e.user(uid).ID
	}
	moveOU(t, e, "ou=eng,"+ouPeople, "ou=engineering", "")
	testenv.WaitFor(t, func() bool { return e.sl.Has(t, "(member=uid=e0,ou=engineering,"+ouPeople+")") })
	sum := e.delta()
	if sum.Created != 0 || sum.Deleted != 0 || sum.Updated != 4 {
		t.Fatalf("eng renamed: %+v; want its 4 users updated, nothing created or deleted", sum)
	}
	for uid, id := range ids {
		u := e.user(uid)
		if want := "uid=" + uid + ",ou=engineering," + ouPeople; u.ID != id || u.DN != want {
			t.Errorf("%s: id %s dn %s; want id %s dn %s", uid, u.ID, u.DN, id, want)
		}
	}
	if n := e.memberCount("eng"); n != 3 {
		t.Errorf("eng has %d members, want 3", n)
	}
	e.oracle()
}

// The same for groups: an OU of groups moved out of the groups' base, then back in.
func TestDeltaOUMovedOutOfAndIntoTheGroupsBase(t *testing.T) {
	forModes(t, testDeltaOUMovedOutOfAndIntoTheGroupsBase)
}

func testDeltaOUMovedOutOfAndIntoTheGroupsBase(t *testing.T, mode string) {
	e := ouEnv(t, mode, false, nil)
	moveOU(t, e, ouTeams, "ou=teams", ouFormer)
	if sum := e.delta(); sum.Deleted != 1 || sum.Created != 0 || e.hasGroup("team") {
		t.Errorf("teams moved out: %+v, team cached %v; want the group deleted", sum, e.hasGroup("team"))
	}
	e.oracle()
	moveOU(t, e, "ou=teams,"+ouFormer, "ou=teams", ouGroups)
	if sum := e.delta(); sum.Created != 1 || sum.Deleted != 0 || !e.hasGroup("team") {
		t.Fatalf("teams moved back in: %+v, team cached %v; want the group created", sum, e.hasGroup("team"))
	}
	if got := memberNames(e.group("team")); len(got) != 1 || got[0] != "User:U0" {
		t.Errorf("team members %v, want [User:U0]", got)
	}
	e.oracle()
}

// A container that changed without moving (a description edit) costs a read of its subtree
// and changes nothing, inside the base or outside it.
func TestDeltaOUEditedChangesNothing(t *testing.T) { forModes(t, testDeltaOUEditedChangesNothing) }

func testDeltaOUEditedChangesNothing(t *testing.T, mode string) {
	e := ouEnv(t, mode, false, nil)
	head := e.journalHead()
	if mode == ldapsync.TrackModifyTimestamp {
		time.Sleep(2100 * time.Millisecond) // u1's change falls out of the overlap
	}
	for _, ou := range []string{"ou=contractors," + ouPeople, ouStaging, ouPeople, "dc=example,dc=com"} {
		e.sl.Modify(t, "dn: "+ou+"\nchangetype: modify\nreplace: description\ndescription: edited\n")
	}
	sum := e.delta()
	if sum.Created != 0 || sum.Updated != 0 || sum.Deleted != 0 || sum.Held != 0 {
		t.Fatalf("OUs edited: %+v; want nothing changed", sum)
	}
	for _, r := range e.journal() {
		if r.Seq > head {
			t.Fatalf("editing OUs journaled %s %s %s", r.Op, r.Type, r.ID)
		}
	}
	// The watermark moved past the edited OUs: the next delta reads nothing again, or with
	// modifyTimestamp only what the overlap takes again (the newest change: the OUs), not u1,
	// the newest user.
	want := 0
	if mode == ldapsync.TrackModifyTimestamp {
		time.Sleep(2100 * time.Millisecond)
		want = 5 // ou=contractors's users
	}
	if sum := e.delta(); sum.Read > want || sum.Created+sum.Updated+sum.Deleted != 0 {
		t.Errorf("the delta after: %+v; want at most %d read and nothing changed", sum, want)
	}
	e.oracle()
}

// Moving an OU out above the [safety] threshold holds the deletions, and the pass changes
// nothing else: the held users keep their groups.
func TestDeltaOUMovedOutAboveTheThresholdIsHeld(t *testing.T) {
	forModes(t, testDeltaOUMovedOutAboveTheThresholdIsHeld)
}

func testDeltaOUMovedOutAboveTheThresholdIsHeld(t *testing.T, mode string) {
	e := ouEnv(t, mode, false, func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 3, 100 })
	head := e.journalHead()
	moveOU(t, e, "ou=contractors,"+ouPeople, "ou=contractors", ouFormer)
	check := func(sum ldapsync.Summary, when string) {
		t.Helper()
		if sum.Held != 5 || sum.Deleted != 0 || sum.Created != 0 || sum.Updated != 0 {
			t.Fatalf("%s: %+v; want the 5 deletions held and nothing else changed", when, sum)
		}
		if n := e.count(scim.UserType); n != 11 {
			t.Fatalf("%s: %d users cached, want 11", when, n)
		}
		if n := e.memberCount("contractors"); n != 5 {
			t.Fatalf("%s: contractors has %d members, want 5 (held users keep their groups)", when, n)
		}
		for _, r := range e.journal() {
			if r.Seq > head {
				t.Fatalf("%s: a pass that held its deletions journaled %s %s %s", when, r.Op, r.Type, r.ID)
			}
		}
	}
	check(e.delta(), "contractors moved out")
	check(e.sync(true), "the full pass after")
}
