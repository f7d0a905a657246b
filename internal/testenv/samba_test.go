package testenv_test

import (
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// Two DCs run at once (each in its own network namespace), copies of one template, and what
// one test writes the other does not see.
func TestSambaParallelCopiesAreIndependent(t *testing.T) {
	t.Parallel()
	a := testenv.StartSamba(t, testenv.SambaOptions{})
	start := time.Now()
	b := testenv.StartSamba(t, testenv.SambaOptions{})
	t.Logf("second DC (copied) ready in %v", time.Since(start))

	ca := a.Admin(t)
	add := ldap.NewAddRequest("OU=only-in-a,"+a.BaseDN, nil)
	add.Attribute("objectClass", []string{"organizationalUnit"})
	if err := ca.Add(add); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*testenv.Samba{a, b} {
		c := s.Admin(t)
		res, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"highestCommittedUSN", "dsServiceName", "supportedControl"}, nil))
		if err != nil || len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("highestCommittedUSN") == "" {
			t.Fatalf("rootDSE of %s: %v %v", s.Dir, res, err)
		}
		_, err = c.Search(ldap.NewSearchRequest("OU=only-in-a,"+s.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"1.1"}, nil))
		if found := err == nil; found != (s == a) {
			t.Errorf("%s: OU found %v (err %v)", s.Dir, found, err)
		}
	}
}

func TestSambaTemplateIsBuiltOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	opts := testenv.SambaOptions{Template: "one-ou", Populate: func(t testing.TB, s *testenv.Samba) {
		calls++
		add := ldap.NewAddRequest("OU=seeded,"+s.BaseDN, nil)
		add.Attribute("objectClass", []string{"organizationalUnit"})
		if err := s.Admin(t).Add(add); err != nil {
			t.Fatal(err)
		}
	}}
	for range 2 {
		s := testenv.StartSamba(t, opts)
		_, err := s.Admin(t).Search(ldap.NewSearchRequest("OU=seeded,"+s.BaseDN, ldap.ScopeBaseObject,
			ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"1.1"}, nil))
		if err != nil {
			t.Fatalf("seeded OU: %v", err)
		}
	}
	if calls != 1 {
		t.Errorf("Populate ran %d times, want 1", calls)
	}
}
