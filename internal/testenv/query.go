package testenv

import (
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Root returns a connection bound as the rootdn (no size limits, no ACLs), failing the test if
// it cannot. The caller closes it.
func (s *Slapd) Root(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("testenv: dial: %v", err)
	}
	if err := c.Bind(s.RootDN, s.RootPassword); err != nil {
		c.Close()
		t.Fatalf("testenv: bind as the rootdn: %v", err)
	}
	return c
}

// Has reports whether a subtree search of the suffix for filter (as the rootdn) finds an entry.
func (s *Slapd) Has(t testing.TB, filter string) bool {
	t.Helper()
	c := s.Root(t)
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		1, 0, false, filter, []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		t.Fatalf("testenv: search %s: %v", filter, err)
	}
	return res != nil && len(res.Entries) > 0
}

// Kill stops slapd with SIGKILL at once, as a crash or a dropped server would.
func (s *Slapd) Kill() {
	if s.proc != nil {
		s.kill()
	}
}

// WaitFor polls cond every 10 ms for up to 5 s and fails the test if it never holds.
func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("testenv: condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
