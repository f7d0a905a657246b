package ldapsync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// dirMemberIDs reads group dn's member values from slapd and returns the cached ids of the
// users they name, sorted; a value naming no cached user (a deleted one) is not a member.
func dirMemberIDs(t *testing.T, sl *testenv.Slapd, st *cache.Store, dn string) []string {
	t.Helper()
	conn := sl.Root(t)
	defer conn.Close()
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"member"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range res.Entries[0].GetAttributeValues("member") {
		uid := strings.TrimPrefix(strings.SplitN(m, ",", 2)[0], "uid=")
		found, err := st.Lookup(context.Background(), cache.IndexUserName, uid)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, found...)
	}
	slices.Sort(ids)
	return ids
}

func cachedMemberIDs(t *testing.T, st *cache.Store, gid string) []string {
	t.Helper()
	var ids []string
	err := st.ForEachMember(context.Background(), gid, "", func(m scim.Member) error {
		ids = append(ids, m.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A syncrepl delta replays a changed group's members from slapd's accesslog instead of reading
// the group again, once the log provably covers everything since the previous pass: the big
// group's member list is never streamed, and after every delta the cache lists exactly the
// members the directory does. What the log cannot prove (a log younger than the last pass, a
// replace of every value, a removed DN that names nobody now) reads the group in full, and
// gives the same result. A mass removal seen in the log is held as it is from a full read.
func TestDeltaReplaysGroupMembersFromTheAccessLog(t *testing.T) {
	const n = 3000
	ctx := context.Background()
	udn := func(i int) string { return fmt.Sprintf("uid=u%05d,ou=people,dc=example,dc=com", i) }
	const big, mid = "cn=big,ou=groups,dc=example,dc=com", "cn=mid,ou=groups,dc=example,dc=com"
	midLDIF := "dn: " + mid + "\nobjectClass: groupOfNames\ncn: mid\n"
	for i := range 40 {
		midLDIF += "member: " + udn(i) + "\n"
	}
	// slapadd writes no accesslog: the log starts with the first change after the full pass.
	path := writeBigLDIF(t, n)
	if f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0); err != nil {
		t.Fatal(err)
	} else if _, err := f.WriteString(midLDIF + "\n"); err != nil || f.Close() != nil {
		t.Fatal(err)
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{path}})
	st := openCacheForTest(t)
	cs := &countingStore{Store: st}
	safe := ldapsync.SafetyConfig{MaxDeletes: 1000, MaxDeletePercent: 50}
	s, err := ldapsync.New(testConfig(sl), safe, cs, ldapsync.Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SyncFull(ctx); err != nil {
		t.Fatal(err)
	}
	gid := func(name string) string {
		ids, err := st.Lookup(ctx, cache.IndexDisplayName, name)
		if err != nil || len(ids) != 1 {
			t.Fatalf("group %s: %v %v", name, ids, err)
		}
		return ids[0]
	}
	bigID, midID := gid("big"), gid("mid")
	delta := func(step string, wantReplayed int) ldapsync.Summary {
		t.Helper()
		cs.reset()
		sum, err := s.SyncOnce(ctx)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if sum.Full || sum.Replayed != wantReplayed {
			t.Fatalf("%s: %+v, want %d groups replayed", step, sum, wantReplayed)
		}
		for _, g := range []struct{ dn, id string }{{big, bigID}, {mid, midID}} {
			if want, got := dirMemberIDs(t, sl, st, g.dn), cachedMemberIDs(t, st, g.id); !slices.Equal(want, got) && (g.id != midID || step != "a mass removal") {
				t.Fatalf("%s: %s has %d members in the cache, %d in the directory", step, g.dn, len(got), len(want))
			}
		}
		return sum
	}
	modify := func(dn string, lines ...string) {
		sl.Modify(t, "dn: "+dn+"\nchangetype: modify\n"+strings.Join(lines, "\n")+"\n")
	}

	// The log starts after the full pass: it cannot prove it holds every change since.
	modify(big, "delete: member", "member: "+udn(1))
	delta("a log younger than the last pass", 0)
	if _, streamed := cs.reads(bigID); streamed < n-1 {
		t.Fatalf("the first delta streamed %d members: it did not read the group in full", streamed)
	}

	// From now on it does. Removals, a new user added, a member removed and added back, a
	// member removed in the previous delta added back: replayed without streaming big.
	for i := 2; i <= 6; i++ {
		modify(big, "delete: member", "member: "+udn(i))
	}
	sl.Add(t, "dn: uid=newbie,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: newbie\ncn: Newbie\nsn: N\n")
	modify(big, "add: member", "member: uid=newbie,ou=people,dc=example,dc=com")
	modify(big, "delete: member", "member: "+udn(7))
	modify(big, "add: member", "member: "+udn(7), "member: "+udn(1))
	head, err := st.JournalHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sum := delta("replayed changes", 1)
	if loads, streamed := cs.reads(bigID); loads != 0 || streamed != 0 {
		t.Fatalf("the replay loaded big %d times and streamed %d members", loads, streamed)
	}
	if sum.Created != 1 || sum.Updated < 1 {
		t.Fatalf("replayed changes: %+v", sum)
	}
	recs, err := st.Journal(ctx, head, 100)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := st.MemberCount(ctx, bigID); err != nil || c != n-5+1 {
		t.Fatalf("big has %d members (%v), want %d; journal %s", c, err, n-4, jsonOf(recs))
	}

	// A replace of every value cannot be replayed: big is read in full, with the same result.
	replace := []string{"replace: member", "member: uid=newbie,ou=people,dc=example,dc=com"}
	for i := 10; i < n; i++ {
		replace = append(replace, "member: "+udn(i))
	}
	modify(big, replace...)
	delta("a replace", 0)
	if c, _ := st.MemberCount(ctx, bigID); c != n-10+1 {
		t.Fatalf("big has %d members after the replace, want %d", c, n-10+1)
	}

	// A user deleted: pruned from mid (the delta's deletion), its DN left in mid (no refint).
	// Removing the DN later names nobody: mid is read in full.
	sl.Modify(t, "dn: "+udn(39)+"\nchangetype: delete\n")
	delta("a deletion", 0)
	modify(mid, "delete: member", "member: "+udn(39))
	delta("a removed DN that names nobody", 0)
	if c, _ := st.MemberCount(ctx, midID); c != 39 {
		t.Fatalf("mid has %d members, want 39", c)
	}

	// 30 of mid's 39 members removed in the log: held, as after a full read.
	var lines []string
	lines = append(lines, "delete: member")
	for i := 5; i < 35; i++ {
		lines = append(lines, "member: "+udn(i))
	}
	modify(mid, lines...)
	sum = delta("a mass removal", 1)
	if sum.HeldMembers != 30 {
		t.Fatalf("mass removal: %+v", sum)
	}
	if c, _ := st.MemberCount(ctx, midID); c != 39 {
		t.Fatalf("mid has %d members after a held removal, want 39", c)
	}
	holds, err := st.Holds(ctx)
	if err != nil || len(holds) != 1 || holds[0].ID != midID || len(holds[0].Members) != 30 {
		t.Fatalf("holds: %+v %v", holds, err)
	}
	if _, err := ldapsync.ApproveHolds(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	if want, got := dirMemberIDs(t, sl, st, mid), cachedMemberIDs(t, st, midID); !slices.Equal(want, got) {
		t.Fatalf("mid after approval: %d members in the cache, %d in the directory", len(got), len(want))
	}
	// A group with a members hold is read in full; without one, replayed again.
	modify(mid, "add: member", "member: "+udn(5))
	delta("after approval", 1)

	// A group the previous delta could not read (renamed or deleted between its syncrepl
	// search and its read) is read in full by the next delta, once.
	raw, err := st.Watermark(ctx, ldapsync.Source)
	if err != nil {
		t.Fatal(err)
	}
	var wm map[string]any
	if err := json.Unmarshal(raw, &wm); err != nil {
		t.Fatal(err)
	}
	wm["readInFull"] = []string{bigID}
	raw, _ = json.Marshal(wm)
	if _, err := st.Apply(ctx, cache.Batch{Source: ldapsync.Source, Pass: "test", Watermark: raw}); err != nil {
		t.Fatal(err)
	}
	modify(big, "delete: member", "member: "+udn(20))
	delta("a group the previous delta could not read", 0)
	modify(big, "delete: member", "member: "+udn(21))
	delta("the delta after it", 1)
}
