package ldapsync_test

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

func TestADFullSyncMapsUsersAndGroups(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), nil)
	sum := e.sync(false)
	if !sum.Full || sum.Mode != ldapsync.TrackUSN || sum.Partial != "" {
		t.Fatalf("summary %+v, want a complete full pass in usn mode", sum)
	}
	if n := e.count(scim.UserType); n != 4 {
		t.Errorf("%d users, want 4 (ann, bob, carl, svc-sync)", n)
	}
	ann, bob, carl := e.user(upn("ann")), e.user(upn("bob")), e.user(upn("carl"))
	if len(ann.ID) != 36 || ann.ExternalID != "E100" || ann.DisplayName() != "Ann Smith" || !ann.Active() {
		t.Errorf("ann: id %q externalId %q display %q active %v", ann.ID, ann.ExternalID, ann.DisplayName(), ann.Active())
	}
	ext, _ := ann.Attributes[ent].(map[string]any)
	if ext["department"] != "Engineering" || ext["organization"] != "Example Corp" {
		t.Errorf("ann enterprise: %v", ext)
	}
	if m, _ := ext["manager"].(map[string]any); m["value"] != bob.ID {
		t.Errorf("ann manager %v, want bob %s", ext["manager"], bob.ID)
	}
	if carl.Active() {
		t.Error("carl is disabled (userAccountControl 546) but active")
	}
	if got, want := memberNames(e.group("eng")), []string{"User:Ann Smith", "User:Bob Jones"}; !reflect.DeepEqual(got, want) {
		t.Errorf("eng members %v, want %v", got, want)
	}
	if got, want := memberNames(e.group("all")), []string{"Group:eng"}; !reflect.DeepEqual(got, want) {
		t.Errorf("all members %v, want %v", got, want)
	}
	// The id is the objectGUID with its first three groups little-endian.
	res, err := e.admin.Search(ldap.NewSearchRequest("CN=Ann Smith,"+adEng, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		0, 0, false, "(objectClass=*)", []string{"objectGUID"}, nil))
	if err != nil {
		t.Fatal(err)
	}
	g := res.Entries[0].GetRawAttributeValue("objectGUID")
	if want := strings.ToLower(string(hexOf(g[3:4]) + hexOf(g[2:3]) + hexOf(g[1:2]) + hexOf(g[0:1]))); !strings.HasPrefix(ann.ID, want) {
		t.Errorf("ann id %s does not start with %s (little-endian first group of the GUID)", ann.ID, want)
	}
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[b[0]>>4], digits[b[0]&15]})
}

// Each change shows after one delta pass, with the same ids.
func TestADDeltaReflectsEachChange(t *testing.T) {
	t.Parallel()
	e := newADEnv(t, adSmallTemplate(), nil)
	e.sync(false)
	ann, bob := e.user(upn("ann")), e.user(upn("bob"))
	c := e.admin

	// Nothing changed: a cheap pass that writes nothing.
	if sum := e.delta(); sum.Created+sum.Updated+sum.Deleted+sum.Deactivated != 0 {
		t.Errorf("idle delta changed something: %+v", sum)
	}

	addUser(t, c, adSales, "Dora Diaz", "dora", nil)
	if sum := e.delta(); sum.Created != 1 {
		t.Errorf("create: %+v", sum)
	}
	if e.user(upn("dora")).DisplayName() != "Dora Diaz" {
		t.Error("dora missing after delta")
	}

	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("title", []string{"Staff Engineer"}) })
	if sum := e.delta(); sum.Updated != 1 {
		t.Errorf("attribute change: %+v", sum)
	}
	if got := e.user(upn("ann")); got.ID != ann.ID || got.Attributes["title"] != "Staff Engineer" {
		t.Errorf("ann after title change: id %s title %v", got.ID, got.Attributes["title"])
	}

	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacDisabled}) })
	if sum := e.delta(); sum.Deactivated != 1 || sum.Deleted != 0 {
		t.Errorf("disable: %+v", sum)
	}
	if got := e.user(upn("ann")); got.Active() || got.ID != ann.ID {
		t.Error("ann still active after disable")
	}
	modify(t, c, "CN=Ann Smith,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("userAccountControl", []string{uacEnabled}) })
	e.delta()
	if !e.user(upn("ann")).Active() {
		t.Error("ann inactive after enable")
	}

	// OU move: same id, new DN; the groups that list her (not re-read) keep her.
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=Ann Smith,"+adEng, "CN=Ann Smith", true, adSales)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Created != 0 || sum.Deleted != 0 {
		t.Errorf("move: %+v", sum)
	}
	if got := e.user(upn("ann")); got.ID != ann.ID || !strings.EqualFold(got.DN, "CN=Ann Smith,"+adSales) {
		t.Errorf("ann after move: id %s dn %s", got.ID, got.DN)
	}
	if got := memberNames(e.group("eng")); !slices.Contains(got, "User:Ann Smith") {
		t.Errorf("eng lost ann after her move: %v", got)
	}

	// Rename: same id; a group changed afterwards names her by the new DN and still resolves.
	if err := c.ModifyDN(ldap.NewModifyDNRequest("CN=Bob Jones,"+adEng, "CN=Robert Jones", true, "")); err != nil {
		t.Fatal(err)
	}
	modify(t, c, "CN=Robert Jones,"+adEng, func(m *ldap.ModifyRequest) { m.Replace("displayName", []string{"Robert Jones"}) })
	modify(t, c, "CN=sales,"+adGroups, func(m *ldap.ModifyRequest) { m.Add("member", []string{"CN=Robert Jones," + adEng}) })
	if sum := e.delta(); sum.Created != 0 || sum.Deleted != 0 {
		t.Errorf("rename: %+v", sum)
	}
	if got := e.user(upn("bob")); got.ID != bob.ID || !strings.HasPrefix(got.DN, "CN=Robert Jones,") {
		t.Errorf("bob after rename: id %s dn %s", got.ID, got.DN)
	}
	if got := e.group("sales").Members; len(got) != 2 || !slices.ContainsFunc(got, func(m scim.Member) bool { return m.Value == bob.ID }) {
		t.Errorf("sales members after adding bob by his new DN: %v", got)
	}
	// His new display name shows in his report and his groups too, although neither changed
	// in the directory.
	if m, _ := e.user(upn("ann")).Attributes[ent].(map[string]any)["manager"].(map[string]any); m["value"] != bob.ID || m["displayName"] != "Robert Jones" {
		t.Errorf("ann's manager after bob's rename: %v", m)
	}
	if got := memberNames(e.group("eng")); !slices.Contains(got, "User:Robert Jones") {
		t.Errorf("eng members after bob's rename: %v", got)
	}

	// Delete: seen as a tombstone; the groups listing him drop him.
	carl := e.user(upn("carl"))
	if err := c.Del(ldap.NewDelRequest("CN=Carl Mueller,"+adSales, nil)); err != nil {
		t.Fatal(err)
	}
	if sum := e.delta(); sum.Deleted != 1 {
		t.Errorf("delete: %+v", sum)
	}
	if e.findUser(upn("carl")) != nil {
		t.Error("carl still cached after his deletion")
	}
	if slices.ContainsFunc(e.group("sales").Members, func(m scim.Member) bool { return m.Value == carl.ID }) {
		t.Error("sales still lists the deleted carl")
	}
	if e.user(upn("ann")).ID != ann.ID || e.count(scim.UserType) != 4 {
		t.Errorf("users after the changes: %d", e.count(scim.UserType))
	}
	_ = context.Background
}
