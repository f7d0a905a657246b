package sampledata_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
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

// TestEnterpriseShape checks the enterprise shape's structure: every user in all-staff, groups of
// GroupMembers distinct existing users, and one manager tree several levels deep.
func TestEnterpriseShape(t *testing.T) {
	o := sampledata.Options{Enterprise: true, AllStaff: true, Users: 5000, Groups: 40, Seed: 9, Disabled: 7}
	out := string(generate(t, o))
	if !bytes.Equal([]byte(out), generate(t, o)) {
		t.Fatal("same options produced different output")
	}
	users := map[string]bool{}
	order := map[string]int{} // file order
	manager := map[string]string{}
	groups := map[string][]string{}
	disabled := 0
	for _, rec := range strings.Split(strings.TrimSpace(out), "\n\n") {
		lines := strings.Split(rec, "\n")
		dn, _ := strings.CutPrefix(lines[0], "dn: ")
		order[dn] = len(order)
		for _, l := range lines[1:] {
			switch {
			case strings.HasPrefix(l, "objectClass: inetOrgPerson"):
				users[dn] = true
			case strings.HasPrefix(l, "manager: "):
				manager[dn] = l[len("manager: "):]
			case strings.HasPrefix(l, "member: "):
				groups[dn] = append(groups[dn], l[len("member: "):])
			case strings.HasPrefix(l, "pwdAccountLockedTime: "):
				disabled++
			}
		}
	}
	if len(users) != o.Users || disabled != o.Disabled {
		t.Fatalf("%d users (%d disabled), want %d (%d)", len(users), disabled, o.Users, o.Disabled)
	}
	for i := range o.Users {
		if dn := sampledata.UserDN(o, i); !users[dn] {
			t.Fatalf("UserDN(%d) = %q is not in the file", i, dn)
		}
	}
	if len(groups) != o.Groups+1 {
		t.Fatalf("%d groups, want %d and all-staff", len(groups), o.Groups)
	}
	for dn, members := range groups {
		want := sampledata.DefaultGroupMembers
		if dn == sampledata.AllStaffDN(o) {
			want = o.Users
		}
		seen := map[string]bool{}
		for _, m := range members {
			if !users[m] || seen[m] {
				t.Fatalf("%s: member %q is not a user or is listed twice", dn, m)
			}
			seen[m] = true
		}
		if len(seen) != want {
			t.Errorf("%s: %d members, want %d", dn, len(seen), want)
		}
	}
	if len(manager) != o.Users-1 {
		t.Fatalf("%d users with a manager, want all but the CEO (%d)", len(manager), o.Users-1)
	}
	deepest, later := 0, 0
	for u := range users {
		depth := 0
		for m, ok := manager[u]; ok; m, ok = manager[m] {
			if !users[m] {
				t.Fatalf("%s: manager %q is not a user", u, m)
			}
			if depth++; depth > o.Users {
				t.Fatalf("%s: a manager cycle", u)
			}
		}
		deepest = max(deepest, depth)
		if m, ok := manager[u]; ok && order[m] > order[u] {
			later++
		}
	}
	if deepest < 4 {
		t.Errorf("manager chains are at most %d deep, want several levels", deepest)
	}
	if later == 0 {
		t.Error("every manager comes before its reports; want file order to differ from tree order")
	}
	if !strings.Contains(out, "sn:: ") {
		t.Error("no base64 (non-ASCII) values")
	}
}

// TestEnterpriseStreams: 200k users with all-staff allocate a bounded amount whatever the count.
func TestEnterpriseStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	var heap runtime.MemStats
	peak := uint64(0)
	w := writerFunc(func(p []byte) (int, error) {
		runtime.ReadMemStats(&heap)
		peak = max(peak, heap.HeapInuse)
		return len(p), nil
	})
	runtime.GC()
	runtime.ReadMemStats(&heap)
	before := heap.HeapInuse
	if err := sampledata.Write(w, sampledata.Options{Enterprise: true, AllStaff: true, Users: 200_000, Groups: 2000, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if grew := int64(peak) - int64(before); grew > 32<<20 {
		t.Errorf("heap grew by %d MB while writing 200k users; want bounded memory", grew>>20)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
