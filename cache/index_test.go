package cache

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/ldapscim/ldapscim/scim"
)

func lookup(t *testing.T, s *Store, idx Index, v string) []string {
	t.Helper()
	ids, err := s.Lookup(context.Background(), idx, v)
	if err != nil {
		t.Fatalf("Lookup(%s, %q): %v", idx, v, err)
	}
	return ids
}

func wantIDs(t *testing.T, s *Store, idx Index, v string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got := lookup(t, s, idx, v); !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup(%s, %q) = %v, want %v", idx, v, got, want)
	}
}

func TestIndexesFollowChanges(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	u := user(1)
	mustApply(t, s, Batch{Upserts: []*scim.Resource{u, user(2), group(7, 1, 2)}})

	wantIDs(t, s, IndexUserName, "USER000001", userID(1)) // case-folded
	wantIDs(t, s, IndexEmail, "User000001@Example.COM", userID(1))
	wantIDs(t, s, IndexExternalID, "E000001", userID(1))
	wantIDs(t, s, IndexExternalID, "e000001") // exact
	wantIDs(t, s, IndexDN, "UID=user000001, OU=people, DC=example, DC=com", userID(1))
	wantIDs(t, s, IndexDisplayName, "group 7", groupID(7))
	wantIDs(t, s, IndexDisplayName, "user 000001")               // groups only
	wantIDs(t, s, IndexManager, userID(0), userID(1), userID(2)) // both report to user 0

	// rename: userName, email, DN (an OU move) and display name change; the id stays
	u = user(1)
	u.Attributes["userName"] = "Ann.Smith"
	u.Attributes["displayName"] = "Ann Smith"
	u.Attributes["emails"] = []any{
		map[string]any{"value": "ann@example.com", "primary": true},
		map[string]any{"value": "ANN.SMITH@example.com"},
	}
	u.DN = "uid=ann.smith,ou=Staff,dc=example,dc=com"
	u.Attributes[scim.SchemaEnterpriseUser].(map[string]any)["manager"] = map[string]any{"value": userID(2)}
	res := mustApply(t, s, Batch{Upserts: []*scim.Resource{u}})
	if res.Updated != 1 {
		t.Fatalf("rename: %+v", res)
	}
	wantIDs(t, s, IndexUserName, "user000001")
	wantIDs(t, s, IndexUserName, "ann.smith", userID(1))
	wantIDs(t, s, IndexEmail, "user000001@example.com")
	wantIDs(t, s, IndexEmail, "ann@example.com", userID(1))
	wantIDs(t, s, IndexEmail, "ann.smith@example.com", userID(1))
	wantIDs(t, s, IndexDN, "uid=user000001,ou=People,dc=example,dc=com")
	wantIDs(t, s, IndexManager, userID(0), userID(2)) // a new manager
	wantIDs(t, s, IndexManager, userID(2), userID(1))
	ref, ok, err := s.ResolveDN(ctx, "UID=Ann.Smith,OU=Staff,DC=Example,DC=Com")
	if err != nil || !ok || ref != (Ref{ID: userID(1), Type: scim.UserType, Display: "Ann Smith"}) {
		t.Fatalf("ResolveDN = %+v %v %v", ref, ok, err)
	}
	if _, ok, err := s.ResolveDN(ctx, "uid=nobody,dc=example,dc=com"); ok || err != nil {
		t.Fatalf("ResolveDN(unknown) = %v, %v", ok, err)
	}

	// a user without displayName shows its userName
	delete(u.Attributes, "displayName")
	mustApply(t, s, Batch{Upserts: []*scim.Resource{u}})
	if ref, _, _ := s.ResolveDN(ctx, u.DN); ref.Display != "Ann.Smith" {
		t.Fatalf("display without displayName = %q", ref.Display)
	}

	groups, err := s.GroupsOf(ctx, userID(1))
	if err != nil || !reflect.DeepEqual(groups, []Ref{{ID: groupID(7), Type: scim.GroupType, Display: "Group 7"}}) {
		t.Fatalf("GroupsOf = %+v, %v", groups, err)
	}

	// delete removes every index entry
	mustApply(t, s, Batch{Deletes: []string{userID(1), groupID(7)}})
	wantIDs(t, s, IndexUserName, "ann.smith")
	wantIDs(t, s, IndexEmail, "ann@example.com")
	wantIDs(t, s, IndexExternalID, "E000001")
	wantIDs(t, s, IndexDisplayName, "group 7")
	wantIDs(t, s, IndexDN, u.DN)
	if groups, _ := s.GroupsOf(ctx, userID(2)); len(groups) != 0 {
		t.Fatalf("GroupsOf after group delete = %+v", groups)
	}
	if _, err := s.Lookup(ctx, Index("phone"), "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown index: %v", err)
	}
	wantIDs(t, s, IndexManager, userID(2))
	if keys := countKeys(t, s, kindIndex) + countKeys(t, s, kindDN) + countKeys(t, s, kindMember); keys != 5 {
		t.Fatalf("%d index keys left, want 5 (user 2: userName, email, externalId, manager, DN)", keys)
	}
}

// TestDNSwapInOneBatch moves user 2 onto user 1's old DN before user 1 moves away: the DN index
// must end up pointing at user 2, not be deleted by user 1's move.
func TestDNSwapInOneBatch(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	mustApply(t, s, Batch{Upserts: []*scim.Resource{user(1), user(2)}})
	a, b := user(1), user(2)
	dnA, dnB := a.DN, b.DN
	a.DN, b.DN = dnB, dnA
	mustApply(t, s, Batch{Upserts: []*scim.Resource{b, a}})
	for dn, id := range map[string]string{dnA: userID(2), dnB: userID(1)} {
		ref, ok, err := s.ResolveDN(ctx, dn)
		if err != nil || !ok || ref.ID != id {
			t.Errorf("ResolveDN(%s) = %+v %v %v, want %s", dn, ref, ok, err, id)
		}
	}
}

// TestBigGroupUpdateWritesOnlyTheDiff creates a 50k-member group, which takes several
// transactions of bounded size, then updates it by removing 10 members and adding 10: that
// transaction must write a handful of keys, not 50k.
func TestBigGroupUpdateWritesOnlyTheDiff(t *testing.T) {
	if testing.Short() {
		t.Skip("big group")
	}
	ctx := context.Background()
	s := openDir(t, t.TempDir()) // in memory Badger holds no value over 1 MB
	defer s.Close()
	var writes []int
	s.afterCommit = func(c chunkInfo) { writes = append(writes, c.writes) }

	const n = 50000
	members := make([]int, n)
	for i := range members {
		members[i] = i
	}
	mustApply(t, s, Batch{Upserts: []*scim.Resource{group(1, members...)}})
	total := 0
	for _, w := range writes {
		total += w
		if w > 3*defaultMemberSlice {
			t.Fatalf("a transaction of the create wrote %d keys, want <= %d", w, 3*defaultMemberSlice)
		}
	}
	if total < 2*n || len(writes) < n/defaultMemberSlice {
		t.Fatalf("create wrote %d keys in %d transactions, want > %d in >= %d", total, len(writes), 2*n, n/defaultMemberSlice)
	}
	created := len(mustJournal(t, s, 0))
	writes = nil
	if got := countKeys(t, s, kindMember); got != n {
		t.Fatalf("%d member keys after create, want %d", got, n)
	}

	next := append(append([]int{}, members[10:]...), n, n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9)
	res := mustApply(t, s, Batch{Upserts: []*scim.Resource{group(1, next...)}})
	if res.Updated != 1 {
		t.Fatalf("update: %+v", res)
	}
	// resource, ref, lastModified (del+set), 20 members × (member key + index key), journal,
	// audit, seq counter
	if w := writes[0]; w > 50 {
		t.Fatalf("update of a 50k-member group wrote %d keys, want <= 50", w)
	}
	if got := countKeys(t, s, kindMember); got != n {
		t.Fatalf("%d member keys after update, want %d", got, n)
	}
	if g, _ := s.GroupsOf(ctx, userID(0)); len(g) != 0 {
		t.Fatalf("removed member still in group: %+v", g)
	}
	if g, _ := s.GroupsOf(ctx, userID(n+9)); len(g) != 1 {
		t.Fatalf("added member not in group: %+v", g)
	}

	recs := mustJournal(t, s, uint64(created))
	if len(recs) != 1 || !reflect.DeepEqual(recs[0].Changed, []string{"members"}) {
		t.Fatalf("journal: %+v", recs)
	}
	audit, _ := s.Audit(ctx, groupID(1))
	diff := audit[len(audit)-1].Diff
	if len(diff) != 1 || diff[0].Path != "members" {
		t.Fatalf("audit diff: %+v", diff)
	}
	removed, added := diff[0].Old.([]any), diff[0].New.([]any)
	if len(removed) != 10 || len(added) != 10 || removed[0] != userID(0) || added[9] != userID(n+9) {
		t.Fatalf("members diff: removed %v, added %v", removed, added)
	}

	got, err := s.Get(ctx, scim.GroupType, groupID(1))
	if err != nil || len(got.Members) != n {
		t.Fatalf("Get: %d members, %v", len(got.Members), err)
	}
}

func TestGroupMemberDisplayChange(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	mustApply(t, s, Batch{Upserts: []*scim.Resource{group(1, 1, 2)}})
	g := group(1, 1, 2)
	g.Members[0].Display = "Renamed"
	mustApply(t, s, Batch{Upserts: []*scim.Resource{g}})
	audit, _ := s.Audit(ctx, groupID(1))
	if d := audit[1].Diff; len(d) != 1 || d[0].Path != "members.display" {
		t.Fatalf("diff = %+v", d)
	}
	if recs := mustJournal(t, s, 1); !reflect.DeepEqual(recs[0].Changed, []string{"members"}) {
		t.Fatalf("changed = %v", recs[0].Changed)
	}
}

func TestReads(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	s.now = fakeClock()
	mustApply(t, s, Batch{Upserts: users(0, 5)})
	mid := s.now() // the next txn is later than this
	mustApply(t, s, Batch{Upserts: append(users(5, 8), group(1, 0))})

	var ids []string
	if err := s.ForEachID(ctx, scim.UserType, func(id string) error { ids = append(ids, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 8 || ids[0] != userID(0) || ids[7] != userID(7) {
		t.Fatalf("ForEachID = %v", ids)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.ForEachID(ctx, scim.UserType, func(string) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("ForEachID stop: %v after %d", err, n)
	}

	page, err := s.List(ctx, scim.UserType, userID(2), 3)
	if err != nil || len(page) != 3 || page[0].ID != userID(3) || page[2].ID != userID(5) {
		t.Fatalf("List = %v, %v", page, err)
	}
	all, _ := s.List(ctx, scim.UserType, "", 0)
	if len(all) != 8 {
		t.Fatalf("List all = %d", len(all))
	}
	if groups, _ := s.List(ctx, scim.GroupType, "", 10); len(groups) != 1 || len(groups[0].Members) != 1 {
		t.Fatalf("List groups = %+v", groups)
	}

	var since []string
	if err := s.ModifiedSince(ctx, scim.UserType, mid, func(id string) error { since = append(since, id); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(since, []string{userID(5), userID(6), userID(7)}) {
		t.Fatalf("ModifiedSince = %v", since)
	}
	// an update moves a resource's lastModified entry
	u := user(0)
	u.Attributes["title"] = "CTO"
	mustApply(t, s, Batch{Upserts: []*scim.Resource{u}})
	since = nil
	s.ModifiedSince(ctx, scim.UserType, mid, func(id string) error { since = append(since, id); return nil })
	if !reflect.DeepEqual(since, []string{userID(5), userID(6), userID(7), userID(0)}) {
		t.Fatalf("ModifiedSince after update = %v", since)
	}
	if got := countKeys(t, s, kindModified); got != 9 {
		t.Fatalf("%d lastModified keys, want 9", got)
	}

	if _, err := s.Get(ctx, "Printer", "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Get(unknown type) = %v", err)
	}
	if _, err := s.Get(ctx, scim.GroupType, userID(1)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get(wrong type) = %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Get(cancelled, scim.UserType, userID(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Get(cancelled) = %v", err)
	}
}

func countKeys(t testing.TB, s *Store, kind byte) int {
	t.Helper()
	n := 0
	err := s.view(context.Background(), func(txn *badger.Txn) error {
		return scan(context.Background(), txn, []byte{kind}, nil, true, func([]byte, *badger.Item) error {
			n++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A cache written before the manager index existed gets it at Open, from the stored users.
func TestOpenBuildsTheManagerIndexOfAnOlderCache(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	mustApply(t, s, Batch{Upserts: users(0, 50)})
	// Make it look old: no manager keys, no index version.
	err := s.db.Update(func(txn *badger.Txn) error {
		var keys [][]byte
		err := scan(context.Background(), txn, indexPrefix(indexByte(IndexManager), userID(0)), nil, true, func(k []byte, _ *badger.Item) error {
			keys = append(keys, slices.Clone(k))
			return nil
		})
		for _, k := range append(keys, indexVersionKey) {
			if err == nil {
				err = txn.Delete(k)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, s, IndexManager, userID(0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openDir(t, dir)
	defer s.Close()
	ids, err := s.Lookup(context.Background(), IndexManager, userID(0))
	if err != nil || len(ids) != 50 {
		t.Fatalf("reports of user 0 after reopening: %d %v", len(ids), err)
	}
}

func TestResolveDNsAnswersEachInOneSnapshot(t *testing.T) {
	ctx := context.Background()
	s := openMem(t)
	mustApply(t, s, Batch{Upserts: []*scim.Resource{user(1), user(2), group(3, 1)}})
	dns := []string{user(2).DN, "uid=nobody,dc=example,dc=com", "", strings.ToUpper(group(3).DN), user(1).DN}
	refs, ok, err := s.ResolveDNs(ctx, dns)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{userID(2), "", "", groupID(3), userID(1)}
	for i := range dns {
		if ok[i] != (want[i] != "") || refs[i].ID != want[i] {
			t.Errorf("ResolveDNs(%q) = %+v %v, want %q", dns[i], refs[i], ok[i], want[i])
		}
		if one, found, _ := s.ResolveDN(ctx, dns[i]); found != ok[i] || one != refs[i] {
			t.Errorf("ResolveDN(%q) = %+v, ResolveDNs gave %+v", dns[i], one, refs[i])
		}
	}
}

// CountIndexed answers for many values from one snapshot, folded as the index folds them, and
// stops counting at two.
func TestCountIndexed(t *testing.T) {
	s := openMem(t)
	a, b, c := user(1), user(2), user(3)
	b.Attributes["userName"] = a.UserName()
	c.Attributes["userName"] = strings.ToUpper(a.UserName())
	mustApply(t, s, Batch{Upserts: []*scim.Resource{a, b, c, user(4)}})
	counts, err := s.CountIndexed(context.Background(), IndexUserName,
		[]string{user(4).UserName(), "nobody", a.UserName(), strings.ToUpper(user(4).UserName())})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 0, 2, 1}; !slices.Equal(counts, want) {
		t.Fatalf("counts %v, want %v", counts, want)
	}
	if _, err := s.CountIndexed(context.Background(), IndexDN, []string{"x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("IndexDN: %v", err)
	}
}
