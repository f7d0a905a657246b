package push_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
)

// Joiner, mover, leaver, rename and membership changes go LDAP → sync → push → SCIMMY.
func TestJoinerMoverLeaverRename(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice")+
		userLDIF("carol", "Carol", "Clark", "Sales", "")+
		groupLDIF("eng", "alice", "bob")+groupLDIF("all", "alice", "bob", "carol"))
	cfg := e.targetConfig(e.target.URL, func(tc *push.TargetConfig) {
		tc.Scope = `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering"`
		tc.Deprovision = push.DeactivateThenDelete
		tc.DeleteAfter = confval.Duration(time.Hour)
	})
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	drain(t, tg)

	u := users(t, e.target)
	if len(u) != 2 || u["alice"] == nil || u["bob"] == nil {
		t.Fatalf("joiners: want alice and bob (Engineering), got %v", keys(u))
	}
	if got := enterprise(u["bob"])["manager"].(map[string]any)["value"]; got != u["alice"]["id"] {
		t.Fatalf("bob's manager at the target: %v, want alice's target id %v", got, u["alice"]["id"])
	}
	g := groups(t, e.target)
	if got := memberNames(t, e.target, g["eng"]); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("eng members %v", got)
	}
	if got := memberNames(t, e.target, g["all"]); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("all members (carol out of scope) %v", got)
	}

	// Mover: carol moves to Engineering and joins eng; bob changes title; alice leaves eng.
	e.sl.Modify(t, fmt.Sprintf(`dn: uid=carol,ou=people,%[1]s
changetype: modify
replace: departmentNumber
departmentNumber: Engineering

dn: uid=bob,ou=people,%[1]s
changetype: modify
replace: title
title: Staff Engineer

dn: cn=eng,ou=groups,%[1]s
changetype: modify
add: member
member: uid=carol,ou=people,%[1]s
-
delete: member
member: uid=alice,ou=people,%[1]s
`, base))
	e.pass()
	drain(t, tg)
	u = users(t, e.target)
	if len(u) != 3 || u["bob"]["title"] != "Staff Engineer" {
		t.Fatalf("mover: users %v, bob's title %v", keys(u), u["bob"]["title"])
	}
	g = groups(t, e.target)
	if got := memberNames(t, e.target, g["eng"]); !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("eng after the move %v", got)
	}
	if got := memberNames(t, e.target, g["all"]); !slices.Equal(got, []string{"alice", "bob", "carol"}) {
		t.Fatalf("all after the move %v", got)
	}

	// Rename: the group eng becomes platform (a modrdn), bob's surname changes.
	e.sl.Modify(t, fmt.Sprintf(`dn: cn=eng,ou=groups,%[1]s
changetype: modrdn
newrdn: cn=platform
deleteoldrdn: 1

dn: uid=bob,ou=people,%[1]s
changetype: modify
replace: sn
sn: Baker
-
replace: displayName
displayName: Bob Baker
`, base))
	e.pass()
	drain(t, tg)
	g = groups(t, e.target)
	if g["eng"] != nil || g["platform"] == nil || len(g) != 2 {
		t.Fatalf("rename: groups %v", keys(g))
	}
	u = users(t, e.target)
	if name := u["bob"]["name"].(map[string]any); name["familyName"] != "Baker" || u["bob"]["displayName"] != "Bob Baker" {
		t.Fatalf("bob's name %v / %v", name, u["bob"]["displayName"])
	}

	// Leaver: carol leaves Engineering → deactivated, still there; deleted after the grace period.
	e.sl.Modify(t, fmt.Sprintf("dn: uid=carol,ou=people,%s\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Sales\n", base))
	e.pass()
	drain(t, tg)
	u = users(t, e.target)
	if len(u) != 3 || u["carol"]["active"] != false {
		t.Fatalf("leaver must be deactivated, not deleted: %v active=%v", keys(u), u["carol"]["active"])
	}
	// Reactivation (re-entering the scope) keeps the same target user.
	carolID := u["carol"]["id"]
	e.sl.Modify(t, fmt.Sprintf("dn: uid=carol,ou=people,%s\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Engineering\n", base))
	e.pass()
	drain(t, tg)
	u = users(t, e.target)
	if u["carol"]["active"] != true || u["carol"]["id"] != carolID {
		t.Fatalf("re-entering: active=%v id %v (was %v)", u["carol"]["active"], u["carol"]["id"], carolID)
	}
	// Leave again, with a grace period that is over: deleted at the target.
	cfg.DeleteAfter = confval.Duration(time.Millisecond)
	tg = push.NewTarget(cfg, e.store, push.WorkerOptions{})
	e.sl.Modify(t, fmt.Sprintf("dn: uid=carol,ou=people,%s\nchangetype: delete\n", base))
	e.pass()
	drain(t, tg)
	time.Sleep(5 * time.Millisecond)
	drain(t, tg)
	u = users(t, e.target)
	if len(u) != 2 || u["carol"] != nil {
		t.Fatalf("carol must be deleted after the grace period: %v", keys(u))
	}
	if got := memberNames(t, e.target, groups(t, e.target)["all"]); !slices.Equal(got, []string{"alice", "bob"}) {
		t.Fatalf("all after carol left %v", got)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A report can reach the target before its manager: a first sync reads in directory order and
// the journal is pushed in batches, so the manager may be in a later batch. The batch brings the
// manager (and hers) along, creates them first, and sends the report with its manager.
func TestManagerComesAlongWithHerReport(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice")+
		userLDIF("dan", "Dan", "Doe", "Engineering", "bob"))
	ids, err := e.store.Lookup(context.Background(), cache.IndexUserName, "dan")
	if err != nil || len(ids) != 1 {
		t.Fatalf("dan: %v %v", ids, err)
	}
	tg := push.NewTarget(e.targetConfig(e.target.URL, nil), e.store, push.WorkerOptions{})
	// A batch of dan alone, as when his record is in an earlier batch than his managers'.
	if err := tg.Sync(context.Background(), ids, nil); err != nil {
		t.Fatal(err)
	}
	u := users(t, e.target)
	if u["alice"] == nil || u["bob"] == nil || u["dan"] == nil {
		t.Fatalf("want dan with bob and alice, got %v", keys(u))
	}
	if got := enterprise(u["dan"])["manager"].(map[string]any)["value"]; got != u["bob"]["id"] {
		t.Errorf("dan's manager at the target: %v, want bob's target id %v", got, u["bob"]["id"])
	}
	if got := enterprise(u["bob"])["manager"].(map[string]any)["value"]; got != u["alice"]["id"] {
		t.Errorf("bob's manager at the target: %v, want alice's target id %v", got, u["alice"]["id"])
	}
	// Their own journal records change nothing more.
	drain(t, tg)
	if after := users(t, e.target); len(after) != 3 {
		t.Fatalf("after draining the journal: %v", keys(after))
	}
}

// A manager can reach the target after her reports: here she is out of the target's scope
// first, so bob goes without a manager. When she moves into scope and is created, bob, who did
// not change, gets her as his manager.
func TestReportGetsHisManagerWhenSheArrives(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Sales", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice"))
	tg := push.NewTarget(e.targetConfig(e.target.URL, func(tc *push.TargetConfig) {
		tc.Scope = `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Engineering"`
	}), e.store, push.WorkerOptions{})
	drain(t, tg)
	u := users(t, e.target)
	if len(u) != 1 || u["bob"] == nil || enterprise(u["bob"])["manager"] != nil {
		t.Fatalf("before: want bob alone without a manager, got %v (bob %v)", keys(u), u["bob"])
	}
	e.sl.Modify(t, fmt.Sprintf("dn: uid=alice,ou=people,%s\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Engineering\n", base))
	e.pass()
	drain(t, tg)
	u = users(t, e.target)
	if u["alice"] == nil {
		t.Fatalf("alice did not arrive: %v", keys(u))
	}
	if m, _ := enterprise(u["bob"])["manager"].(map[string]any); m["value"] != u["alice"]["id"] {
		t.Fatalf("bob's manager after alice arrived: %v, want %v", m, u["alice"]["id"])
	}
}
