package ldapsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scim"
)

// The AD tests run against a real Samba AD DC (internal/testenv), copied per test from a
// template that holds this directory:
//
//	OU=Staff            users base
//	  OU=Eng            Ann Smith (manager: Bob Jones), Bob Jones
//	  OU=Sales          Carl Mueller (disabled), svc-sync (the bind account, never bound)
//	OU=Groups           groups base: eng (ann, bob), all (eng), sales (carl),
//	                    l1 (ann) ∈ l2 ∈ l3, cyc-a ∈ cyc-b ∈ cyc-a (bob)
const (
	adStaff  = "OU=Staff,DC=example,DC=com"
	adEng    = "OU=Eng," + adStaff
	adSales  = "OU=Sales," + adStaff
	adGroups = "OU=Groups,DC=example,DC=com"
	svcPass  = "Svc-Passw0rd-42!"
)

// Account control values: NORMAL_ACCOUNT | PASSWD_NOTREQD, and the same disabled.
const (
	uacEnabled  = "544"
	uacDisabled = "546"
)

type adEnv struct {
	t     *testing.T
	dc    *testenv.Samba
	admin *ldap.Conn
	store *cache.Store
	cfg   ldapsync.Config
	safe  ldapsync.SafetyConfig // rebuild applies a change
	s     *ldapsync.Syncer
	logs  *logBuffer
}

func adSmallTemplate() testenv.SambaOptions {
	return testenv.SambaOptions{Template: "ad-small", Populate: func(t testing.TB, dc *testenv.Samba) {
		c := dc.Admin(t)
		for _, ou := range []string{adStaff, adEng, adSales, adGroups} {
			addOU(t, c, ou)
		}
		addUser(t, c, adEng, "Bob Jones", "bob", nil)
		addUser(t, c, adEng, "Ann Smith", "ann", map[string][]string{
			"title": {"Engineer"}, "manager": {"CN=Bob Jones," + adEng}, "employeeID": {"E100"},
			"department": {"Engineering"}, "company": {"Example Corp"}, "telephoneNumber": {"+1 555 0100"},
		})
		addUser(t, c, adSales, "Carl Mueller", "carl", map[string][]string{"userAccountControl": {uacDisabled}})
		addUser(t, c, adSales, "svc-sync", "svc-sync", nil)
		setPassword(t, c, "CN=svc-sync,"+adSales, svcPass)
		addGroup(t, c, "eng", "CN=Ann Smith,"+adEng, "CN=Bob Jones,"+adEng)
		addGroup(t, c, "all", "CN=eng,"+adGroups)
		addGroup(t, c, "sales", "CN=Carl Mueller,"+adSales)
		addGroup(t, c, "l1", "CN=Ann Smith,"+adEng)
		addGroup(t, c, "l2", "CN=l1,"+adGroups)
		addGroup(t, c, "l3", "CN=l2,"+adGroups)
		addGroup(t, c, "cyc-a", "CN=Bob Jones,"+adEng)
		addGroup(t, c, "cyc-b", "CN=cyc-a,"+adGroups)
		modify(t, c, "CN=cyc-a,"+adGroups, func(m *ldap.ModifyRequest) { m.Add("member", []string{"CN=cyc-b," + adGroups}) })
	}}
}

func adConfig(dc *testenv.Samba) ldapsync.Config {
	c := ldapsync.DefaultConfig()
	c.URL = dc.URL
	c.Dialect = ldapsync.DialectActiveDirectory
	c.BindDN = dc.AdminUPN
	c.BindPassword = confval.NewSecret(dc.AdminPassword)
	c.Users = ldapsync.UsersConfig{BaseDN: adStaff, Filter: "(&(objectClass=user)(objectCategory=person))"}
	c.Groups = ldapsync.GroupsConfig{BaseDN: adGroups, Filter: "(objectClass=group)", MemberAttributes: []string{"member"}}
	c.Timeout = confval.Duration(30 * time.Second)
	return c
}

func newADEnv(t *testing.T, opts testenv.SambaOptions, tweak func(*ldapsync.Config)) *adEnv {
	t.Helper()
	dc := testenv.StartSamba(t, opts)
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &adEnv{t: t, dc: dc, admin: dc.Admin(t), store: st, cfg: adConfig(dc), logs: &logBuffer{},
		safe: ldapsync.SafetyConfig{MaxDeletes: 10000, MaxDeletePercent: 100}}
	if tweak != nil {
		tweak(&e.cfg)
	}
	e.rebuild()
	return e
}

func (e *adEnv) rebuild() {
	e.t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	s, err := ldapsync.New(e.cfg, e.safe, e.store, ldapsync.Options{Log: log})
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = s
}

func (e *adEnv) sync(full bool) ldapsync.Summary {
	e.t.Helper()
	run := e.s.SyncOnce
	if full {
		run = e.s.SyncFull
	}
	sum, err := run(context.Background())
	if err != nil {
		e.t.Fatalf("sync (full=%v): %v\nlog:\n%s", full, err, e.logs)
	}
	return sum
}

// delta runs SyncOnce and fails unless it was a delta pass.
func (e *adEnv) delta() ldapsync.Summary {
	e.t.Helper()
	sum := e.sync(false)
	if sum.Full {
		e.t.Fatalf("pass was full, want delta: %+v\nlog:\n%s", sum, e.logs)
	}
	return sum
}

func (e *adEnv) user(userName string) *scim.Resource {
	e.t.Helper()
	r := e.findUser(userName)
	if r == nil {
		e.t.Fatalf("user %q is not in the cache", userName)
	}
	return r
}

func (e *adEnv) findUser(userName string) *scim.Resource {
	e.t.Helper()
	return findOne(e.t, e.store, cache.IndexUserName, scim.UserType, userName)
}

func (e *adEnv) group(name string) *scim.Resource {
	e.t.Helper()
	return mustFind(e.t, e.store, cache.IndexDisplayName, scim.GroupType, name)
}

func (e *adEnv) count(typ scim.ResourceType) int { e.t.Helper(); return countOf(e.t, e.store, typ) }

func (e *adEnv) journalHead() uint64 {
	h, err := e.store.JournalHead(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return h
}

// upn is the userPrincipalName addUser gives a sAMAccountName.
func upn(sam string) string { return sam + "@example.com" }

func addOU(t testing.TB, c *ldap.Conn, dn string) {
	t.Helper()
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{"organizationalUnit"})
	if err := c.Add(a); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
}

// addUser adds an enabled user CN=cn,ou with sAMAccountName sam and UPN sam@example.com.
func addUser(t testing.TB, c *ldap.Conn, ou, cn, sam string, extra map[string][]string) {
	t.Helper()
	dn := "CN=" + ldap.EscapeDN(cn) + "," + ou
	a := ldap.NewAddRequest(dn, nil)
	given, family, _ := strings.Cut(cn, " ")
	attrs := map[string][]string{
		"objectClass":        {"user"},
		"sAMAccountName":     {sam},
		"userPrincipalName":  {upn(sam)},
		"displayName":        {cn},
		"givenName":          {given},
		"mail":               {sam + "@example.com"},
		"userAccountControl": {uacEnabled},
	}
	if family != "" {
		attrs["sn"] = []string{family}
	}
	for k, v := range extra {
		attrs[k] = v
	}
	for k, v := range attrs {
		a.Attribute(k, v)
	}
	if err := c.Add(a); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
}

func addGroup(t testing.TB, c *ldap.Conn, cn string, members ...string) {
	t.Helper()
	a := ldap.NewAddRequest("CN="+cn+","+adGroups, nil)
	a.Attribute("objectClass", []string{"group"})
	a.Attribute("sAMAccountName", []string{cn})
	if len(members) > 0 {
		a.Attribute("member", members)
	}
	if err := c.Add(a); err != nil {
		t.Fatalf("add group %s: %v", cn, err)
	}
}

func modify(t testing.TB, c *ldap.Conn, dn string, fn func(*ldap.ModifyRequest)) {
	t.Helper()
	m := ldap.NewModifyRequest(dn, nil)
	fn(m)
	if err := c.Modify(m); err != nil {
		t.Fatalf("modify %s: %v", dn, err)
	}
}

// setPassword sets unicodePwd (Samba accepts it over ldapi://).
func setPassword(t testing.TB, c *ldap.Conn, dn, pw string) {
	t.Helper()
	u := utf16.Encode([]rune(`"` + pw + `"`))
	b := make([]byte, 0, 2*len(u))
	for _, r := range u {
		b = append(b, byte(r), byte(r>>8))
	}
	modify(t, c, dn, func(m *ldap.ModifyRequest) { m.Replace("unicodePwd", []string{string(b)}) })
}

// uSNChanged returns the entry's uSNChanged.
func uSNChanged(t testing.TB, c *ldap.Conn, dn string) int64 {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"uSNChanged"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("uSNChanged of %s: %v", dn, err)
	}
	var n int64
	fmt.Sscan(res.Entries[0].GetAttributeValue("uSNChanged"), &n)
	return n
}

// storedWatermark returns the decoded watermark, and setWatermark writes one back.
func (e *adEnv) storedWatermark() map[string]any {
	e.t.Helper()
	raw, err := e.store.Watermark(context.Background(), ldapsync.Source)
	if err != nil || raw == nil {
		e.t.Fatalf("watermark: %q %v", raw, err)
	}
	var w map[string]any
	if err := json.Unmarshal(raw, &w); err != nil {
		e.t.Fatal(err)
	}
	return w
}

func (e *adEnv) setWatermark(w map[string]any) {
	e.t.Helper()
	raw, _ := json.Marshal(w)
	if _, err := e.store.Apply(context.Background(), cache.Batch{Source: ldapsync.Source, Watermark: raw}); err != nil {
		e.t.Fatal(err)
	}
}

// logBuffer collects a Syncer's log for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func confvalSecret(s string) confval.Secret { return confval.NewSecret(s) }
