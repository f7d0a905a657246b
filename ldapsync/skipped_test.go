package ldapsync_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/testenv"
)

// Groups changing while delta passes run, every pass replaying their member changes from the
// accesslog: at the end each group's cached members are the directory's. slapd's syncprov
// leaves out of a refresh an entry whose entryCSN is newer than the snapshot the search
// started from (the cookie it returns), so a group modified during the groups' search is not
// reported although it changed before the cookie too; replaying the next pass from that cookie
// would lose those earlier changes for good (found by the HA kill test in cmd/ldapscim: a
// contiguous run of members missing from one group, in one replica's cache).
func TestDeltaReplayWithGroupsChangingDuringTheSearch(t *testing.T) {
	const users, groups = 400, 40
	var b strings.Builder
	b.WriteString("dn: ou=people,dc=example,dc=com\nobjectClass: organizationalUnit\nou: people\n\n")
	b.WriteString("dn: ou=groups,dc=example,dc=com\nobjectClass: organizationalUnit\nou: groups\n\n")
	for i := range users {
		fmt.Fprintf(&b, "dn: uid=u%04d,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u%04d\ncn: U %04d\nsn: U\n\n", i, i, i)
	}
	for g := range groups {
		fmt.Fprintf(&b, "dn: cn=g%02d,ou=groups,dc=example,dc=com\nobjectClass: groupOfNames\ncn: g%02d\nmember: uid=u0000,ou=people,dc=example,dc=com\n\n", g, g)
	}
	e := newEnv(t, testenv.SlapdOptions{LDIF: []string{writeLDIF(t, b.String())}}, nil)
	e.sync(true)

	// Two writers add every user to every group, round-robin over the groups, while deltas run.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- addMembers(ctx, e.sl, w, 2, users, groups)
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	replayed := 0
	for passes := 0; ; passes++ {
		sum := e.sync(false)
		replayed += sum.Replayed
		select {
		case <-done:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	e.sync(false)
	if replayed == 0 {
		t.Fatal("no group was replayed from the accesslog")
	}
	for g := range groups {
		name := fmt.Sprintf("g%02d", g)
		if n := e.memberCount(name); n != users {
			t.Errorf("%s has %d members in the cache, %d in the directory", name, n, users)
		}
	}
}

// addMembers makes users u1.. members of the groups, one modify per member: writer w of n takes
// every n-th user, and user i goes to every group (groups modifies per user).
func addMembers(ctx context.Context, sl *testenv.Slapd, w, n, users, groups int) error {
	c, err := ldap.DialURL(sl.URL)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(sl.RootDN, sl.RootPassword); err != nil {
		return err
	}
	order := make([]int, groups)
	for i := range order {
		order[i] = i
	}
	for i := 1 + w; i < users && ctx.Err() == nil; i += n {
		slices.Reverse(order)
		for _, g := range order {
			mod := ldap.NewModifyRequest(fmt.Sprintf("cn=g%02d,ou=groups,dc=example,dc=com", g), nil)
			mod.Add("member", []string{fmt.Sprintf("uid=u%04d,ou=people,dc=example,dc=com", i)})
			if err := c.Modify(mod); err != nil {
				return fmt.Errorf("adding u%04d to g%02d: %w", i, g, err)
			}
		}
	}
	return nil
}
