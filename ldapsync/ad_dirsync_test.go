package ldapsync_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// The DirSync tests use the directory of adSmallTemplate (ad_helpers_test.go).

const (
	adFormer = "OU=Former,DC=example,DC=com" // outside both bases
	// enabledOnly is a users filter that leaves disabled accounts out.
	enabledOnly = "(&(objectClass=user)(objectCategory=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
)

func dirSyncEnv(t *testing.T, usersFilter string) *adEnv {
	t.Helper()
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) {
		c.ChangeTracking = ldapsync.TrackDirSync
		if usersFilter != "" {
			c.Users.Filter = usersFilter
		}
	})
	if sum := e.sync(false); !sum.Full || sum.Mode != ldapsync.TrackDirSync {
		t.Fatalf("first pass: %+v", sum)
	}
	addOU(t, e.admin, adFormer)
	return e
}

// move moves the entry CN=cn,from under the OU to.
func move(t testing.TB, c *ldap.Conn, cn, from, to string) {
	t.Helper()
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN="+cn+","+from, "CN="+cn, true, to)); err != nil {
		t.Fatalf("move %s to %s: %v", cn, to, err)
	}
}

// The DirSync counterpart of TestADDeltaDeletesUsersThatLeftTheScope. Samba's DirSync reports a
// move only when "name" is asked for, and a user disabled under an enabled-only filter only when
// the filter does not leave her out: before, such users stayed until the next full pass.
func TestADDirSyncDeltaDeletesWhatLeftTheScope(t *testing.T) {
	t.Parallel()
	e := dirSyncEnv(t, enabledOnly)
	if e.findUser(upn("ann")) == nil || e.findUser(upn("bob")) == nil || e.findUser(upn("carl")) != nil {
		t.Fatalf("after the full pass: ann %v, bob %v, carl (disabled) %v", e.findUser(upn("ann")) != nil,
			e.findUser(upn("bob")) != nil, e.findUser(upn("carl")) != nil)
	}
	c := e.admin
	bob, ann := e.user(upn("bob")), e.user(upn("ann"))

	move(t, c, "Bob Jones", adEng, adFormer)
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Lead"}) })
	if sum := e.delta(); sum.Deleted != 1 || sum.Created != 0 {
		t.Errorf("bob moved out of the users' base, ann's title changed: %+v\n%s", sum, e.logs)
	}
	if e.findUser(upn("bob")) != nil {
		t.Error("bob, moved out of the users' base, is still in the cache")
	}
	if got := e.user(upn("ann")); got.ID != ann.ID || got.Attributes["title"] != "Lead" {
		t.Errorf("ann: id %s title %v", got.ID, got.Attributes["title"])
	}
	if slices.ContainsFunc(e.group("eng").Members, func(m scim.Member) bool { return m.Value == bob.ID }) {
		t.Error("eng still lists bob, deleted")
	}

	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deleted != 1 || sum.Deactivated != 0 {
		t.Errorf("ann disabled under a filter without disabled accounts: %+v\n%s", sum, e.logs)
	}
	if e.findUser(upn("ann")) != nil {
		t.Error("ann, disabled, is still in the cache")
	}

	// A group moved out of the groups' base goes the same way.
	move(t, c, "sales", adGroups, adFormer)
	if sum := e.delta(); sum.Deleted != 1 {
		t.Errorf("sales moved out of the groups' base: %+v\n%s", sum, e.logs)
	}
	if findOne(t, e.store, cache.IndexDisplayName, scim.GroupType, "sales") != nil {
		t.Error("sales, moved out of the groups' base, is still in the cache")
	}

	if sum := e.delta(); sum.Deleted+sum.Created+sum.Updated != 0 {
		t.Errorf("the delta after: %+v", sum)
	}
	if e.findUser(upn("svc-sync")) == nil || e.count(scim.UserType) != 1 {
		t.Errorf("%d users left, want svc-sync alone", e.count(scim.UserType))
	}

	// Back in scope, bob comes back with his id.
	move(t, c, "Bob Jones", adFormer, adSales)
	if sum := e.delta(); sum.Created != 1 || sum.Deleted != 0 {
		t.Errorf("bob moved back into the users' base: %+v", sum)
	}
	if got := e.findUser(upn("bob")); got == nil || got.ID != bob.ID {
		t.Errorf("bob after his return: %v, want id %s", got, bob.ID)
	}
}

// Users and groups that DirSync reports changed and that are still in scope are never deleted:
// moved inside the base, renamed, disabled under a filter that keeps disabled accounts, moved
// out and back before the pass.
func TestADDirSyncDeltaKeepsWhatStayedInScope(t *testing.T) {
	t.Parallel()
	e := dirSyncEnv(t, "")
	c := e.admin
	users, groups := e.count(scim.UserType), e.count(scim.GroupType)
	ann, bob := e.user(upn("ann")), e.user(upn("bob"))
	sub := "OU=Sub," + adGroups
	addOU(t, c, sub)

	move(t, c, "Ann Smith", adEng, adSales)
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=Bob Jones,"+adEng, "CN=Robert Jones", true, "")); err != nil {
		t.Fatal(err)
	}
	modify(t, c, "CN=Carl Mueller,"+adSales, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Former"}) })
	move(t, c, "l3", adGroups, sub)
	if sum := e.delta(); sum.Deleted != 0 || sum.Created != 0 || sum.Held != 0 {
		t.Errorf("moves and renames inside the scope: %+v\n%s", sum, e.logs)
	}
	if got := e.user(upn("ann")); got.ID != ann.ID || !strings.EqualFold(got.DN, "CN=Ann Smith,"+adSales) {
		t.Errorf("ann after her move: id %s dn %s", got.ID, got.DN)
	}
	if got := e.user(upn("bob")); got.ID != bob.ID || !strings.HasPrefix(got.DN, "CN=Robert Jones,") {
		t.Errorf("bob after his rename: id %s dn %s", got.ID, got.DN)
	}
	if got := e.group("l3"); !strings.EqualFold(got.DN, "CN=l3,"+sub) {
		t.Errorf("l3 after its move: dn %s", got.DN)
	}

	modify(t, c, "CN=Ann Smith,"+adSales, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deactivated != 1 || sum.Deleted != 0 {
		t.Errorf("ann disabled under a filter that keeps disabled accounts: %+v", sum)
	}
	if e.user(upn("ann")).Active() {
		t.Error("ann still active")
	}

	// Out and back in between two passes: DirSync reports the object, the read finds it in scope.
	move(t, c, "Robert Jones", adEng, adFormer)
	move(t, c, "Robert Jones", adFormer, adEng)
	move(t, c, "eng", adGroups, adFormer)
	move(t, c, "eng", adFormer, adGroups)
	if sum := e.delta(); sum.Deleted != 0 || sum.Created != 0 {
		t.Errorf("out and back: %+v", sum)
	}
	if e.count(scim.UserType) != users || e.count(scim.GroupType) != groups {
		t.Errorf("%d users, %d groups; want %d, %d", e.count(scim.UserType), e.count(scim.GroupType), users, groups)
	}
	if got := memberNames(e.group("eng")); len(got) != 2 {
		t.Errorf("eng members %v", got)
	}
}

// The wide DirSync filter reports every changed user and group of the domain. One that the
// cache does not hold and whose DN lies under neither base costs no read; a cached one is read
// in its own type's scope only.
func TestADDirSyncDeltaReadsOnlyWhatCanBeInScope(t *testing.T) {
	t.Parallel()
	e := dirSyncEnv(t, enabledOnly)
	c := e.admin
	var mu sync.Mutex
	reads := map[string][]scim.ResourceType{}
	ldapsync.SetGUIDReadHook(e.s, func(typ scim.ResourceType, id string) {
		mu.Lock()
		defer mu.Unlock()
		reads[id] = append(reads[id], typ)
	})
	taken := func() map[string][]scim.ResourceType {
		mu.Lock()
		defer mu.Unlock()
		out := reads
		reads = map[string][]scim.ResourceType{}
		return out
	}

	// Outside both bases: users in OU=Former and CN=Users, a computer in CN=Computers.
	addUser(t, c, adFormer, "Fay Former", "fay", nil)
	addUser(t, c, "CN=Users,DC=example,DC=com", "Gus Users", "gus", nil)
	pc := ldap.NewAddRequest("CN=PC1,CN=Computers,DC=example,DC=com", nil)
	pc.Attribute("objectClass", []string{"computer"})
	pc.Attribute("sAMAccountName", []string{"PC1$"})
	pc.Attribute("userAccountControl", []string{"4096"})
	if err := c.Add(pc); err != nil {
		t.Fatal(err)
	}
	addGroup(t, c, "outside")
	move(t, c, "outside", adGroups, adFormer)
	taken()
	if sum := e.delta(); sum.Created+sum.Updated+sum.Deleted != 0 {
		t.Errorf("changes outside the scope: %+v", sum)
	}
	if got := taken(); len(got) != 0 {
		t.Errorf("changes outside both bases were read by GUID: %v", got)
	}

	// carl is disabled, so neither cached nor in scope, but under the users' base: read once,
	// as a user. ann is cached as a user, eng as a group: each read once, in its own scope.
	modify(t, c, "CN=Carl Mueller,"+adSales, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Gone"}) })
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Lead"}) })
	modify(t, c, "CN=eng,"+adGroups, func(m *ldap.ModifyRequest) { m.Delete("member", []string{"CN=Bob Jones," + adEng}) })
	sum := e.delta()
	if sum.Updated != 2 || sum.Created+sum.Deleted != 0 {
		t.Errorf("ann and eng changed, carl changed out of scope: %+v", sum)
	}
	got := taken()
	want := map[string][]scim.ResourceType{
		e.user(upn("ann")).ID: {scim.UserType},
		e.group("eng").ID:     {scim.GroupType},
	}
	if len(got) != 3 {
		t.Errorf("read by GUID: %v; want ann as a user, eng as a group, carl as a user", got)
	}
	for id, types := range got {
		if w, ok := want[id]; ok && !slices.Equal(types, w) || !ok && !slices.Equal(types, []scim.ResourceType{scim.UserType}) {
			t.Errorf("%s read as %v", id, types)
		}
	}
}

// Deletions of users who left the scope go through the threshold: held, they change nothing
// else (memberships and manager stay), and later passes keep them held until approved.
func TestADDirSyncScopeExitsAreHeldOverTheThreshold(t *testing.T) {
	t.Parallel()
	e := dirSyncEnv(t, enabledOnly)
	e.safe = ldapsync.SafetyConfig{MaxDeletes: 1, MaxDeletePercent: 100}
	e.rebuild()
	ctx := context.Background()
	c := e.admin
	ann, bob := e.user(upn("ann")), e.user(upn("bob"))
	move(t, c, "Bob Jones", adEng, adFormer)
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	head := e.journalHead()
	sum := e.delta()
	if sum.Held != 2 || sum.Deleted != 0 {
		t.Fatalf("two scope exits over a limit of one: %+v\n%s", sum, e.logs)
	}
	if got := e.journalHead(); got != head {
		t.Errorf("journal head %d → %d: the held deletions wrote records", head, got)
	}
	if e.findUser(upn("ann")) == nil || e.findUser(upn("bob")) == nil {
		t.Fatal("a held user is gone")
	}
	if got := memberNames(e.group("eng")); !slices.Equal(got, []string{"User:Ann Smith", "User:Bob Jones"}) {
		t.Errorf("eng members %v: the held deletions stripped memberships", got)
	}
	if m, _ := e.user(upn("ann")).Attributes[ent].(map[string]any)["manager"].(map[string]any); m["value"] != bob.ID {
		t.Errorf("ann's manager %v, want the held bob", m)
	}
	if sum := e.delta(); sum.Deleted != 0 {
		t.Errorf("idle delta after the hold: %+v", sum)
	}
	if holds, err := e.store.Holds(ctx); err != nil || len(holds) != 2 {
		t.Fatalf("holds after an idle delta: %d, %v", len(holds), err)
	}
	res, err := ldapsync.ApproveHolds(ctx, e.store, nil)
	if err != nil || res.Deleted != 2 {
		t.Fatalf("approve: %+v, %v", res, err)
	}
	if e.findUser(upn("ann")) != nil || e.findUser(upn("bob")) != nil {
		t.Error("approved deletions not applied")
	}
	if got := e.group("eng").Members; slices.ContainsFunc(got, func(m scim.Member) bool { return m.Value == ann.ID || m.Value == bob.ID }) {
		t.Errorf("eng still lists the deleted users: %v", got)
	}
}

// A bind account that is not a domain admin gets the object-security flag; DirSync reports the
// move and the disable with it too.
func TestADDirSyncScopeExitsWithTheObjectSecurityFlag(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) {
		c.ChangeTracking = ldapsync.TrackDirSync
		c.Users.Filter = enabledOnly
		c.BindDN = "CN=svc-sync," + adSales
		c.BindPassword = confvalSecret(svcPass)
	})
	e.sync(false)
	if flags := e.storedWatermark()["ad"].(map[string]any)["dirsyncFlags"]; flags != float64(1) {
		t.Fatalf("dirsyncFlags %v, want 1 (object security): the test proves nothing", flags)
	}
	addOU(t, e.admin, adFormer)
	move(t, e.admin, "Bob Jones", adEng, adFormer)
	if sum := e.delta(); sum.Deleted != 1 || e.findUser(upn("bob")) != nil {
		t.Errorf("bob moved out of the users' base: %+v", sum)
	}
	modify(t, e.admin, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deleted != 1 || e.findUser(upn("ann")) != nil {
		t.Errorf("ann disabled under a filter without disabled accounts: %+v", sum)
	}
}
