package push_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// Plan reports, without sending anything, what a target would get: after a push, nothing; after
// changes in the directory, the update (with its attributes), the user leaving the scope and the
// joiner. ExplainScope says why a user is in or out.
func TestPlanAndExplainScopeAgainstSCIMMY(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Engineering", "")+
		userLDIF("bob", "Bob", "Brown", "Engineering", "alice")+
		userLDIF("carol", "Carol", "Clark", "Sales", "")+
		groupLDIF("eng", "alice", "bob"))
	cfg := e.targetConfig(e.target.URL, func(tc *push.TargetConfig) {
		tc.Scope = `department eq "Engineering"`
	})
	tg := push.NewTarget(cfg, e.store, push.WorkerOptions{})
	ctx := context.Background()
	plan := func() []string {
		t.Helper()
		changes, err := tg.Plan(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range changes {
			out = append(out, fmt.Sprintf("%s %s %s %s", c.Action, c.Type, c.Name, strings.Join(c.Attrs, ",")))
		}
		return out
	}
	if got := plan(); len(got) != 3 {
		t.Fatalf("before the first push: %q; want alice, bob and eng created", got)
	}
	drain(t, tg)
	before := len(users(t, e.target))
	if got := plan(); len(got) != 0 {
		t.Fatalf("right after a push: %q", got)
	}
	e.sl.Modify(t, fmt.Sprintf(`dn: uid=bob,ou=people,%[1]s
changetype: modify
replace: title
title: Staff Engineer

dn: uid=alice,ou=people,%[1]s
changetype: modify
replace: departmentNumber
departmentNumber: Sales

dn: uid=carol,ou=people,%[1]s
changetype: modify
replace: departmentNumber
departmentNumber: Engineering
`, base))
	e.pass()
	// eng keeps alice: a deactivated user stays a member at the target.
	want := []string{"deactivate User Alice Adams ", "update User Bob Brown title", "create User Carol Clark "}
	if got := plan(); !reflect.DeepEqual(got, want) {
		t.Fatalf("plan after changes:\n%q\nwant\n%q", got, want)
	}
	if n := len(users(t, e.target)); n != before {
		t.Fatalf("plan changed the target: %d users, was %d", n, before)
	}

	for uid, want := range map[string]string{
		"carol": `in: scope "department eq \"Engineering\"" matches`,
		"alice": `out: scope "department eq \"Engineering\"" does not match`,
	} {
		ids, _ := e.store.Lookup(ctx, "userName", uid)
		rs, _ := e.store.GetMany(ctx, scim.UserType, ids, false)
		in, why, err := tg.ExplainScope(ctx, rs[0])
		got := map[bool]string{true: "in", false: "out"}[in] + ": " + why
		if err != nil || got != want {
			t.Errorf("%s: %q, %v; want %q", uid, got, err, want)
		}
	}
}
