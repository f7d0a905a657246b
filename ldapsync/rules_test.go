package ldapsync_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

func rolesOf(r *scim.Resource) []string {
	var out []string
	list, _ := r.Attributes["roles"].([]any)
	for _, v := range list {
		out = append(out, v.(map[string]any)["value"].(string))
	}
	return out
}

// Rules map HR attributes to roles and virtual groups, and keep them current as people change.
func TestRulesGiveRolesAndVirtualGroups(t *testing.T) {
	rules, err := ldapsync.CompileRules([]ldapsync.RuleConfig{
		{Name: "eng", When: `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "engineering"`,
			Roles: []string{"engineer"}, Groups: []string{"Engineering (all)"}},
		{Name: "eng-managers", When: `department eq "Engineering" and title co "manager"`,
			Roles: []string{"eng-manager"}, Groups: []string{"Engineering Managers"}},
		{Name: "has-manager", When: `manager.value pr`, Groups: []string{"Reports"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := smallEnv(t, nil)
	e.rebuildWith(ldapsync.Options{Rules: rules})
	e.sync(true)

	ann, bob, carl := e.user("ann"), e.user("bob"), e.user("carl")
	for _, tc := range []struct {
		u    *scim.Resource
		want []string
	}{{ann, []string{"engineer"}}, {bob, []string{"engineer", "eng-manager"}}, {carl, nil}} {
		if got := rolesOf(tc.u); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s roles %v, want %v", tc.u.UserName(), got, tc.want)
		}
	}
	groups := map[string][]string{
		"Engineering (all)":    {"User:Ann Smith", "User:Bob Jones"},
		"Engineering Managers": {"User:Bob Jones"},
		"Reports":              {"User:Ann Smith"},
	}
	for name, want := range groups {
		g := e.group(name)
		if g.ID != ldapsync.VirtualGroupID(name) || !reflect.DeepEqual(memberNames(g), want) {
			t.Errorf("virtual group %q (%s): %v, want %v", name, g.ID, memberNames(g), want)
		}
	}

	// bob moves to Sales: his roles and virtual memberships follow after a delta pass.
	e.sl.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
replace: departmentNumber
departmentNumber: Sales
`)
	e.sync(false)
	if got := rolesOf(e.user("bob")); len(got) != 0 {
		t.Errorf("bob's roles after moving to Sales: %v", got)
	}
	if got := memberNames(e.group("Engineering Managers")); len(got) != 0 {
		t.Errorf("Engineering Managers after bob moved: %v", got)
	}
	if got := memberNames(e.group("Engineering (all)")); !reflect.DeepEqual(got, []string{"User:Ann Smith"}) {
		t.Errorf("Engineering (all) after bob moved: %v", got)
	}
	// A full pass (which skips unchanged users) keeps the virtual groups as they are.
	if sum := e.sync(true); sum.Deleted != 0 || sum.Updated != 0 {
		t.Fatalf("idle full pass with rules: %+v", sum)
	}
	if got := memberNames(e.group("Reports")); !reflect.DeepEqual(got, []string{"User:Ann Smith"}) {
		t.Errorf("Reports after an idle full pass: %v", got)
	}
	// A rule that is dropped takes its virtual group with it at the next full pass.
	rules2, _ := ldapsync.CompileRules([]ldapsync.RuleConfig{{Name: "eng", When: `department eq "Engineering"`, Roles: []string{"engineer"}}})
	e.rebuildWith(ldapsync.Options{Rules: rules2})
	sum := e.sync(true)
	if sum.Deleted != 3 {
		t.Fatalf("dropping rules: %+v, want the three virtual groups deleted", sum)
	}
}

func TestRuleConfigErrors(t *testing.T) {
	_, err := ldapsync.CompileRules([]ldapsync.RuleConfig{
		{Name: "a", When: `title eq`, Roles: []string{"x"}},
		{Name: "a", When: `shoeSize gt 40`, Roles: []string{"x"}},
		{When: `groups.display eq "x"`, Groups: []string{"y"}},
		{Name: "c", When: `title pr`},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`rules[0] (a).when: filter: at 8`,
		`rules[1] (a).name: "a" is used twice`,
		`rules[1] (a).when:`, `shoeSize`,
		`rules[2].name: is required`, `rules cannot test "groups"`,
		`rules[3] (c): has neither roles nor groups`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestExplainShowsEveryTermAndTheValueItTested(t *testing.T) {
	rules, err := ldapsync.CompileRules([]ldapsync.RuleConfig{
		{Name: "eng-managers", When: `department eq "Engineering" and (title co "manager" or emails[type eq "work"].value ew "@example.org")`,
			Roles: []string{"eng-manager"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	u := &scim.Resource{Type: scim.UserType, ID: "1", Attributes: map[string]any{
		"userName": "ann", "title": "Engineer",
		"emails":                  []any{map[string]any{"value": "ann@example.org", "type": "work"}},
		scim.SchemaEnterpriseUser: map[string]any{"department": "Engineering"},
	}}
	got := rules.Explain(u)
	if len(got) != 1 || !got[0].Matched || !reflect.DeepEqual(got[0].Roles, []string{"eng-manager"}) {
		t.Fatalf("explain: %+v", got)
	}
	var lines []string
	for _, term := range got[0].Terms {
		lines = append(lines, strings.Repeat("  ", term.Depth)+map[bool]string{true: "yes ", false: "no  "}[term.Matched]+term.Expr+" "+term.Actual)
	}
	want := []string{
		`yes department eq "Engineering" and (title co "manager" or emails[type eq "work"].value ew "@example.org") `,
		`  yes department eq "Engineering" "Engineering"`,
		`  yes title co "manager" or emails[type eq "work"].value ew "@example.org" `,
		`    no  title co "manager" "Engineer"`,
		`    yes emails[type eq "work"].value ew "@example.org" [{"type":"work","value":"ann@example.org"}]`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Fatalf("explain lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// A delta pass changes a virtual group by the users it evaluated only: the group's other members
// are neither loaded nor streamed, and the audit names only the user who moved. A rule whose
// group name changes case (the same id) restates the group with its members kept.
func TestVirtualGroupDeltaEditsOnlyTheEvaluatedUsers(t *testing.T) {
	ctx := context.Background()
	cfgs := []ldapsync.RuleConfig{{Name: "eng", When: `department eq "Engineering"`, Groups: []string{"Engineering (all)"}}}
	rules, err := ldapsync.CompileRules(cfgs)
	if err != nil {
		t.Fatal(err)
	}
	e := smallEnv(t, nil)
	cs := &countingStore{Store: e.store}
	s, err := ldapsync.New(e.cfg, e.safe, cs, ldapsync.Options{Log: testLogger(t), Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	gid := ldapsync.VirtualGroupID("Engineering (all)")
	bob := e.user("bob")
	e.sl.Modify(t, "dn: uid=bob,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: departmentNumber\ndepartmentNumber: Sales\n")
	cs.reset()
	if sum, err := s.SyncOnce(ctx); err != nil || sum.Full || sum.Read != 1 {
		t.Fatalf("delta: %+v, %v", sum, err)
	}
	if loads, streamed := cs.reads(gid); loads+streamed != 0 {
		t.Fatalf("the delta loaded the virtual group %d times and streamed %d of its members", loads, streamed)
	}
	if got := memberNames(e.group("Engineering (all)")); !reflect.DeepEqual(got, []string{"User:Ann Smith"}) {
		t.Fatalf("Engineering (all) after bob moved: %v", got)
	}
	audit, err := e.store.Audit(ctx, gid)
	if err != nil || len(audit) == 0 {
		t.Fatalf("audit: %v, %v", audit, err)
	}
	if got, want := asJSON(audit[len(audit)-1].Diff), asJSON([]cache.AttrChange{{Path: "members", Old: []string{bob.ID}}}); got != want {
		t.Fatalf("audit of bob's move: %s, want %s", got, want)
	}

	cfgs[0].Groups = []string{"ENGINEERING (ALL)"}
	if rules, err = ldapsync.CompileRules(cfgs); err != nil {
		t.Fatal(err)
	}
	if s, err = ldapsync.New(e.cfg, e.safe, cs, ldapsync.Options{Log: testLogger(t), Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncOnce(ctx); err != nil {
		t.Fatal(err)
	}
	g := e.group("ENGINEERING (ALL)")
	if g.ID != gid || g.DisplayName() != "ENGINEERING (ALL)" || !reflect.DeepEqual(memberNames(g), []string{"User:Ann Smith"}) {
		t.Fatalf("renamed virtual group %s %q: %v", g.ID, g.DisplayName(), memberNames(g))
	}
}
