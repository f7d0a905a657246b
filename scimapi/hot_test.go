package scimapi_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// The API keeps the users it served last (hot.go). Every change in the cache must show in the
// next answer anyway: an attribute, a group membership, a group's name, a deletion.
func TestAnswersSeeEveryChangeDespiteTheHotCache(t *testing.T) {
	st := openStore(t, "")
	fill(t, st, 5, 1, 2) // group 0 lists users 0 and 1
	c := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
	byName := "/scim/v2/Users?filter=" + q(`userName eq "user1@example.com"`)
	byID := "/scim/v2/Users/" + userID(1)
	apply := func(b cache.Batch) {
		t.Helper()
		if _, err := st.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// one returns the user as both routes show it; they must agree.
	one := func() map[string]any {
		t.Helper()
		l, g := c.get(byName), c.get(byID)
		rs := resources(t, l)
		if len(rs) != 1 || g.status != 200 {
			t.Fatalf("by name: %s\nby id: %d %s", l.body, g.status, g.body)
		}
		if a, b := c.get(byName), c.get(byID); !bytes.Equal(a.body, l.body) || !bytes.Equal(b.body, g.body) {
			t.Fatalf("the same question twice, two answers:\n%s\n%s", l.body, a.body)
		}
		return g.json
	}
	groupsOf := func(u map[string]any) []string {
		var out []string
		list, _ := u["groups"].([]any)
		for _, g := range list {
			out = append(out, g.(map[string]any)["display"].(string))
		}
		return out
	}
	if u := one(); u["title"] != "Title 1" || len(groupsOf(u)) != 1 || groupsOf(u)[0] != "Group 0" {
		t.Fatalf("before: %v", u)
	}

	u := genUser(1)
	u.Attributes["title"] = "Chief"
	apply(cache.Batch{Upserts: []*scim.Resource{u}})
	if got := one()["title"]; got != "Chief" {
		t.Fatalf("after a title change: %v", got)
	}

	g := genGroup(0, 2)
	g.Attributes["displayName"] = "Renamed"
	apply(cache.Batch{Upserts: []*scim.Resource{g}})
	if got := groupsOf(one()); len(got) != 1 || got[0] != "Renamed" {
		t.Fatalf("after the group's rename: %v", got)
	}

	g.Members = g.Members[:1] // user 0 only
	apply(cache.Batch{Upserts: []*scim.Resource{g}})
	if got := groupsOf(one()); len(got) != 0 {
		t.Fatalf("after leaving the group: %v", got)
	}

	apply(cache.Batch{Deletes: []string{userID(1)}})
	if r := c.get(byName); len(resources(t, r)) != 0 {
		t.Fatalf("after the deletion, by name: %s", r.body)
	}
	if r := c.get(byID); r.status != 404 {
		t.Fatalf("after the deletion, by id: %d %s", r.status, r.body)
	}
}

// Requests for the same user from many clients while the cache changes: every answer is a
// whole, valid version (the race detector checks the sharing).
func TestHotCacheUnderConcurrentRequestsAndChanges(t *testing.T) {
	st := openStore(t, "")
	fill(t, st, 5, 1, 2)
	h := scimapi.New(testConfig(t), st, scimapi.Options{})
	byName := "/scim/v2/Users?filter=" + q(`userName eq "user1@example.com"`)
	byID := "/scim/v2/Users/" + userID(1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for w := range 6 {
		wg.Go(func() {
			c := client{t: t, h: h, tok: testToken}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var title any
				if (w+i)%2 == 0 {
					r := c.get(byName)
					if rs, _ := r.json["Resources"].([]any); r.status == 200 && len(rs) == 1 {
						title = rs[0].(map[string]any)["title"]
					}
				} else if r := c.get(byID); r.status == 200 {
					title = r.json["title"]
				}
				if s, _ := title.(string); s != "Title 1" && !strings.HasPrefix(s, "v") {
					errs <- fmt.Sprintf("an answer with title %v", title)
					return
				}
			}
		})
	}
	for v := range 30 {
		u := genUser(1)
		u.Attributes["title"] = fmt.Sprintf("v%d", v)
		if _, err := st.Apply(context.Background(), cache.Batch{Upserts: []*scim.Resource{u}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if r := (client{t: t, h: h, tok: testToken}).get(byID); r.json["title"] != "v29" {
		t.Fatalf("after the last change: %v", r.json["title"])
	}
}
