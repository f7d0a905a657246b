package ingest_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

func engineer(n int, dept string) *scim.Resource {
	u := user(n, "")
	u.Attributes["title"] = dept
	return u
}

// buildAndApply runs one pass's worth of virtual groups: eval users, build, write.
func buildAndApply(t *testing.T, st *cache.Store, rules *ingest.Rules, users ...*scim.Resource) (restated []*scim.Resource, edits []cache.MemberEdit) {
	t.Helper()
	vg := ingest.NewVirtualGroups(rules)
	for _, u := range users {
		vg.Eval(u)
	}
	ed := ingest.Edits{}
	restated, err := vg.Build(context.Background(), st, ed)
	if err != nil {
		t.Fatal(err)
	}
	edits = ed.List()
	apply(t, st, cache.Batch{Upserts: append(users, restated...), MemberEdits: edits})
	return restated, edits
}

// A virtual group is restated when new, then changed by member edits naming only the users a
// pass evaluated; users not evaluated keep their membership.
func TestVirtualGroupsFollowTheUsersEvaluated(t *testing.T) {
	rules, err := ingest.CompileRules([]ingest.RuleConfig{{Name: "eng", When: `title eq "eng"`, Roles: []string{"engineer"}, Groups: []string{"Engineering"}}})
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	gid := ingest.VirtualGroupID("Engineering")
	if !rules.IsVirtual(gid) || rules.IsVirtual(uid('g', 1)) {
		t.Fatal("IsVirtual does not know the rules' group")
	}
	u1, u2, u3 := engineer(1, "eng"), engineer(2, "sales"), engineer(3, "eng")
	restated, _ := buildAndApply(t, st, rules, u1, u2, u3)
	if len(restated) != 1 || restated[0].ID != gid {
		t.Fatalf("first pass restated %v, want the new group", restated)
	}
	if got, want := memberIDs(t, st, gid), []string{u1.ID, u3.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}
	if roles, _ := u1.Attributes["roles"].([]any); len(roles) != 1 {
		t.Errorf("u1 roles %v, want engineer", u1.Attributes["roles"])
	}

	// u2 joins, u1 leaves; u3 is not evaluated (unchanged) and stays.
	u1, u2 = engineer(1, "sales"), engineer(2, "eng")
	restated, edits := buildAndApply(t, st, rules, u1, u2)
	if len(restated) != 0 {
		t.Errorf("a cached group was restated: %v", restated)
	}
	want := []cache.MemberEdit{{Group: gid, Remove: []string{u1.ID}, Set: []scim.Member{{Value: u2.ID, Type: scim.UserType, Display: "User 2"}}}}
	if !reflect.DeepEqual(edits, want) {
		t.Errorf("edits %+v, want %+v", edits, want)
	}
	if got, want := memberIDs(t, st, gid), []string{u2.ID, u3.ID}; !reflect.DeepEqual(got, want) {
		t.Errorf("members %v, want %v", got, want)
	}

	// The same group name in another case: restated, its cached members kept.
	renamed, err := ingest.CompileRules([]ingest.RuleConfig{{Name: "eng", When: `title eq "eng"`, Groups: []string{"ENGINEERING"}}})
	if err != nil {
		t.Fatal(err)
	}
	restated, _ = buildAndApply(t, st, renamed, engineer(4, "eng"))
	if len(restated) != 1 || restated[0].DisplayName() != "ENGINEERING" {
		t.Fatalf("renamed group restated as %v", restated)
	}
	if got, want := memberIDs(t, st, gid), []string{u2.ID, u3.ID, uid('u', 4)}; !reflect.DeepEqual(got, want) {
		t.Errorf("members after the rename %v, want %v", got, want)
	}
}

func TestNoRulesNoVirtualGroups(t *testing.T) {
	vg := ingest.NewVirtualGroups(nil)
	u := engineer(1, "eng")
	vg.Eval(u)
	out, err := vg.Build(context.Background(), openStore(t), ingest.Edits{})
	if err != nil || out != nil || u.Attributes["roles"] != nil {
		t.Errorf("nil rules built %v, %v and roles %v", out, err, u.Attributes["roles"])
	}
}
