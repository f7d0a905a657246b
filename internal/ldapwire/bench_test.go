package ldapwire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// The benchmarks compare three readers of the same directory (20k
// inetOrgPerson users + 200 groups of 100 members by default, all attributes, pages of
// 1000, a fresh connection and bind per iteration):
//
//	go test -run '^$' -bench . -benchtime 10x -count 3 ./internal/ldapwire
//
// BenchmarkSearchLdapsearch is the reference: OpenLDAP's own C client
// writing LDIF to /dev/null. The requirement is ldapwire <= 1.2x that.
// LDAPWIRE_BENCH_USERS=100000 runs the production-sized case (1,000 groups).

const benchPage = 1000

var benchUsers, benchGroups = benchSize()

func benchSize() (users, groups int) {
	users = 20000
	if n, err := strconv.Atoi(os.Getenv("LDAPWIRE_BENCH_USERS")); err == nil && n > 0 {
		users = n
	}
	return users, users / 100
}

var bench struct {
	once sync.Once
	s    *slapd
	err  error
}

func benchServer(b *testing.B) *slapd {
	b.Helper()
	bench.once.Do(func() {
		bench.s, bench.err = newSlapd(func(w io.Writer) { genDirectory(w, benchUsers, benchGroups) })
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.s
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.s != nil {
		bench.s.Close()
	}
	os.Exit(code)
}

var benchWant = benchUsers + benchGroups + 3 // + suffix and two OUs

func BenchmarkSearchLdapwire(b *testing.B) {
	s := benchServer(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, err := Dial(ctx, DialOptions{URL: s.URL, Timeout: 30 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.Bind(ctx, testRootDN, testRootPW); err != nil {
			b.Fatal(err)
		}
		size := 0
		r := SearchRequest{BaseDN: testSuffix, Scope: ldap.ScopeWholeSubtree, Filter: "(objectClass=*)", PageSize: benchPage}
		res, err := c.Search(ctx, r, func(e *Entry) error {
			size += len(e.DN)
			for _, a := range e.Attrs {
				for _, v := range a.Values {
					size += len(v)
				}
			}
			return nil
		})
		if err != nil || res.Entries != benchWant {
			b.Fatalf("%d entries, %v", res.Entries, err)
		}
		c.Close()
	}
}

func BenchmarkSearchGoLDAPAsync(b *testing.B) {
	s := benchServer(b)
	b.ReportAllocs()
	for b.Loop() {
		l, err := ldap.DialURL(s.URL)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Bind(testRootDN, testRootPW); err != nil {
			b.Fatal(err)
		}
		if n, err := goLDAPAsyncCount(l); err != nil || n != benchWant {
			b.Fatalf("%d entries, %v", n, err)
		}
		l.Close()
	}
}

// goLDAPAsyncCount is the best streaming use of go-ldap: SearchAsync per page,
// driving the paging control by hand.
func goLDAPAsyncCount(l *ldap.Conn) (int, error) {
	paging := ldap.NewControlPaging(benchPage)
	n, size := 0, 0
	for {
		req := ldap.NewSearchRequest(testSuffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", nil, []ldap.Control{paging})
		resp := l.SearchAsync(context.Background(), req, 64)
		for resp.Next() {
			if e := resp.Entry(); e != nil {
				n++
				size += len(e.DN)
				for _, a := range e.Attributes {
					for _, v := range a.ByteValues {
						size += len(v)
					}
				}
			}
		}
		if err := resp.Err(); err != nil {
			return n, err
		}
		ctrl, ok := ldap.FindControl(resp.Controls(), ldap.ControlTypePaging).(*ldap.ControlPaging)
		if !ok || len(ctrl.Cookie) == 0 {
			return n, nil
		}
		paging.SetCookie(ctrl.Cookie)
	}
}

func BenchmarkSearchLdapsearch(b *testing.B) {
	s := benchServer(b)
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for b.Loop() {
		cmd := exec.Command("ldapsearch", "-x", "-LLL", "-H", s.URL, "-D", testRootDN, "-w", testRootPW,
			"-b", testSuffix, "-E", fmt.Sprintf("pr=%d/noprompt", benchPage), "(objectClass=*)")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = devnull, &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("ldapsearch: %v\n%s", err, stderr.Bytes())
		}
	}
}
