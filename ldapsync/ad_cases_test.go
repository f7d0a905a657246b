package ldapsync_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

func TestADDirSyncMode(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) { c.ChangeTracking = ldapsync.TrackDirSync })
	if sum := e.sync(false); !sum.Full || sum.Mode != ldapsync.TrackDirSync || e.count(scim.UserType) != 4 {
		t.Fatalf("full: %+v, %d users", sum, e.count(scim.UserType))
	}
	ann := e.user(upn("ann"))
	if sum := e.delta(); sum.Created+sum.Updated+sum.Deleted != 0 {
		t.Errorf("idle DirSync delta changed something: %+v", sum)
	}
	c := e.admin
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Lead"}) })
	addUser(t, c, adSales, "Dora Diaz", "dora", nil)
	if sum := e.delta(); sum.Mode != ldapsync.TrackDirSync || sum.Updated != 1 || sum.Created != 1 {
		t.Errorf("change + create: %+v\n%s", sum, e.logs)
	}
	if got := e.user(upn("ann")); got.ID != ann.ID || got.Attributes["title"] != "Lead" {
		t.Errorf("ann title %v", got.Attributes["title"])
	}
	// A cleared attribute comes back from DirSync without values: it must disappear.
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Delete("title", nil) })
	e.delta()
	if v, ok := e.user(upn("ann")).Attributes["title"]; ok {
		t.Errorf("ann title still %v after clearing it", v)
	}
	modify(t, c, "CN=eng,"+adGroups, func(m *ldap.ModifyRequest) { m.Add("member", []string{"CN=Dora Diaz," + adSales}) })
	e.delta()
	if got := memberNames(e.group("eng")); len(got) != 3 {
		t.Errorf("eng after adding dora: %v", got)
	}
	if err := c.Del(ldap.NewDelRequest("CN=Dora Diaz,"+adSales, nil)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Deleted != 1 {
		t.Errorf("delete via isDeleted: %+v", sum)
	}
	if e.findUser(upn("dora")) != nil || len(e.group("eng").Members) != 2 {
		t.Error("dora survived her deletion")
	}
}

// The invocationId of the DC changes on a restore: the USN watermark no longer means anything,
// so the next pass is a full reconciliation — which deletes nothing that still exists.
func TestADInvocationIDChangeForcesFullPass(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), nil)
	e.sync(false)
	users, groups := e.count(scim.UserType), e.count(scim.GroupType)
	w := e.storedWatermark()
	ad := w["ad"].(map[string]any)
	ad["invocationId"] = "00000000-0000-0000-0000-000000000001"
	e.setWatermark(w)
	sum := e.sync(false)
	if !sum.Full || sum.Deleted != 0 || sum.Created != 0 || sum.Partial != "" {
		t.Errorf("pass after the invocationId change: %+v, want full, nothing created or deleted", sum)
	}
	if !strings.Contains(e.logs.String(), "invocationId") {
		t.Errorf("the reason was not logged:\n%s", e.logs)
	}
	if e.count(scim.UserType) != users || e.count(scim.GroupType) != groups {
		t.Error("counts changed")
	}
	if got := e.storedWatermark()["ad"].(map[string]any)["invocationId"]; got == ad["invocationId"] {
		t.Error("the full pass did not record the real invocationId")
	}
	if sum := e.delta(); sum.Full {
		t.Error("the next pass is still full")
	}
}

func TestADNestedGroupsTransitiveAndCycle(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), nil)
	e.sync(false)
	ctx := context.Background()
	names := func(id string) []string {
		refs, err := e.store.TransitiveGroupsOf(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range refs {
			out = append(out, r.Display)
		}
		return sortStrings(out)
	}
	if got, want := names(e.user(upn("ann")).ID), []string{"eng", "l1", "l2", "l3", "all"}; !reflect.DeepEqual(got, sortStrings(want)) {
		t.Errorf("ann transitive groups %v, want %v", got, want)
	}
	direct, _ := e.store.GroupsOf(ctx, e.user(upn("ann")).ID)
	if len(direct) != 2 {
		t.Errorf("ann direct groups %v, want eng and l1", direct)
	}
	// bob ∈ cyc-a ∈ cyc-b ∈ cyc-a.
	if got, want := names(e.user(upn("bob")).ID), []string{"all", "cyc-a", "cyc-b", "eng"}; !reflect.DeepEqual(got, want) {
		t.Errorf("bob transitive groups %v, want %v", got, want)
	}
	if got := memberNames(e.group("cyc-a")); !reflect.DeepEqual(got, []string{"Group:cyc-b", "User:Bob Jones"}) {
		t.Errorf("cyc-a direct members %v", got)
	}
}

func sortStrings(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// The bind account's first bind sets lastLogonTimestamp, which bumps its uSNChanged. The
// next delta pass reads it again, finds the same content and writes no journal record.
func TestADBindAccountFirstBindCausesNoJournalRecord(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) {
		c.BindDN = "CN=svc-sync," + adSales
		c.BindPassword = confvalSecret(svcPass)
	})
	svc := "CN=svc-sync," + adSales
	before := uSNChanged(t, e.admin, svc)
	e.sync(false)
	after := uSNChanged(t, e.admin, svc)
	if after <= before {
		t.Fatalf("the first bind did not bump uSNChanged (%d → %d); the test proves nothing", before, after)
	}
	wmUSN := int64(e.storedWatermark()["ad"].(map[string]any)["usn"].(float64))
	head := e.journalHead()
	sum := e.delta()
	if after > wmUSN && sum.Read == 0 {
		t.Errorf("the bumped account (uSNChanged %d > watermark %d) was not read again: %+v", after, wmUSN, sum)
	}
	if got := e.journalHead(); got != head || sum.Updated != 0 {
		t.Errorf("journal head %d → %d, summary %+v: the bump made a journal record", head, got, sum)
	}
}

// A group of 2,000 members, read in ranges of 500 (Samba ranges only when asked).
func bigGroupTemplate() testenv.SambaOptions {
	return testenv.SambaOptions{Template: "ad-big-group", Populate: func(t testing.TB, dc *testenv.Samba) {
		c := dc.Admin(t)
		addOU(t, c, adStaff)
		addOU(t, c, adGroups)
		members := make([]string, 0, 2000)
		for i := range 2000 {
			cn := fmt.Sprintf("Member %04d", i)
			addUser(t, c, adStaff, cn, fmt.Sprintf("m%04d", i), nil)
			members = append(members, "CN="+cn+","+adStaff)
		}
		addGroup(t, c, "big", members...)
	}}
}

func TestADBigGroupRangeRetrieval(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, bigGroupTemplate(), func(c *ldapsync.Config) { c.RangeStep = 500 })
	if sum := e.sync(false); sum.Partial != "" {
		t.Fatalf("full: %+v", sum)
	}
	if n := len(e.group("big").Members); n != 2000 {
		t.Fatalf("big has %d members, want 2000", n)
	}

	// Remove one member in the directory, then let the second range request fail: the pass
	// is partial, and no membership is removed — neither by the delta pass nor a full one.
	modify(t, e.admin, "CN=big,"+adGroups, func(m *ldap.ModifyRequest) { m.Delete("member", []string{"CN=Member 0001," + adStaff}) })
	ranges := 0
	ldapsync.SetRangeFault(e.s, func(dn string, low int) error {
		ranges++
		if low == 1000 {
			return errors.New("injected: connection reset")
		}
		return nil
	})
	for _, full := range []bool{false, true} {
		run := e.s.SyncOnce
		if full {
			run = e.s.SyncFull
		}
		sum, err := run(context.Background())
		if err == nil || sum.Partial == "" || !strings.Contains(sum.Partial, "range retrieval") {
			t.Fatalf("full=%v: err %v, summary %+v: want a partial read", full, err, sum)
		}
		if sum.Deleted != 0 {
			t.Errorf("full=%v: partial pass deleted %d", full, sum.Deleted)
		}
		if n := len(e.group("big").Members); n != 2000 {
			t.Errorf("full=%v: big has %d members after a failed range, want 2000", full, n)
		}
	}
	if ranges == 0 {
		t.Fatal("the fault hook was never called")
	}
	// Once the ranges work again the removal goes through.
	ldapsync.SetRangeFault(e.s, nil)
	e.sync(false)
	if n := len(e.group("big").Members); n != 1999 {
		t.Errorf("big has %d members after a good pass, want 1999", n)
	}
}

// Renaming an OU changes the DN of everything in it without (in AD) touching those entries. A
// group changed afterwards names a member by the new DN, which the cache has never seen: the
// delta pass must still resolve it to the same id.
func TestADOURenameKeepsMembersResolvable(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), nil)
	e.sync(false)
	ann := e.user(upn("ann"))
	if err := e.admin.ModifyDN(ldap.NewModifyDNRequest(adEng, "OU=Engineering", true, "")); err != nil {
		t.Fatal(err)
	}
	modify(t, e.admin, "CN=sales,"+adGroups, func(m *ldap.ModifyRequest) {
		m.Add("member", []string{"CN=Ann Smith,OU=Engineering," + adStaff})
	})
	if sum := e.delta(); sum.Created != 0 || sum.Deleted != 0 {
		t.Errorf("delta after the OU rename: %+v", sum)
	}
	found := false
	for _, m := range e.group("sales").Members {
		found = found || m.Value == ann.ID
	}
	if !found {
		t.Errorf("sales does not list ann (named by her DN under the renamed OU): %v", memberNames(e.group("sales")))
	}
}

// Offboarding in AD often takes an account out of scope rather than deleting it: it is moved to
// an OU outside the users' base, or disabled under a filter that leaves disabled accounts out.
// A full pass deletes such a user; so must the next uSNChanged delta, instead of keeping it,
// active in every target, until the next full pass. A user who only changed stays.
func TestADDeltaDeletesUsersThatLeftTheScope(t *testing.T) {
	t.Parallel()
	const enabledOnly = "(&(objectClass=user)(objectCategory=person)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
	e := newADEnv(t, adSmallTemplate(), func(c *ldapsync.Config) { c.Users.Filter = enabledOnly })
	e.sync(false)
	if e.findUser(upn("ann")) == nil || e.findUser(upn("bob")) == nil || e.findUser(upn("carl")) != nil {
		t.Fatalf("after the full pass: ann %v, bob %v, carl (disabled) %v", e.findUser(upn("ann")) != nil,
			e.findUser(upn("bob")) != nil, e.findUser(upn("carl")) != nil)
	}
	c := e.admin
	former := "OU=Former,DC=example,DC=com"
	addOU(t, c, former)
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=Bob Jones,"+adEng, "CN=Bob Jones", true, former)); err != nil {
		t.Fatal(err)
	}
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Lead"}) })
	if sum := e.delta(); sum.Deleted != 1 || sum.Full {
		t.Errorf("bob moved out of the users' base: %+v\n%s", sum, e.logs)
	}
	if e.findUser(upn("bob")) != nil {
		t.Error("bob, moved out of the users' base, is still in the cache")
	}
	if got := e.user(upn("ann")); got.Attributes["title"] != "Lead" {
		t.Errorf("ann's title %v", got.Attributes["title"])
	}
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deleted != 1 || sum.Full {
		t.Errorf("ann disabled under a filter without disabled accounts: %+v\n%s", sum, e.logs)
	}
	if e.findUser(upn("ann")) != nil {
		t.Error("ann, disabled, is still in the cache")
	}
	// A group moved out of the groups' base goes the same way.
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=sales,"+adGroups, "CN=sales", true, former)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Deleted != 1 || sum.Full {
		t.Errorf("sales moved out of the groups' base: %+v\n%s", sum, e.logs)
	}
	if findOne(t, e.store, cache.IndexDisplayName, scim.GroupType, "sales") != nil {
		t.Error("sales, moved out of the groups' base, is still in the cache")
	}
	if sum := e.delta(); sum.Deleted+sum.Created+sum.Updated != 0 {
		t.Errorf("the delta after: %+v", sum)
	}
	if e.findUser(upn("svc-sync")) == nil {
		t.Error("svc-sync, unchanged, is gone")
	}
}
