package ldapsync_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

const ent = scim.SchemaEnterpriseUser

func smallEnv(t *testing.T, tweak func(*ldapsync.Config, *ldapsync.SafetyConfig)) *env {
	return newEnv(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}}, tweak)
}

func TestFullSyncGivesExactlyTheExpectedResources(t *testing.T) {
	e := smallEnv(t, nil)
	sum := e.sync(false)
	if !sum.Full || sum.Created != 7 || sum.Skipped != 1 {
		t.Fatalf("summary %+v, want full with 7 created (3 users, 4 groups) and 1 skipped", sum)
	}
	if n := e.count(scim.UserType); n != 3 {
		t.Fatalf("%d users, want 3", n)
	}
	ann, bob, carl := e.user("ann"), e.user("bob"), e.user("carl")
	want := map[string]any{
		"userName":    "ann",
		"displayName": "Ann Smith",
		"name":        map[string]any{"givenName": "Ann", "familyName": "Smith", "formatted": "Ann Smith"},
		"emails": []any{
			map[string]any{"value": "Ann.Smith@example.com", "type": "work", "primary": true},
			map[string]any{"value": "ann@example.org", "type": "work"},
		},
		"phoneNumbers": []any{
			map[string]any{"value": "+1 555 0199", "type": "mobile"},
			map[string]any{"value": "+1 555 0100", "type": "work"},
		},
		"title":  "Engineer",
		"active": true,
		ent: map[string]any{
			"employeeNumber": "E100", "department": "Engineering", "organization": "Example Corp",
			"manager": map[string]any{"value": bob.ID, "displayName": "Bob Jones"},
		},
	}
	if !reflect.DeepEqual(normalizeJSON(ann.Attributes), normalizeJSON(want)) {
		t.Errorf("ann:\n%s\nwant:\n%s", jsonOf(ann.Attributes), jsonOf(want))
	}
	if ann.ExternalID != "E100" || len(ann.ID) != 36 || ann.DN != "uid=ann,ou=people,dc=example,dc=com" {
		t.Errorf("ann id/externalId/dn: %q %q %q", ann.ID, ann.ExternalID, ann.DN)
	}
	if bob.DisplayName() != "Bob Jones" {
		t.Errorf("bob displayName %q, want the cn fallback", bob.DisplayName())
	}
	if carl.Active() || carl.Attributes[ent].(map[string]any)["department"] != "Sales" {
		t.Errorf("carl: active=%v, enterprise %v; want inactive, department from ou", carl.Active(), carl.Attributes[ent])
	}
	if _, ok := bob.Attributes[ent].(map[string]any)["manager"]; ok {
		t.Error("bob has a manager; he has none")
	}

	if got, want := memberNames(e.group("engineering")), []string{"User:Ann Smith", "User:Bob Jones"}; !reflect.DeepEqual(got, want) {
		t.Errorf("engineering members %v, want %v (the ghost DN names no entry)", got, want)
	}
	if got, want := memberNames(e.group("all")), []string{"Group:engineering", "Group:sales"}; !reflect.DeepEqual(got, want) {
		t.Errorf("nested group members %v, want %v", got, want)
	}
	if got, want := memberNames(e.group("sales")), []string{"User:Carl Müller"}; !reflect.DeepEqual(got, want) {
		t.Errorf("groupOfUniqueNames members %v, want %v (carl's uniqueMember value has an optional UID)", got, want)
	}
	if got, want := memberNames(e.group("unix")), []string{"User:Ann Smith", "User:Carl Müller"}; !reflect.DeepEqual(got, want) {
		t.Errorf("posixGroup members %v, want %v", got, want)
	}
	groups, err := e.store.GroupsOf(context.Background(), ann.ID)
	if err != nil || len(groups) != 2 {
		t.Errorf("groups of ann: %v, %v; want engineering and unix", groups, err)
	}

	// A second pass over an unchanged directory writes nothing.
	head := len(e.journal())
	sum = e.sync(true)
	if sum.Created+sum.Updated+sum.Deleted+sum.Deactivated != 0 || sum.Unchanged != 7 {
		t.Fatalf("second full pass %+v, want 7 unchanged", sum)
	}
	if n := len(e.journal()); n != head {
		t.Fatalf("journal grew from %d to %d on an unchanged directory", head, n)
	}
}

// normalizeJSON makes order-insensitive what the mapping does not order (phone types).
func normalizeJSON(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if list, ok := v.([]any); ok && k == "phoneNumbers" {
			sorted := append([]any{}, list...)
			for i := range sorted {
				for j := i + 1; j < len(sorted); j++ {
					if sorted[j].(map[string]any)["type"].(string) < sorted[i].(map[string]any)["type"].(string) {
						sorted[i], sorted[j] = sorted[j], sorted[i]
					}
				}
			}
			v = sorted
		}
		out[k] = v
	}
	return out
}

func TestDeltaSyncrepl(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(false)
	ann := e.user("ann")
	e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Staff Engineer
`)
	sum := e.sync(false)
	if sum.Full || sum.Mode != ldapsync.TrackSyncrepl || sum.Updated != 1 || sum.Created != 0 {
		t.Fatalf("delta after one change: %+v", sum)
	}
	got := e.user("ann")
	if got.ID != ann.ID || got.String("title") != "Staff Engineer" {
		t.Fatalf("ann after delta: id %s title %q", got.ID, got.String("title"))
	}
	if !got.Meta.LastModified.After(ann.Meta.LastModified) || got.Meta.Version == ann.Meta.Version {
		t.Fatal("meta.lastModified/version did not move")
	}

	// Nothing changed: an empty cookie from the server keeps ours, and nothing is written.
	if sum := e.sync(false); sum.Read != 0 || sum.Updated != 0 {
		t.Fatalf("idle delta: %+v", sum)
	}

	// Create and delete.
	e.sl.Add(t, `dn: uid=dora,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: dora
cn: Dora Diaz
sn: Diaz
`)
	e.sl.Modify(t, `dn: uid=carl,ou=people,dc=example,dc=com
changetype: delete
`)
	sum = e.sync(false)
	if sum.Created != 1 || sum.Deleted != 1 {
		t.Fatalf("delta with a create and a delete: %+v", sum)
	}
	if !e.hasUser("dora") || e.hasUser("carl") {
		t.Fatal("dora should exist and carl should be gone")
	}
	// carl's groups were not re-read, but a deleted entry is no longer a member.
	if got := memberNames(e.group("sales")); len(got) != 0 {
		t.Fatalf("sales still lists %v after carl was deleted", got)
	}
	if got, want := memberNames(e.group("unix")), []string{"User:Ann Smith"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("unix members %v, want %v", got, want)
	}
}

func TestRenameAndMoveKeepTheID(t *testing.T) {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}, Refint: true}, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.Users.BaseDN = "dc=example,dc=com" // so a move to ou=former stays in scope
	})
	e.sync(false)
	bob := e.user("bob")
	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: modrdn
newrdn: uid=robert
deleteoldrdn: 1
newsuperior: ou=former,dc=example,dc=com
`)
	waitRefint(t, e)
	sum := e.sync(false)
	if sum.Deleted != 0 || sum.Created != 0 {
		t.Fatalf("rename+move: %+v; want updates only", sum)
	}
	robert := e.user("robert")
	if robert.ID != bob.ID || robert.DN != "uid=robert,ou=former,dc=example,dc=com" {
		t.Fatalf("after modrdn: id %s (was %s), dn %s", robert.ID, bob.ID, robert.DN)
	}
	if e.hasUser("bob") {
		t.Fatal("old userName still indexed")
	}
	// refint rewrote ann's manager and the group member; both still resolve to the same id.
	if m := e.user("ann").Attributes[ent].(map[string]any)["manager"].(map[string]any); m["value"] != bob.ID {
		t.Fatalf("ann's manager %v, want %s", m, bob.ID)
	}
	found := false
	for _, m := range e.group("engineering").Members {
		found = found || m.Value == bob.ID
	}
	if !found {
		t.Fatal("renamed member dropped from its group")
	}
}

// An OU rename changes the DNs below it without changing those entries, so no delta reads
// them; a group edited afterwards names its members by their new DNs, which the cache does not
// know yet. The delta pass resolves them through the directory instead of dropping them.
func TestGroupEditAfterOURenameKeepsItsMembers(t *testing.T) {
	e := smallEnv(t, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) {
		c.Users.BaseDN = "dc=example,dc=com" // ou=people is renamed
	})
	e.sync(false)
	ann, bob := e.user("ann"), e.user("bob")
	e.sl.Modify(t, `dn: ou=people,dc=example,dc=com
changetype: modrdn
newrdn: ou=staff
deleteoldrdn: 1
`)
	e.sync(false)
	e.sl.Modify(t, `dn: cn=engineering,ou=groups,dc=example,dc=com
changetype: modify
replace: member
member: uid=ann,ou=staff,dc=example,dc=com
member: uid=bob,ou=staff,dc=example,dc=com
`)
	if sum := e.sync(false); sum.Full || sum.Read != 1 {
		t.Fatalf("group edit: %+v; want a delta that reads the group", sum)
	}
	want := []string{"User:" + ann.DisplayName(), "User:" + bob.DisplayName()}
	if got := memberNames(e.group("engineering")); !reflect.DeepEqual(got, want) {
		t.Fatalf("engineering members %v after the OU rename and the edit, want %v", got, want)
	}
	// The next full pass brings the cached DNs up to date.
	e.sync(true)
	if d := e.user("ann").DN; d != "uid=ann,ou=staff,dc=example,dc=com" {
		t.Fatalf("ann's DN after a full pass: %s", d)
	}
}

// A delta pass that renames an entry also updates the names other resources copy from it: the
// manager.displayName of its reports and its display in the groups that list it, although
// neither the reports nor the groups changed in the directory.
func TestDeltaRenameRefreshesCopiedNames(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(false)
	bob := e.user("bob")
	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
add: displayName
displayName: Robert Jones
`)
	// The plan of that delta shows the same three updates.
	rep, err := ldapsync.Plan(context.Background(), e.cfg, e.safe, e.store, false, ldapsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var planned []string
	for _, c := range rep.Changes {
		planned = append(planned, c.Action+" "+c.Name)
	}
	slices.Sort(planned)
	if want := []string{"update Ann Smith", "update Robert Jones", "update engineering"}; !slices.Equal(planned, want) {
		t.Errorf("plan of the rename: %v, want %v", planned, want)
	}
	sum := e.sync(false)
	if sum.Full || sum.Read != 1 {
		t.Fatalf("rename: %+v; want a delta that reads bob only", sum)
	}
	// bob, ann (his report) and engineering (lists him).
	if sum.Updated != 3 {
		t.Errorf("rename updated %d resources, want 3 (bob, his report, his group)", sum.Updated)
	}
	mgr := e.user("ann").Attributes[ent].(map[string]any)["manager"].(map[string]any)
	if mgr["value"] != bob.ID || mgr["displayName"] != "Robert Jones" {
		t.Errorf("ann's manager after the rename: %v", mgr)
	}
	if got, want := memberNames(e.group("engineering")), []string{"User:Ann Smith", "User:Robert Jones"}; !reflect.DeepEqual(got, want) {
		t.Errorf("engineering members %v, want %v", got, want)
	}
	// The report's source record has the new name: a full pass finds nothing to change.
	if sum := e.sync(true); sum.Updated != 0 || sum.Created != 0 {
		t.Errorf("full pass after the rename: %+v; want nothing changed", sum)
	}
}

// A delta pass that deletes a manager drops the manager from the reports at once, with and
// without refint (whose rewrite of the reports syncrepl never shows), and the next full pass
// agrees.
func TestDeltaDeleteDropsTheManagerFromReports(t *testing.T) {
	for _, refint := range []bool{false, true} {
		t.Run(fmt.Sprintf("refint=%v", refint), func(t *testing.T) {
			e := newEnv(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}, Refint: refint}, nil)
			e.sync(false)
			if _, ok := e.user("ann").Attributes[ent].(map[string]any)["manager"]; !ok {
				t.Fatal("ann has no manager to begin with")
			}
			e.sl.Modify(t, "dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: delete\n")
			if refint {
				// refint_nothing: the last value becomes a placeholder DN that names no entry.
				testenv.WaitFor(t, func() bool { return e.sl.Has(t, "(&(uid=ann)(manager=cn=nobody,dc=example,dc=com))") })
			}
			if sum := e.sync(false); sum.Full || sum.Deleted != 1 {
				t.Fatalf("delete: %+v; want a delta that deletes bob", sum)
			}
			if m, ok := e.user("ann").Attributes[ent].(map[string]any)["manager"]; ok {
				t.Fatalf("ann's manager after his deletion: %v", m)
			}
			if sum := e.sync(true); sum.Updated != 0 || sum.Deleted != 0 {
				t.Fatalf("full pass after the delete: %+v; want nothing changed", sum)
			}
		})
	}
}

// waitRefint lets refint's asynchronous rewrites land before the next pass reads.
func waitRefint(t *testing.T, e *env) {
	t.Helper()
	testenv.WaitFor(t, func() bool {
		return e.sl.Has(t, "(&(uid=ann)(manager=uid=robert,ou=former,dc=example,dc=com))")
	})
}

func TestPresentPhaseAfterRestartDeletes(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(false)
	e.sl.Restart(t) // the session log is gone
	e.sl.Modify(t, `dn: uid=carl,ou=people,dc=example,dc=com
changetype: delete
`)
	e.sl.Restart(t) // and gone again, so the delete above is only visible as "not present"
	sum := e.sync(false)
	if sum.Full || sum.Deleted != 1 || e.hasUser("carl") {
		t.Fatalf("present phase: %+v, carl still cached=%v", sum, e.hasUser("carl"))
	}
	if e.count(scim.UserType) != 2 || e.count(scim.GroupType) != 4 {
		t.Fatalf("present phase deleted too much: %d users %d groups", e.count(scim.UserType), e.count(scim.GroupType))
	}
}

func TestModifyTimestampModeAndReconciliation(t *testing.T) {
	e := smallEnv(t, func(c *ldapsync.Config, _ *ldapsync.SafetyConfig) { c.ChangeTracking = ldapsync.TrackModifyTimestamp })
	if sum := e.sync(false); sum.Mode != ldapsync.TrackModifyTimestamp {
		t.Fatalf("mode %q", sum.Mode)
	}
	e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Principal

dn: uid=carl,ou=people,dc=example,dc=com
changetype: delete
`)
	sum := e.sync(false)
	if sum.Full || e.user("ann").String("title") != "Principal" {
		t.Fatalf("delta: %+v, title %q", sum, e.user("ann").String("title"))
	}
	if !e.hasUser("carl") || sum.Deleted != 0 {
		t.Fatal("modifyTimestamp mode cannot see deletions; a delta pass must not delete")
	}
	if sum := e.sync(true); sum.Deleted != 1 || e.hasUser("carl") {
		t.Fatalf("reconciliation did not delete carl: %+v", sum)
	}
}

// In a full pass a report is often read before its manager, so the manager's id comes from the
// cache at first; the pass must notice when the read shows that DN now names another entry, or
// no entry at all.
func TestFullPassRechecksReferencesTakenFromTheCache(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(true)
	oldBob := e.user("bob").ID
	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: delete
`)
	e.sl.Add(t, `dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob Jones II
sn: Jones
`)
	e.sync(true)
	newBob := e.user("bob").ID
	m, _ := e.user("ann").Attributes[ent].(map[string]any)["manager"].(map[string]any)
	if newBob == oldBob || m["value"] != newBob || m["displayName"] != "Bob Jones II" {
		t.Fatalf("ann's manager %v; want the new bob %s (old %s)", m, newBob, oldBob)
	}

	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: delete
`)
	e.sync(true)
	if _, ok := e.user("ann").Attributes[ent].(map[string]any)["manager"]; ok {
		t.Fatal("ann still has a manager after bob was deleted")
	}
}

// Full passes skip users whose entry and manager did not change (source hashes); a change of
// the manager's display name, or of the mapping, must still reach the cache.
func TestFullPassSkipsOnlyWhatReallyDidNotChange(t *testing.T) {
	e := smallEnv(t, nil)
	e.sync(true)
	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
replace: displayName
displayName: Robert Jones
`)
	sum := e.sync(true)
	m := e.user("ann").Attributes[ent].(map[string]any)["manager"].(map[string]any)
	if m["displayName"] != "Robert Jones" {
		t.Fatalf("ann's manager display %v after bob's rename (summary %+v)", m["displayName"], sum)
	}
	if sum := e.sync(true); sum.Unchanged != 7 || sum.Updated != 0 {
		t.Fatalf("idle full pass: %+v", sum)
	}
	e.cfg.Users.Mapping = map[string]string{"title": "departmentNumber"}
	e.rebuild()
	if sum := e.sync(true); sum.Updated != 2 || e.user("ann").String("title") != "Engineering" {
		t.Fatalf("mapping change: %+v, ann's title %q", sum, e.user("ann").String("title"))
	}
}

// A directory without the syncprov overlay gets modifyTimestamp deltas without being told to.
func TestAutoFallsBackToModifyTimestampWithoutSyncprov(t *testing.T) {
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{"testdata/small.ldif"}, NoSyncprov: true}, nil)
	if sum := e.sync(false); sum.Mode != ldapsync.TrackModifyTimestamp {
		t.Fatalf("mode %q, want modifytimestamp", sum.Mode)
	}
	e.sl.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: title
title: Fallback Engineer
`)
	if sum := e.sync(false); sum.Full || sum.Updated != 1 || e.user("ann").String("title") != "Fallback Engineer" {
		t.Fatalf("delta without syncprov: %+v", sum)
	}
	e.cfg.ChangeTracking = ldapsync.TrackSyncrepl
	e.rebuild()
	if _, err := e.s.SyncFull(context.Background()); err == nil || !strings.Contains(err.Error(), "syncprov") {
		t.Fatalf("change_tracking = syncrepl against a server without it: %v", err)
	}
}
