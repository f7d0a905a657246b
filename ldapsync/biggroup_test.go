package ldapsync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// countingStore counts the reads of a group's members: loads of the whole list (Get, GetMany
// with members) and members streamed by ForEachMember.
type countingStore struct {
	*cache.Store
	mu       sync.Mutex
	loads    map[string]int // group id → whole-list loads
	streamed map[string]int // group id → members passed to ForEachMember callbacks
}

func (c *countingStore) add(m *map[string]int, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[string]int{}
	}
	(*m)[id]++
}

// reads returns the whole-list loads and the members streamed of group id since the last reset.
func (c *countingStore) reads(id string) (loads, streamed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loads[id], c.streamed[id]
}

func (c *countingStore) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loads, c.streamed = nil, nil
}

func (c *countingStore) Get(ctx context.Context, typ scim.ResourceType, id string) (*scim.Resource, error) {
	if typ == scim.GroupType {
		c.add(&c.loads, id)
	}
	return c.Store.Get(ctx, typ, id)
}

func (c *countingStore) GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error) {
	if typ == scim.GroupType && withMembers {
		for _, id := range ids {
			c.add(&c.loads, id)
		}
	}
	return c.Store.GetMany(ctx, typ, ids, withMembers)
}

func (c *countingStore) ForEachMember(ctx context.Context, gid, after string, fn func(scim.Member) error) error {
	return c.Store.ForEachMember(ctx, gid, after, func(m scim.Member) error {
		c.add(&c.streamed, gid)
		return fn(m)
	})
}

// writeBigLDIF writes n users and one groupOfNames "big" that lists all of them, for slapadd.
func writeBigLDIF(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.ldif")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprint(w, "dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	fmt.Fprint(w, "dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range n {
		fmt.Fprintf(w, "dn: uid=u%05d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%05d\ncn: User %05d\nsn: %05d\n\n", i, i, i, i)
	}
	fmt.Fprint(w, "dn: cn=big,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: big\n")
	for i := range n {
		fmt.Fprintf(w, "member: uid=u%05d,ou=people,dc=example,dc=com\n", i)
	}
	fmt.Fprint(w, "\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// asJSON makes values read back from the audit ([]any) comparable with []string.
func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A group with tens of thousands of members syncs in full, and a delta that deletes or renames a
// few of them changes only those members: the group's member list is never loaded, and the
// journal and audit name only the members that changed.
func TestBigGroupDeltaEditsOnlyTheChangedMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("60,000 entries")
	}
	const n = 60000
	ctx := context.Background()
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{writeBigLDIF(t, n)}})
	st := openCacheForTest(t)
	cs := &countingStore{Store: st}
	cfg := testConfig(sl)
	safe := ldapsync.SafetyConfig{MaxDeletes: 1000, MaxDeletePercent: 100}
	s, err := ldapsync.New(cfg, safe, cs, ldapsync.Options{Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.SyncOnce(ctx)
	if err != nil {
		t.Fatalf("full pass: %v", err)
	}
	if !sum.Full || sum.Created != n+1 {
		t.Fatalf("full pass %+v, want %d created", sum, n+1)
	}
	gids, err := st.Lookup(ctx, cache.IndexDisplayName, "big")
	if err != nil || len(gids) != 1 {
		t.Fatalf("group big: %v, %v", gids, err)
	}
	gid := gids[0]
	if c, err := st.MemberCount(ctx, gid); err != nil || c != n {
		t.Fatalf("big has %d members (%v), want %d", c, err, n)
	}
	userID := func(uid string) string {
		ids, err := st.Lookup(ctx, cache.IndexUserName, uid)
		if err != nil || len(ids) != 1 {
			t.Fatalf("user %s: %v, %v", uid, ids, err)
		}
		return ids[0]
	}

	// Five members leave the directory; the group is not rewritten (no refint).
	var gone []string
	var ldif string
	for _, i := range []int{10, 12345, 30000, 45678, n - 1} {
		uid := fmt.Sprintf("u%05d", i)
		gone = append(gone, userID(uid))
		ldif += fmt.Sprintf("dn: uid=%s,ou=people,dc=example,dc=com\nchangetype: delete\n\n", uid)
	}
	slices.Sort(gone)
	sl.Modify(t, ldif)
	head, err := st.JournalHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs.reset()

	// The plan of that delta shows the five removals, from the member index.
	rep, err := ldapsync.Plan(ctx, cfg, safe, cs, false, ldapsync.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var groupPlan []ldapsync.PlanEntry
	deletes := 0
	for _, c := range rep.Changes {
		switch {
		case c.ID == gid:
			groupPlan = append(groupPlan, c)
		case c.Action == ldapsync.PlanDelete:
			deletes++
		}
	}
	wantDiff := asJSON([]ldapsync.AttrDiff{{Attr: "members", Old: gone, New: []string{}}})
	if deletes != 5 || len(groupPlan) != 1 || groupPlan[0].Action != ldapsync.PlanUpdate || asJSON(groupPlan[0].Diff) != wantDiff {
		t.Fatalf("plan: %d deletes, group %s; want 5 deletes and the group's update %s", deletes, jsonOf(groupPlan), wantDiff)
	}

	sum, err = s.SyncOnce(ctx)
	if err != nil {
		t.Fatalf("delta: %v", err)
	}
	if sum.Full || sum.Deleted != 5 || sum.Updated != 1 {
		t.Fatalf("delta %+v, want 5 deletes and the group updated", sum)
	}
	// The plan reads the few members it names (and their neighbours in id order), no more.
	if loads, streamed := cs.reads(gid); loads != 0 || streamed > 100 {
		t.Fatalf("the plan and the delta loaded big's member list %d times and streamed %d of its members", loads, streamed)
	}
	if c, err := st.MemberCount(ctx, gid); err != nil || c != n-5 {
		t.Fatalf("big has %d members (%v) after the delta, want %d", c, err, n-5)
	}
	for _, id := range gone {
		if in, err := st.IsMember(ctx, gid, id); err != nil || in {
			t.Fatalf("deleted %s is still a member (%v)", id, err)
		}
	}
	recs, err := st.Journal(ctx, head, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	groupRecs := 0
	for _, r := range recs {
		switch {
		case r.Op == cache.OpDeleted && r.Type == scim.UserType:
			deleted = append(deleted, r.ID)
		case r.ID == gid && r.Op == cache.OpUpdated && slices.Equal(r.Changed, []string{"members"}):
			groupRecs++
		default:
			t.Errorf("unexpected journal record %+v", r)
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, gone) || groupRecs != 1 {
		t.Fatalf("journal: deleted %v and %d group records; want %v and 1", deleted, groupRecs, gone)
	}
	audit := func() cache.AuditRecord {
		t.Helper()
		recs, err := st.Audit(ctx, gid)
		if err != nil || len(recs) == 0 {
			t.Fatalf("audit of big: %v, %v", recs, err)
		}
		return recs[len(recs)-1]
	}
	if a := audit(); asJSON(a.Diff) != asJSON([]cache.AttrChange{{Path: "members", Old: gone}}) {
		t.Fatalf("audit of the removal: %s, want only the five ids %v", jsonOf(a.Diff), gone)
	}

	// A member is renamed: its display in the group changes, and nothing else.
	renamed := userID("u00042")
	sl.Modify(t, "dn: uid=u00042,ou=people,dc=example,dc=com\nchangetype: modify\nreplace: displayName\ndisplayName: Renamed Person\n")
	cs.reset()
	sum, err = s.SyncOnce(ctx)
	if err != nil {
		t.Fatalf("rename delta: %v", err)
	}
	if sum.Full || sum.Read != 1 || sum.Updated != 2 {
		t.Fatalf("rename delta %+v, want the user and the group updated", sum)
	}
	if loads, streamed := cs.reads(gid); loads+streamed != 0 {
		t.Fatalf("the rename loaded big's member list %d times and streamed %d of its members", loads, streamed)
	}
	if a := audit(); asJSON(a.Diff) != asJSON([]cache.AttrChange{{Path: "members.display", New: []string{renamed}}}) {
		t.Fatalf("audit of the rename: %s, want members.display of %s", jsonOf(a.Diff), renamed)
	}
	ms, err := st.Members(ctx, gid, "", 0)
	if err != nil || len(ms) != n-5 {
		t.Fatalf("members: %d, %v", len(ms), err)
	}
	i, ok := slices.BinarySearchFunc(ms, renamed, func(m scim.Member, id string) int { return strings.Compare(m.Value, id) })
	if !ok || ms[i].Display != "Renamed Person" || ms[i].Type != scim.UserType {
		t.Fatalf("renamed member %s: found %v, %+v", renamed, ok, ms[min(i, len(ms)-1)])
	}
}
