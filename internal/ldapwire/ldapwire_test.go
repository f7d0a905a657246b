package ldapwire

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func dialBound(t *testing.T, url string) *Conn {
	t.Helper()
	ctx := context.Background()
	c, err := Dial(ctx, DialOptions{URL: url, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Bind(ctx, testRootDN, testRootPW); err != nil {
		t.Fatal(err)
	}
	return c
}

func usersRequest(pageSize int) SearchRequest {
	return SearchRequest{
		BaseDN:   "ou=people," + testSuffix,
		Scope:    ldap.ScopeWholeSubtree,
		Filter:   "(objectClass=inetOrgPerson)",
		PageSize: pageSize,
	}
}

func TestBind(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 1, 0) })
	ctx := context.Background()
	c, err := Dial(ctx, DialOptions{URL: s.URL, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Bind(ctx, testRootDN, "wrong")
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("bad password: got %v, want code 49", err)
	}
	if err := c.Bind(ctx, testRootDN, ""); !ldap.IsErrorWithCode(err, ldap.ErrorEmptyPassword) {
		t.Fatalf("empty password: got %v", err)
	}
	// A failed bind leaves the connection usable.
	if err := c.Bind(ctx, testRootDN, testRootPW); err != nil {
		t.Fatalf("good password: %v", err)
	}
}

// snapshot is a comparable copy of a search result: DN -> attribute -> values.
type snapshot map[string]map[string][]string

// TestPagedSearchMatchesGoLDAP reads 2,500 users in pages of 100 and
// compares every DN, attribute and value with go-ldap's SearchWithPaging.
func TestPagedSearchMatchesGoLDAP(t *testing.T) {
	const n = 2500
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, n, 0) })
	c := dialBound(t, s.URL)

	got := snapshot{}
	res, err := c.Search(context.Background(), usersRequest(100), func(e *Entry) error {
		dn := string(e.DN)
		if _, dup := got[dn]; dup {
			t.Errorf("entry %s returned twice", dn)
		}
		attrs := map[string][]string{}
		for _, a := range e.Attrs {
			for _, v := range a.Values {
				attrs[strings.ToLower(string(a.Name))] = append(attrs[strings.ToLower(string(a.Name))], string(v))
			}
		}
		got[dn] = attrs
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries != n || len(got) != n || res.Pages != n/100+1 && res.Pages != n/100 {
		t.Fatalf("got %d entries (%d distinct) in %d pages, want %d in ~%d", res.Entries, len(got), res.Pages, n, n/100)
	}

	want := goLDAPSnapshot(t, s.URL, usersRequest(100))
	if !reflect.DeepEqual(got, want) {
		for dn := range want {
			if !reflect.DeepEqual(got[dn], want[dn]) {
				t.Fatalf("first difference at %s:\n got  %q\n want %q", dn, got[dn], want[dn])
			}
		}
		t.Fatal("snapshots differ")
	}

	// Spot-check multi-valued, binary and non-ASCII values.
	e := got["uid=user000070,ou=people,"+testSuffix]
	if len(e["mail"]) != 2 || len(e["jpegphoto"]) != 1 || len(e["jpegphoto"][0]) != 96 {
		t.Fatalf("user70: mail %q, %d photos", e["mail"], len(e["jpegphoto"]))
	}
	if e["displayname"][0] != "Jürgen Ünïcödé 70" {
		t.Fatalf("displayName %q", e["displayname"][0])
	}
}

func goLDAPSnapshot(t *testing.T, url string, r SearchRequest) snapshot {
	t.Helper()
	l, err := ldap.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Bind(testRootDN, testRootPW); err != nil {
		t.Fatal(err)
	}
	sr, err := l.SearchWithPaging(ldap.NewSearchRequest(r.BaseDN, r.Scope, ldap.NeverDerefAliases, 0, 0, false, r.Filter, r.Attributes, nil), uint32(r.PageSize))
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot{}
	for _, e := range sr.Entries {
		attrs := map[string][]string{}
		for _, a := range e.Attributes {
			for _, v := range a.ByteValues {
				attrs[strings.ToLower(a.Name)] = append(attrs[strings.ToLower(a.Name)], string(v))
			}
		}
		snap[e.DN] = attrs
	}
	return snap
}

func TestEntryAccessors(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 30, 0) })
	c := dialBound(t, s.URL)
	r := usersRequest(0)
	r.Filter = "(uid=user000014)"
	r.Attributes = []string{"mail", "cn", "jpegPhoto"}
	var kept *Entry
	res, err := c.Search(context.Background(), r, func(e *Entry) error {
		if got := e.Get("MAIL"); len(got) != 2 || string(got[1]) != "alias000014@example.org" {
			t.Errorf("Get(MAIL) = %q", got)
		}
		if e.Get("jpegPhoto") != nil || e.Get("sn") != nil {
			t.Errorf("unrequested or absent attributes returned")
		}
		kept = e.Clone()
		return nil
	})
	if err != nil || res.Entries != 1 || res.Pages != 1 {
		t.Fatalf("res %+v err %v", res, err)
	}
	// The clone survives the next search reusing the buffers.
	if _, err := c.Search(context.Background(), usersRequest(5), func(*Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if string(kept.DN) != "uid=user000014,ou=people,"+testSuffix || string(kept.Get("cn")[0]) != "Given14 Family14" {
		t.Fatalf("clone changed: %s %q", kept.DN, kept.Get("cn"))
	}
}

func TestGetRange(t *testing.T) {
	e := &Entry{Attrs: []Attr{
		{Name: []byte("cn"), Values: [][]byte{[]byte("g")}},
		{Name: []byte("Member;Range=0-1499"), Values: [][]byte{[]byte("a"), []byte("b")}},
		{Name: []byte("owner;range=10-*"), Values: [][]byte{[]byte("o")}},
		{Name: []byte("bogus;range=x-1"), Values: [][]byte{[]byte("o")}},
	}}
	for _, tc := range []struct {
		name      string
		n, lo, hi int
		ok        bool
	}{
		{"member", 2, 0, 1499, true},
		{"OWNER", 1, 10, RangeEnd, true},
		{"cn", 0, 0, 0, false},
		{"bogus", 0, 0, 0, false},
		{"mem", 0, 0, 0, false},
	} {
		v, lo, hi, ok := e.GetRange(tc.name)
		if len(v) != tc.n || lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("GetRange(%q) = %d values, %d-%d, %v; want %d, %d-%d, %v", tc.name, len(v), lo, hi, ok, tc.n, tc.lo, tc.hi, tc.ok)
		}
	}
	if e.Get("member") != nil {
		t.Error("Get must not match a ranged description")
	}
}

func TestSizeLimitExceeded(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 300, 0) })
	c := dialBound(t, s.URL)
	for _, pageSize := range []int{0, 50} {
		r := usersRequest(pageSize)
		r.SizeLimit = 120
		res, err := c.Search(context.Background(), r, func(*Entry) error { return nil })
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
			t.Fatalf("page size %d: got %v (%+v), want sizeLimitExceeded", pageSize, err, res)
		}
	}
	// The server error does not break the connection.
	if _, err := c.Search(context.Background(), usersRequest(50), func(*Entry) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestNoSuchObjectAndReferral(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) {
		genDirectory(w, 3, 0)
		io.WriteString(w, "dn: ou=elsewhere,"+testSuffix+"\nobjectClass: referral\nobjectClass: extensibleObject\nou: elsewhere\nref: ldap://other.example.com/ou=elsewhere,dc=example,dc=com\n\n")
	})
	c := dialBound(t, s.URL)
	r := usersRequest(10)
	r.BaseDN = "ou=missing," + testSuffix
	_, err := c.Search(context.Background(), r, func(*Entry) error { return nil })
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Fatalf("got %v, want noSuchObject", err)
	}
	// A subtree search over the referral object yields a SearchResultReference.
	r = SearchRequest{BaseDN: testSuffix, Scope: ldap.ScopeWholeSubtree, Filter: "(objectClass=*)", PageSize: 10}
	res, err := c.Search(context.Background(), r, func(*Entry) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Referrals) != 1 || !strings.HasPrefix(res.Referrals[0], "ldap://other.example.com/") {
		t.Fatalf("referrals %q", res.Referrals)
	}
	// Searching at the referral object itself: resultCode 10 with the URL.
	r.BaseDN = "ou=elsewhere," + testSuffix
	res, err = c.Search(context.Background(), r, func(*Entry) error { return nil })
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultReferral) || len(res.Referrals) != 1 {
		t.Fatalf("got %v, %q; want referral error", err, res.Referrals)
	}
}

func TestServerKilledMidSearch(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 2500, 0) })
	c := dialBound(t, s.URL)
	res, err := c.Search(context.Background(), usersRequest(100), func(*Entry) error {
		s.Kill()
		return nil
	})
	if err == nil || !ldap.IsErrorWithCode(err, ldap.ErrorNetwork) {
		t.Fatalf("got %v after %d entries, want a network error", err, res.Entries)
	}
	if _, err := c.Search(context.Background(), usersRequest(100), func(*Entry) error { return nil }); err == nil {
		t.Fatal("a broken Conn must keep failing")
	}
}

func TestContextCancel(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 500, 0) })

	t.Run("in callback", func(t *testing.T) {
		c := dialBound(t, s.URL)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := c.Search(ctx, usersRequest(0), func(*Entry) error {
			cancel()
			return nil
		})
		if !errors.Is(err, context.Canceled) || res.Entries > 1 {
			t.Fatalf("got %v after %d entries, want context.Canceled right away", err, res.Entries)
		}
	})
	t.Run("blocked in read", func(t *testing.T) {
		c := dialBound(t, s.URL)
		stopServer(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Search(ctx, usersRequest(10), func(*Entry) error { return nil })
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
			t.Fatalf("got %v after %v", err, time.Since(start))
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 10, 0) })
	c, err := Dial(context.Background(), DialOptions{URL: s.URL, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stopServer(t, s)
	start := time.Now()
	err = c.Bind(context.Background(), testRootDN, testRootPW)
	if !ldap.IsErrorWithCode(err, ldap.ErrorNetwork) || time.Since(start) > 2*time.Second {
		t.Fatalf("got %v after %v, want a network error after ~300ms", err, time.Since(start))
	}
}

// stopServer freezes slapd (SIGSTOP) so reads block, until the test ends. kill(2) returns
// before the stop takes effect, and a busy machine let slapd answer a bind first (CI): it waits
// until the kernel shows every thread stopped. (internal/testenv does the same, but imports
// this package through ldapsync, so a test here cannot use it.)
func stopServer(t *testing.T, s *slapd) {
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Signal(syscall.SIGCONT) })
	dir := fmt.Sprintf("/proc/%d/task", s.cmd.Process.Pid)
	stopped := func() bool {
		tasks, err := os.ReadDir(dir)
		if err != nil || len(tasks) == 0 {
			return false
		}
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join(dir, task.Name(), "stat"))
			i := bytes.LastIndexByte(b, ')') // "pid (slapd) T ..."
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(5 * time.Second); !stopped(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("slapd did not stop within 5 s of SIGSTOP")
		}
	}
}

func TestCallbackErrorKeepsConnUsable(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 350, 0) })
	c := dialBound(t, s.URL)
	stop := errors.New("enough")
	n := 0
	res, err := c.Search(context.Background(), usersRequest(100), func(*Entry) error {
		n++
		if n == 150 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || res.Entries != 150 || n != 150 {
		t.Fatalf("got %v, %d entries, %d calls", err, res.Entries, n)
	}
	res, err = c.Search(context.Background(), usersRequest(100), func(*Entry) error { return nil })
	if err != nil || res.Entries != 350 {
		t.Fatalf("after callback error: %v, %+v", err, res)
	}
}

func TestLdapi(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 20, 0) })
	c := dialBound(t, s.LdapiURL)
	res, err := c.Search(context.Background(), usersRequest(7), func(*Entry) error { return nil })
	if err != nil || res.Entries != 20 || res.Pages != 3 {
		t.Fatalf("ldapi search: %v, %+v", err, res)
	}
}

func TestParseURL(t *testing.T) {
	for raw, want := range map[string]ldapURL{
		"ldap://dc1.example.com":        {"ldap", "dc1.example.com:389", "dc1.example.com"},
		"LDAPS://dc1:1636/dc=x":         {"ldaps", "dc1:1636", "dc1"},
		"ldapi://%2Fvar%2Frun%2Fldapi":  {"ldapi", "/var/run/ldapi", "localhost"},
		"ldapi://%2Ftmp%2Fs/dc=example": {"ldapi", "/tmp/s", "localhost"},
		"ldap://[::1]:10389":            {"ldap", "[::1]:10389", "::1"},
	} {
		got, err := parseURL(raw)
		if err != nil || got != want {
			t.Errorf("parseURL(%q) = %+v, %v; want %+v", raw, got, err, want)
		}
	}
	for _, raw := range []string{"dc1:389", "http://x", "ldapi://"} {
		if _, err := parseURL(raw); err == nil {
			t.Errorf("parseURL(%q) succeeded", raw)
		}
	}
}

func TestTLS(t *testing.T) {
	s := startSlapd(t, func(w io.Writer) { genDirectory(w, 25, 0) })
	ctx := context.Background()
	for name, o := range map[string]DialOptions{
		"ldaps":    {URL: s.LdapsURL, TLSConfig: &tls.Config{RootCAs: s.CAs}},
		"StartTLS": {URL: s.URL, StartTLS: true, TLSConfig: &tls.Config{RootCAs: s.CAs}},
	} {
		t.Run(name, func(t *testing.T) {
			o.Timeout = 5 * time.Second
			c, err := Dial(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, ok := c.conn.(*tls.Conn); !ok {
				t.Fatalf("connection is %T, not TLS", c.conn)
			}
			if err := c.Bind(ctx, testRootDN, testRootPW); err != nil {
				t.Fatal(err)
			}
			res, err := c.Search(ctx, usersRequest(10), func(*Entry) error { return nil })
			if err != nil || res.Entries != 25 {
				t.Fatalf("%v, %+v", err, res)
			}
		})
	}
	t.Run("untrusted certificate", func(t *testing.T) {
		_, err := Dial(ctx, DialOptions{URL: s.URL, StartTLS: true, TLSConfig: &tls.Config{}, Timeout: 5 * time.Second})
		if !ldap.IsErrorWithCode(err, ldap.ErrorNetwork) {
			t.Fatalf("got %v, want a certificate error", err)
		}
	})
}

// An entry bigger than bigKeep arrives in a buffer the connection never reuses: its clone
// shares those bytes instead of copying 50 MB for a group of a million members, and stays
// intact through later reads.
func TestBigEntryCloneSharesItsBuffer(t *testing.T) {
	const members = 120000 // about 5.6 MB of member values
	s := startSlapd(t, func(w io.Writer) {
		genDirectory(w, 20, 0)
		fmt.Fprintf(w, "dn: cn=big,ou=groups,%s\nobjectClass: groupOfNames\ncn: big\n", testSuffix)
		for m := range members {
			fmt.Fprintf(w, "member: uid=user%06d,ou=people,%s\n", m, testSuffix)
		}
		fmt.Fprintln(w)
	})
	c := dialBound(t, s.URL)
	var big, small *Entry
	_, err := c.Search(context.Background(), SearchRequest{BaseDN: testSuffix, Scope: 2, Filter: "(|(cn=big)(uid=user000003))",
		Attributes: []string{"member", "cn"}}, func(e *Entry) error {
		if len(e.Get("member")) > 0 {
			big = e.Clone()
		} else {
			small = e.Clone()
		}
		return nil
	})
	if err != nil || big == nil || small == nil {
		t.Fatalf("search: %v (big %v, small %v)", err, big != nil, small != nil)
	}
	if !big.owned || small.owned {
		t.Fatalf("owned: big %v, small %v; want only the big entry's buffer to be its own", big.owned, small.owned)
	}
	// More reads, big and small, reuse the connection's buffers.
	for range 2 {
		if _, err := c.Search(context.Background(), SearchRequest{BaseDN: testSuffix, Scope: 2, Filter: "(objectClass=*)",
			Attributes: []string{"*"}}, func(*Entry) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	got := big.Get("member")
	if len(got) != members {
		t.Fatalf("%d members kept, want %d", len(got), members)
	}
	for _, m := range []int{0, 1, members / 2, members - 1} {
		if want := fmt.Sprintf("uid=user%06d,ou=people,%s", m, testSuffix); string(got[m]) != want {
			t.Fatalf("member %d is %q after later reads, want %q", m, got[m], want)
		}
	}
	if string(small.Get("cn")[0]) != "Given3 Family3" || string(big.DN) != "cn=big,ou=groups,"+testSuffix {
		t.Fatalf("clones changed: %s %q", big.DN, small.Get("cn"))
	}
}
