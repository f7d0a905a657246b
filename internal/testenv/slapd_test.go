package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func dial(t *testing.T, url, dn, password string, opts ...ldap.DialOpt) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, opts...)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	if dn != "" {
		if err := c.Bind(dn, password); err != nil {
			t.Fatalf("bind %s: %v", dn, err)
		}
	}
	return c
}

func search(t *testing.T, c *ldap.Conn, base, filter string, attrs ...string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, attrs, nil))
	if err != nil {
		t.Fatalf("search %s %s: %v", base, filter, err)
	}
	return res.Entries
}

const userLDIF = `dn: ou=people,dc=example,dc=com
objectClass: organizationalUnit
ou: people

dn: uid=ann,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: ann
cn: Ann Example
sn: Example
`

func TestStartSlapd(t *testing.T) {
	t.Parallel()
	s := StartSlapd(t, SlapdOptions{})
	s.Add(t, userLDIF)

	reader := dial(t, s.URL, s.ReaderDN, s.ReaderPassword)
	if got := search(t, reader, s.BaseDN, "(uid=ann)", "entryUUID"); len(got) != 1 || got[0].GetAttributeValue("entryUUID") == "" {
		t.Fatalf("reader search for ann = %v", got)
	}
	s.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: modify\nadd: userPassword\nuserPassword: ann-secret\n")
	if got := search(t, reader, s.BaseDN, "(uid=ann)", "userPassword"); len(got) != 1 || got[0].GetAttributeValue("userPassword") != "" {
		t.Errorf("reader must not read other users' userPassword: %v", got)
	}
	dial(t, s.URL, "uid=ann,ou=people,dc=example,dc=com", "ann-secret")
	// Anonymous binds see nothing in the main database (not even that it exists).
	res, err := dial(t, s.URL, "", "").Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree,
		ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
	if err == nil && len(res.Entries) != 0 {
		t.Errorf("anonymous search returned %d entries, want 0", len(res.Entries))
	}
	ldapi := dial(t, s.LDAPIURL, s.RootDN, s.RootPassword)
	if got := search(t, ldapi, s.BaseDN, "(objectClass=*)"); len(got) != 4 {
		t.Errorf("rootdn over %s: %d entries, want 4 (suffix, reader, ou, ann)", s.LDAPIURL, len(got))
	}
	// accesslog records online writes and the reader may read it.
	if got := search(t, reader, "cn=accesslog", "(&(reqType=add)(reqDN=uid=ann,ou=people,dc=example,dc=com))", "reqEntryUUID"); len(got) != 1 {
		t.Errorf("accesslog entries for adding ann = %d, want 1", len(got))
	}
}

// pwdAccountLockedTime is our "inactive" flag for OpenLDAP: it must be settable offline and
// online by the rootdn with ppolicy's schema loaded.
func TestLockedTimeAndRestart(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "in.ldif")
	locked := "\ndn: uid=bob,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: bob\ncn: Bob\nsn: B\npwdAccountLockedTime: 000001010000Z\n"
	if err := os.WriteFile(file, []byte(userLDIF+locked), 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartSlapd(t, SlapdOptions{LDIF: []string{file}})
	s.Modify(t, `dn: uid=ann,ou=people,dc=example,dc=com
changetype: modify
replace: pwdAccountLockedTime
pwdAccountLockedTime: 000001010000Z
`)
	s.Modify(t, `dn: uid=bob,ou=people,dc=example,dc=com
changetype: modify
delete: pwdAccountLockedTime
`)
	before := uuids(t, s)
	if before["uid=ann"] == "" || before["uid=bob"] == "" {
		t.Fatalf("missing users: %v", before)
	}
	c := dial(t, s.URL, s.RootDN, s.RootPassword)
	if got := search(t, c, s.BaseDN, "(pwdAccountLockedTime=*)", "uid"); len(got) != 1 || got[0].GetAttributeValue("uid") != "ann" {
		t.Fatalf("locked users = %v, want only ann", got)
	}

	s.Restart(t)
	if after := uuids(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("entryUUIDs changed across restart:\nbefore %v\nafter  %v", before, after)
	}
	s.Add(t, "dn: uid=cy,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: cy\ncn: Cy\nsn: C\n")
	s.Stop(t)
	if _, err := ldap.DialURL(s.URL); err == nil {
		t.Errorf("slapd still answers after Stop")
	}
}

func uuids(t *testing.T, s *Slapd) map[string]string {
	t.Helper()
	c := dial(t, s.URL, s.RootDN, s.RootPassword)
	m := map[string]string{}
	for _, e := range search(t, c, s.BaseDN, "(uid=*)", "entryUUID") {
		m[strings.SplitN(e.DN, ",", 2)[0]] = e.GetAttributeValue("entryUUID")
	}
	return m
}

func TestSizeLimit(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString(userLDIF)
	for i := range 600 {
		fmt.Fprintf(&b, "\ndn: uid=u%d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%d\ncn: U %d\nsn: U\n", i, i, i)
	}
	file := filepath.Join(t.TempDir(), "600.ldif")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, limited := range []bool{true, false} {
		t.Run(fmt.Sprintf("DefaultSizeLimit=%v", limited), func(t *testing.T) {
			t.Parallel()
			s := StartSlapd(t, SlapdOptions{DefaultSizeLimit: limited, LDIF: []string{file}})
			// SearchWithPaging stores its cookie in the request: one request per search.
			req := func() *ldap.SearchRequest {
				return ldap.NewSearchRequest("ou=people,"+s.BaseDN, ldap.ScopeSingleLevel,
					ldap.NeverDerefAliases, 0, 0, false, "(objectClass=inetOrgPerson)", []string{"1.1"}, nil)
			}
			res, err := dial(t, s.URL, s.ReaderDN, s.ReaderPassword).SearchWithPaging(req(), 100)
			if limited {
				if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
					t.Errorf("paged search as reader: err = %v, want sizeLimitExceeded", err)
				}
			} else if err != nil || len(res.Entries) != 601 {
				t.Errorf("paged search as reader: %d entries, err %v; want 601", len(res.Entries), err)
			}
			// The size limit never applies to the rootdn.
			res, err = dial(t, s.URL, s.RootDN, s.RootPassword).SearchWithPaging(req(), 100)
			if err != nil || len(res.Entries) != 601 {
				t.Errorf("paged search as rootdn: %d entries, err %v; want 601", len(res.Entries), err)
			}
		})
	}
}

func TestSlapdTLS(t *testing.T) {
	t.Parallel()
	s := StartSlapd(t, SlapdOptions{TLS: true})
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CAFile holds no certificate")
	}
	ldaps := dial(t, s.LDAPSURL, s.ReaderDN, s.ReaderPassword, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool}))
	if got := search(t, ldaps, s.BaseDN, "(cn=reader)"); len(got) != 1 {
		t.Errorf("search over %s: %d entries, want 1", s.LDAPSURL, len(got))
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		plain := dial(t, strings.Replace(s.URL, "127.0.0.1", name, 1), "", "")
		if err := plain.StartTLS(&tls.Config{RootCAs: pool, ServerName: name}); err != nil {
			t.Fatalf("StartTLS as %s: %v", name, err)
		}
		if err := plain.Bind(s.ReaderDN, s.ReaderPassword); err != nil {
			t.Errorf("bind after StartTLS: %v", err)
		}
	}
}

func TestRefint(t *testing.T) {
	t.Parallel()
	for _, refint := range []bool{true, false} {
		t.Run(fmt.Sprintf("Refint=%v", refint), func(t *testing.T) {
			t.Parallel()
			s := StartSlapd(t, SlapdOptions{Refint: refint})
			s.Add(t, userLDIF+`
dn: uid=bob,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
uid: bob
cn: Bob
sn: B
manager: uid=ann,ou=people,dc=example,dc=com

dn: cn=team,dc=example,dc=com
objectClass: groupOfNames
cn: team
member: uid=ann,ou=people,dc=example,dc=com
member: uid=bob,ou=people,dc=example,dc=com
`)
			c := dial(t, s.URL, s.RootDN, s.RootPassword)
			before := search(t, c, s.BaseDN, "(cn=team)", "entryCSN", "modifyTimestamp")[0]
			teamCSN, teamTS := before.GetAttributeValue("entryCSN"), before.GetAttributeValue("modifyTimestamp")
			time.Sleep(1100 * time.Millisecond) // modifyTimestamp counts seconds: a rewrite would show
			s.Modify(t, "dn: uid=ann,ou=people,dc=example,dc=com\nchangetype: delete\n")
			want := 1 // without refint the dangling values stay
			if refint {
				want = 0
			}
			// refint rewrites in a background thread after the delete has returned.
			var got []*ldap.Entry
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				got = search(t, c, s.BaseDN, "(|(member=uid=ann,ou=people,dc=example,dc=com)(manager=uid=ann,ou=people,dc=example,dc=com))")
				if len(got) == 2*want {
					break
				}
			}
			if len(got) != 2*want {
				t.Errorf("entries still pointing at deleted ann: %d, want %d", len(got), 2*want)
			}
			// Not what one might expect, and what ldapsync must live with: refint's rewrites are
			// invisible to change tracking (slapo-refint(5): "not propagated during replication").
			// No accesslog record, and entryCSN/modifyTimestamp of the rewritten entries stay as
			// they were, so neither syncrepl nor a modifyTimestamp delta reports them.
			logged := search(t, c, "cn=accesslog", "(reqType=modify)")
			if len(logged) != 0 {
				t.Errorf("accesslog modify records after refint: %d, want 0", len(logged))
			}
			if team := search(t, c, s.BaseDN, "(cn=team)", "entryCSN", "modifyTimestamp", "modifiersName"); refint {
				if csn := team[0].GetAttributeValue("entryCSN"); csn != teamCSN {
					t.Errorf("team entryCSN changed by refint: %s -> %s", teamCSN, csn)
				}
				if ts := team[0].GetAttributeValue("modifyTimestamp"); ts != teamTS {
					t.Errorf("team modifyTimestamp changed by refint: %s -> %s", teamTS, ts)
				}
				if got := team[0].GetAttributeValue("modifiersName"); got != "cn=Referential Integrity Overlay" {
					t.Errorf("team modifiersName = %q", got)
				}
			}
		})
	}
}

func TestOtherSuffix(t *testing.T) {
	t.Parallel()
	s := StartSlapd(t, SlapdOptions{Suffix: "o=Corp,c=DE"})
	c := dial(t, s.URL, s.ReaderDN, s.ReaderPassword)
	if got := search(t, c, s.BaseDN, "(objectClass=organization)", "o"); len(got) != 1 || got[0].GetAttributeValue("o") != "Corp" {
		t.Errorf("suffix entry = %v", got)
	}
}

// Freeze stops slapd answering without closing anything, Thaw resumes it, and Start brings a
// killed slapd back with its data on the same port.
func TestFreezeThawKillStart(t *testing.T) {
	s := StartSlapd(t, SlapdOptions{})
	s.Freeze(t)
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(300 * time.Millisecond)
	if err := c.Bind(s.RootDN, s.RootPassword); err == nil {
		t.Fatal("a frozen slapd answered a bind")
	}
	s.Thaw(t)
	if err := s.ping(); err != nil {
		t.Fatalf("after Thaw: %v", err)
	}
	url := s.URL
	s.Kill()
	if s.ping() == nil {
		t.Fatal("a killed slapd answered")
	}
	s.Start(t)
	if s.URL != url || !s.Has(t, "(cn=reader)") {
		t.Fatalf("after Start: URL %s (was %s), or the data is gone", s.URL, url)
	}
}
