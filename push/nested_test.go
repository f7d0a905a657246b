package push_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/push"
)

// groupOfGroupsLDIF is a group whose members are users (uids) and groups (cns, prefixed "cn=").
func groupOfGroupsLDIF(cn string, members ...string) string {
	s := fmt.Sprintf("dn: cn=%s,ou=groups,%s\nobjectClass: groupOfNames\ncn: %s\n", cn, base, cn)
	for _, m := range members {
		if g, ok := strings.CutPrefix(m, "cn="); ok {
			s += fmt.Sprintf("member: cn=%s,ou=groups,%s\n", g, base)
		} else {
			s += fmt.Sprintf("member: uid=%s,ou=people,%s\n", m, base)
		}
	}
	return s + "\n"
}

// targetMembers returns the names of a target group's members, sorted: userNames of users and
// "cn=" + displayName of groups. It fails on a member listed twice or one the target does not
// hold.
func targetMembers(t *testing.T, s *testenv.Scimmy, group string) []string {
	t.Helper()
	st := s.State(t)
	byID := map[string]string{}
	for _, u := range st.Users {
		byID[fmt.Sprint(u["id"])] = fmt.Sprint(u["userName"])
	}
	var g map[string]any
	for _, x := range st.Groups {
		byID[fmt.Sprint(x["id"])] = "cn=" + fmt.Sprint(x["displayName"])
		if x["displayName"] == group {
			g = x
		}
	}
	if g == nil {
		t.Fatalf("group %s is not at the target", group)
	}
	names := []string{}
	seen := map[string]bool{}
	list, _ := g["members"].([]any)
	for _, m := range list {
		id := fmt.Sprint(m.(map[string]any)["value"])
		if seen[id] || byID[id] == "" {
			t.Fatalf("group %s: member %s listed twice or unknown", group, id)
		}
		seen[id] = true
		names = append(names, byID[id])
	}
	slices.Sort(names)
	return names
}

func lookupID(t *testing.T, st *cache.Store, idx cache.Index, v string) string {
	t.Helper()
	ids, err := st.Lookup(context.Background(), idx, v)
	if err != nil || len(ids) != 1 {
		t.Fatalf("%s: %v %v", v, ids, err)
	}
	return ids[0]
}

// A group whose member group reaches the target after it gets that member as soon as the
// member group is created, without another directory change: here admins goes out in a batch
// of its own, while ops is not at the target yet (as when ops is in a later journal batch, or
// in the same wave), then ops goes out alone. Likewise a user member created after its group.
func TestNestedGroupCompletedWhenMemberGroupArrives(t *testing.T) {
	e := newEnv(t, userLDIF("alice", "Alice", "Adams", "Ops", "")+userLDIF("bob", "Bob", "Brown", "Ops", "")+
		groupOfGroupsLDIF("ops", "bob")+groupOfGroupsLDIF("admins", "alice", "cn=ops"))
	ctx := context.Background()
	alice := lookupID(t, e.store, cache.IndexUserName, "alice")
	bob := lookupID(t, e.store, cache.IndexUserName, "bob")
	admins := lookupID(t, e.store, cache.IndexDisplayName, "admins")
	ops := lookupID(t, e.store, cache.IndexDisplayName, "ops")
	rec, url := newRecorder(t, e.target.URL)
	tg := push.NewTarget(e.targetConfig(url, nil), e.store, push.WorkerOptions{})

	if err := tg.Sync(ctx, []string{alice}, []string{admins}); err != nil {
		t.Fatal(err)
	}
	if got := targetMembers(t, e.target, "admins"); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("admins before ops exists: %v", got)
	}
	rec.reset()
	if err := tg.Sync(ctx, nil, []string{ops}); err != nil {
		t.Fatal(err)
	}
	if got := targetMembers(t, e.target, "admins"); !slices.Equal(got, []string{"alice", "cn=ops"}) {
		t.Fatalf("admins once ops was created: %v, want alice and ops", got)
	}
	// Only the new member is sent, and admins is not read back from the target (O(k)).
	opsAt := groups(t, e.target)["ops"]["id"]
	if len(rec.added) != 1 || rec.added[0] != opsAt || rec.count("GET /Groups") != 1 || rec.count("PATCH /Groups") != 1 {
		t.Fatalf("completing admins: added %v (ops is %v), %d group GETs (1: the lookup of ops), %d group PATCHes",
			rec.added, opsAt, rec.count("GET /Groups"), rec.count("PATCH /Groups"))
	}
	if got := targetMembers(t, e.target, "ops"); len(got) != 0 {
		t.Fatalf("ops before bob exists: %v", got)
	}
	// bob reaches the target after his group.
	if err := tg.Sync(ctx, []string{bob}, nil); err != nil {
		t.Fatal(err)
	}
	if got := targetMembers(t, e.target, "ops"); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("ops once bob was created: %v", got)
	}
	// The journal's own records change nothing more and add nothing twice.
	drain(t, tg)
	if got := targetMembers(t, e.target, "admins"); !slices.Equal(got, []string{"alice", "cn=ops"}) {
		t.Fatalf("admins after draining: %v", got)
	}
	if dls, _ := e.store.DeadLetters(ctx, "scimmy"); len(dls) != 0 {
		t.Fatalf("dead letters: %+v", dls)
	}
}

// A chain of nested groups pushed from an empty target in one journal batch: every group
// holds its nested group after that one batch, whatever order the groups went out in.
func TestNestedChainConvergesInOneBatch(t *testing.T) {
	const depth = 6
	var ldif strings.Builder
	for i := range depth {
		ldif.WriteString(userLDIF(fmt.Sprintf("u%d", i), "U", fmt.Sprint(i), "Ops", ""))
		members := []string{fmt.Sprintf("u%d", i)}
		if i+1 < depth {
			members = append(members, fmt.Sprintf("cn=g%d", i+1))
		}
		ldif.WriteString(groupOfGroupsLDIF(fmt.Sprintf("g%d", i), members...))
	}
	e := newEnv(t, ldif.String())
	tg := push.NewTarget(e.targetConfig(e.target.URL, nil), e.store, push.WorkerOptions{})
	if n, err := tg.PushOnce(context.Background()); err != nil || n == 0 {
		t.Fatalf("push: %d, %v", n, err)
	}
	for i := range depth {
		want := []string{fmt.Sprintf("u%d", i)}
		if i+1 < depth {
			want = append(want, fmt.Sprintf("cn=g%d", i+1))
			slices.Sort(want)
		}
		if got := targetMembers(t, e.target, fmt.Sprintf("g%d", i)); !slices.Equal(got, want) {
			t.Errorf("g%d after one batch: %v, want %v", i, got, want)
		}
	}
}
