package ldapsync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// heldDir writes a directory of n users: u00 manages every other user, u01 and u02 live in
// ou=sub,ou=people, "everyone" lists every user and "odd" the odd ones.
func heldDir(t *testing.T, n int) string {
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=sub,ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: sub\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	b.WriteString("dn: ou=empty,dc=example,dc=com\nobjectClass: organizationalUnit\nou: empty\n\n")
	var all, odd []string
	for i := range n {
		uid := fmt.Sprintf("u%02d", i)
		dn := "uid=" + uid + ",ou=people,dc=example,dc=com"
		if i == 1 || i == 2 {
			dn = "uid=" + uid + ",ou=sub,ou=people,dc=example,dc=com"
		}
		fmt.Fprintf(&b, "dn: %s\nobjectClass: inetOrgPerson\nuid: %s\ncn: User %s\nsn: %s\n", dn, uid, uid, uid)
		if i > 0 {
			b.WriteString("manager: uid=u00,ou=people,dc=example,dc=com\n")
		}
		b.WriteString("\n")
		all = append(all, dn)
		if i%2 == 1 {
			odd = append(odd, dn)
		}
	}
	for _, g := range []struct {
		name string
		dns  []string
	}{{"everyone", all}, {"odd", odd}} {
		fmt.Fprintf(&b, "dn: cn=%s,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: %s\n", g.name, g.name)
		for _, d := range g.dns {
			b.WriteString("member: " + d + "\n")
		}
		b.WriteString("\n")
	}
	f := filepath.Join(t.TempDir(), "held.ldif")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

const heldUsers = 40

func heldEnv(t *testing.T) *env {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{heldDir(t, heldUsers)}},
		func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 5, 20 })
	e.sync(true)
	if n := e.count(scim.UserType); n != heldUsers {
		t.Fatalf("%d users after the first sync, want %d", n, heldUsers)
	}
	return e
}

// checkUntouched asserts that the held deletions left every group and report as it was, and
// that the pass wrote no journal record for them.
func (e *env) checkUntouched(sum ldapsync.Summary, head uint64, wantHeld int) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	if sum.Held != wantHeld || sum.Deleted != 0 {
		t.Fatalf("summary %+v: want %d held, none deleted", sum, wantHeld)
	}
	holds, err := e.store.Holds(ctx)
	if err != nil || len(holds) != wantHeld {
		t.Fatalf("holds: %d, %v; want %d", len(holds), err, wantHeld)
	}
	if n := e.count(scim.UserType); n != heldUsers {
		t.Fatalf("%d users, want %d (held deletions applied)", n, heldUsers)
	}
	for name, want := range map[string]int{"everyone": heldUsers, "odd": heldUsers / 2} {
		g := e.group(name)
		n, err := e.store.MemberCount(ctx, g.ID)
		if err != nil || n != want {
			t.Fatalf("group %s has %d members (%v), want %d: held deletions stripped memberships", name, n, err, want)
		}
		for _, h := range holds {
			if h.Type != scim.UserType || name == "odd" {
				continue
			}
			if ok, err := e.store.IsMember(ctx, g.ID, h.ID); err != nil || !ok {
				t.Fatalf("held user %s is no longer a member of %s (%v)", h.Name, name, err)
			}
		}
	}
	boss := e.user("u00")
	for i := 1; i < heldUsers; i++ {
		u := e.user(fmt.Sprintf("u%02d", i))
		ext, _ := u.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		mgr, _ := ext["manager"].(map[string]any)
		if mgr == nil || mgr["value"] != boss.ID {
			t.Fatalf("u%02d's manager is %v, want the held u00 (%s)", i, mgr, boss.ID)
		}
	}
	for _, r := range e.journal() {
		if r.Seq > head {
			t.Fatalf("a pass that held its deletions journaled %s %s %s", r.Op, r.Type, r.ID)
		}
	}
}

func (e *env) journalHead() uint64 {
	var head uint64
	for _, r := range e.journal() {
		head = max(head, r.Seq)
	}
	return head
}

// Invariant 5 (docs/architecture.md): a users base DN pointed at a sub-OU (an admin's typo) holds the deletion
// of every other user, and the same pass must not strip them from their groups or from their
// reports' manager.
func TestHeldUserDeletionsKeepMembershipsWrongBaseDN(t *testing.T) {
	e := heldEnv(t)
	head := e.journalHead()
	e.cfg.Users.BaseDN = "ou=sub,ou=people,dc=example,dc=com"
	e.rebuild()
	sum := e.sync(true)
	e.checkUntouched(sum, head, heldUsers-2)

	// Fixing the typo releases every hold and changes nothing.
	e.cfg.Users.BaseDN = "ou=people,dc=example,dc=com"
	e.rebuild()
	if sum := e.sync(true); sum.Held != 0 || sum.Deleted != 0 {
		t.Fatalf("after the fix: %+v", sum)
	}
	if holds, _ := e.store.Holds(context.Background()); len(holds) != 0 {
		t.Fatalf("%d holds after the fix", len(holds))
	}
	for _, r := range e.journal() {
		if r.Seq > head {
			t.Fatalf("fixing the base DN journaled %s %s %s", r.Op, r.Type, r.ID)
		}
	}
}

// The same when most users are really deleted in slapd: a full pass holds the deletions and
// keeps the memberships and managers until an admin approves; approving applies them all.
func TestHeldUserDeletionsKeepMembershipsFull(t *testing.T) {
	e := heldEnv(t)
	head := e.journalHead()
	deleteUsers(t, e, 20)
	e.checkUntouched(e.sync(true), head, 20)

	res, err := ldapsync.ApproveHolds(context.Background(), e.store, nil)
	if err != nil || res.Deleted != 20 {
		t.Fatalf("approve: %+v, %v", res, err)
	}
	checkApproved(e, 20)
}

// And in a delta pass, where the deletions come from syncrepl.
func TestHeldUserDeletionsKeepMembershipsDelta(t *testing.T) {
	e := heldEnv(t)
	head := e.journalHead()
	deleteUsers(t, e, 20)
	e.checkUntouched(e.sync(false), head, 20)
	res, err := ldapsync.ApproveHolds(context.Background(), e.store, nil)
	if err != nil || res.Deleted != 20 {
		t.Fatalf("approve: %+v, %v", res, err)
	}
	checkApproved(e, 20)
}

// deleteUsers deletes u00 (everyone's manager) and the next n-1 users from slapd, leaving the
// groups naming them.
func deleteUsers(t *testing.T, e *env, n int) {
	var b strings.Builder
	for i := range n {
		ou := "ou=people"
		if i == 1 || i == 2 {
			ou = "ou=sub,ou=people"
		}
		fmt.Fprintf(&b, "dn: uid=u%02d,%s,dc=example,dc=com\nchangetype: delete\n\n", i, ou)
	}
	e.sl.Modify(t, b.String())
}

func checkApproved(e *env, n int) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	if c := e.count(scim.UserType); c != heldUsers-n {
		t.Fatalf("%d users after approval, want %d", c, heldUsers-n)
	}
	if c, _ := e.store.MemberCount(ctx, e.group("everyone").ID); c != heldUsers-n {
		t.Fatalf("everyone has %d members after approval, want %d", c, heldUsers-n)
	}
	for i := n; i < heldUsers; i++ {
		u := e.user(fmt.Sprintf("u%02d", i))
		if ext, _ := u.Attributes[scim.SchemaEnterpriseUser].(map[string]any); ext["manager"] != nil {
			t.Fatalf("u%02d keeps the approved-deleted manager: %v", i, ext["manager"])
		}
	}
	// A full pass afterwards finds nothing to do.
	if sum := e.sync(true); sum.Held != 0 || sum.Deleted != 0 || sum.Updated != 0 {
		t.Fatalf("full pass after approval: %+v", sum)
	}
}

// Users and groups are counted separately: a groups base DN pointed at an empty OU holds the
// deletion of every group, although the groups are few next to the users.
func TestAllGroupDeletionsHeld(t *testing.T) {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{heldDir(t, heldUsers)}},
		func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 5, 20 })
	e.sync(true)
	head := e.journalHead()
	e.cfg.Groups.BaseDN = "ou=empty,dc=example,dc=com"
	e.rebuild()
	sum := e.sync(true)
	if sum.Held != 2 || sum.Deleted != 0 || e.count(scim.GroupType) != 2 {
		t.Fatalf("every group deleted: %+v, %d groups left", sum, e.count(scim.GroupType))
	}
	holds, _ := e.store.Holds(context.Background())
	if len(holds) != 2 || holds[0].Type != scim.GroupType {
		t.Fatalf("holds %+v", holds)
	}
	e.checkUntouchedGroups(head)
}

func (e *env) checkUntouchedGroups(head uint64) {
	ctx := context.Background()
	if n, _ := e.store.MemberCount(ctx, e.group("everyone").ID); n != heldUsers {
		e.t.Fatalf("everyone has %d members", n)
	}
	for _, r := range e.journal() {
		if r.Seq > head {
			e.t.Fatalf("a pass that held its deletions journaled %s %s %s", r.Op, r.Type, r.ID)
		}
	}
}

var _ = cache.Hold{}

// A held group deletion keeps the deleted group a member of the groups that list it.
func TestHeldGroupDeletionKeepsNestedMembership(t *testing.T) {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{heldDir(t, heldUsers)}},
		func(_ *ldapsync.Config, s *ldapsync.SafetyConfig) { s.MaxDeletes, s.MaxDeletePercent = 5, 20 })
	e.sl.Add(t, `dn: cn=outer,ou=groups,dc=example,dc=com
objectClass: groupOfNames
cn: outer
member: cn=odd,ou=groups,dc=example,dc=com
member: uid=u00,ou=people,dc=example,dc=com
`)
	e.sync(true)
	ctx := context.Background()
	outer, odd := e.group("outer"), e.group("odd")
	if ok, _ := e.store.IsMember(ctx, outer.ID, odd.ID); !ok {
		t.Fatal("odd is not a member of outer after the first sync")
	}
	head := e.journalHead()
	e.sl.Modify(t, "dn: cn=odd,ou=groups,dc=example,dc=com\nchangetype: delete\n")
	for _, full := range []bool{true, false} {
		sum := e.sync(full)
		if holds, _ := e.store.Holds(ctx); len(holds) != 1 || sum.Deleted != 0 || full && sum.Held != 1 {
			t.Fatalf("full=%v: deleting 1 of 3 groups over a 20%% limit: %+v", full, sum)
		}
		if ok, err := e.store.IsMember(ctx, outer.ID, odd.ID); err != nil || !ok {
			t.Fatalf("full=%v: the held group odd left outer (%v)", full, err)
		}
		for _, r := range e.journal() {
			if r.Seq > head {
				t.Fatalf("full=%v: a pass that held its deletion journaled %s %s %s", full, r.Op, r.Type, r.ID)
			}
		}
	}
	if _, err := ldapsync.ApproveHolds(ctx, e.store, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := e.store.IsMember(ctx, outer.ID, odd.ID); ok {
		t.Fatal("approved deletion of odd left it in outer")
	}
}
