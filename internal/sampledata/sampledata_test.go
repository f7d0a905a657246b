package sampledata_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
)

func generate(t testing.TB, o sampledata.Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := sampledata.Write(&b, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterministic(t *testing.T) {
	o := sampledata.Options{Users: 500, Groups: 30, Seed: 7, NestedGroup: true, Disabled: 3}
	a, b := generate(t, o), generate(t, o)
	if !bytes.Equal(a, b) {
		t.Fatal("same options produced different output")
	}
	o.Seed = 8
	if bytes.Equal(a, generate(t, o)) {
		t.Fatal("different seeds produced the same output")
	}
}

func TestBigGroup(t *testing.T) {
	out := string(generate(t, sampledata.Options{Users: 2500, Groups: 3, Seed: 1}))
	start := strings.Index(out, "dn: cn=all-staff,")
	if start < 0 {
		t.Fatal("no all-staff group")
	}
	big := out[start:]
	big = big[:strings.Index(big, "\n\n")]
	if n := strings.Count(big, "\nmember: "); n != sampledata.BigGroupSize {
		t.Errorf("all-staff has %d members, want %d", n, sampledata.BigGroupSize)
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []sampledata.Options{
		{Users: 0, Groups: 1},
		{Users: 2, Disabled: 3},
		{Users: -1},
		{Users: 1, Suffix: "not a dn"},
	} {
		if err := sampledata.Write(new(bytes.Buffer), o); err == nil {
			t.Errorf("Write(%+v) succeeded, want an error", o)
		}
	}
}

// TestLoadsIntoSlapd slapadds a generated file and counts what a sync would see.
func TestLoadsIntoSlapd(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sample.ldif")
	data := generate(t, sampledata.Options{Users: 300, Groups: 20, Seed: 42, NestedGroup: true, Disabled: 5})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{file}})
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.ReaderDN, s.ReaderPassword); err != nil {
		t.Fatalf("reader bind (password from the generated file): %v", err)
	}
	count := func(filter string) int {
		t.Helper()
		res, err := c.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree,
			ldap.NeverDerefAliases, 0, 0, false, filter, []string{"1.1"}, nil))
		if err != nil {
			t.Fatalf("search %s: %v", filter, err)
		}
		return len(res.Entries)
	}
	for filter, want := range map[string]int{
		"(objectClass=inetOrgPerson)": 300,
		"(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))": 20,
		"(objectClass=groupOfUniqueNames)":                               2,
		"(objectClass=posixGroup)":                                       2,
		"(pwdAccountLockedTime=*)":                                       5,
		"(&(objectClass=inetOrgPerson)(manager=*))":                      299,
		"(sn=Müller)":                                                    1,
		"(cn=Sales, EMEA)":                                               1,
		"(member=cn=Sales\\5c, EMEA,ou=groups,dc=example,dc=com)":        1,
		"(&(objectClass=inetOrgPerson)(entryUUID=*)(modifyTimestamp=*))": 300,
	} {
		if got := count(filter); got != want {
			t.Errorf("%s: %d entries, want %d", filter, got, want)
		}
	}
}

// BenchmarkLoad100k measures generating 100k users / 1k groups and loading them into a fresh
// slapd with StartSlapd (slapadd -q): go test -run '^$' -bench Load100k ./internal/sampledata
func BenchmarkLoad100k(b *testing.B) {
	file := filepath.Join(b.TempDir(), "100k.ldif")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	if err := sampledata.Write(f, sampledata.Options{Users: 100_000, Groups: 1000, Seed: 1, NestedGroup: true, Disabled: 100}); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		s := testenv.StartSlapd(b, testenv.SlapdOptions{LDIF: []string{file}})
		s.Stop(b)
	}
}
