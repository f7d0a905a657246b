package scimapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// eq is the filter `attr eq "v"` with v escaped as a SCIM filter string.
func eq(attr, v string) string {
	b, _ := json.Marshal(v)
	return attr + " eq " + string(b)
}

func filterPath(f string, extra ...string) string {
	return "/scim/v2/Users?filter=" + url.QueryEscape(f) + strings.Join(extra, "")
}

// Lookups answered through the hot cache (hot.go) must be byte for byte what a server with an
// empty hot cache answers, before and after every kind of change, and must follow the filter's
// own case rules rather than the index's folding.
func TestHotLookupsAnswerAsAColdServer(t *testing.T) {
	st := openStore(t, "")
	// Group 0 lists users 0-2, group 1 users 3-5.
	fill(t, st, 6, 2, 3)
	// Users by id, with userNames that test the index's folding and key encoding.
	names := map[string]string{
		"case-a":   "Ann.Case@Example.com",
		"case-b":   "ann.case@example.com", // differs from case-a only by case
		"escape":   `we"ird\name+100%/x y@example.com`,
		"prefix":   "bob@example.com",
		"prefix2":  "bob@example.com.evil", // the first one's name is a prefix of it
		"long":     strings.Repeat("l", 200) + "@example.com",
		"dotted-i": "İzmir@example.com", // strings.ToLower: "i̇zmir…", which EqualFold does not equate
		"unicode":  "ÄRGER😀@example.com",
	}
	var users []*scim.Resource
	for id, name := range names {
		u := genUser(100)
		u.ID, u.ExternalID, u.DN = id, "X-"+id, "uid="+id+",ou=people,dc=example,dc=com"
		u.Attributes["userName"] = name
		u.Attributes["emails"] = []any{map[string]any{"value": id + "@mail.example.com", "type": "work"}}
		users = append(users, u)
	}
	apply := func(b cache.Batch) {
		t.Helper()
		if _, err := st.Apply(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	apply(cache.Batch{Upserts: users})

	values := []string{"ANN.CASE@EXAMPLE.COM", "ann.case@example.com", names["escape"], strings.ToUpper(names["escape"]),
		"bob@example.com", "bob@example.com.evil", "bob@example.co", names["long"], "i̇zmir@example.com", "İZMİR@example.com",
		"ärger😀@example.com", "user1@example.com", "USER4@example.com", "renamed@example.com", "nobody@example.com"}
	var paths []string
	for _, v := range values {
		paths = append(paths, filterPath(eq("userName", v)), filterPath(eq("userName", v), "&attributes=userName,groups"))
	}
	paths = append(paths,
		filterPath(eq("userName", "user1@example.com")+` and title eq "Title 1"`), // title: not in the slim copy
		filterPath(eq("emails.value", "escape@mail.example.com")),
		filterPath(`emails[type eq "work" and value eq "user2@mail.example.com"]`),
		filterPath(eq("externalId", "X-case-b")),
		filterPath(eq("userName", "user2@example.com")+` or `+eq("userName", "user3@example.com")),
		filterPath(`groups.value eq "`+groupID(0)+`"`),
		"/scim/v2/Users/"+userID(1), "/scim/v2/Users/escape", "/scim/v2/Users/"+userID(1)+"?attributes=userName")

	warm := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
	check := func(step string) {
		t.Helper()
		cold := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
		for _, p := range paths {
			// A server of its own for every question: nothing in its hot cache.
			want := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}.get(p)
			for range 3 { // a miss, then hits
				got := warm.get(p)
				if got.status != want.status || !bytes.Equal(got.body, want.body) || got.header.Get("ETag") != want.header.Get("ETag") {
					t.Fatalf("%s: GET %s\nthrough the hot cache: %d %s %s\nwithout it:           %d %s %s", step, p,
						got.status, got.header.Get("ETag"), got.body, want.status, want.header.Get("ETag"), want.body)
				}
			}
		}
		// Whatever the cache holds, a lookup answers by the filter's rules: userName is
		// case-insensitive (strings.EqualFold), whatever the index folds together.
		current := map[string]string{}
		for _, r := range listAll(t, cold) {
			current[r["id"].(string)] = r["userName"].(string)
		}
		for _, v := range values {
			var want []string
			for id, name := range current {
				if strings.EqualFold(name, v) {
					want = append(want, id)
				}
			}
			got := resources(t, warm.get(filterPath(eq("userName", v))))
			if len(got) != len(want) {
				t.Fatalf("%s: userName eq %q: %d results, want %v", step, v, len(got), want)
			}
			for _, r := range got {
				if !strings.EqualFold(r["userName"].(string), v) {
					t.Fatalf("%s: userName eq %q answered %v", step, v, r["userName"])
				}
			}
		}
	}
	check("at the start")

	u := genUser(1)
	u.Attributes["userName"] = "renamed@example.com"
	apply(cache.Batch{Upserts: []*scim.Resource{u}})
	check("after a rename")
	if n := len(resources(t, warm.get(filterPath(eq("userName", "user1@example.com"))))); n != 0 {
		t.Fatalf("the old name still finds %d users", n)
	}
	if rs := resources(t, warm.get(filterPath(eq("userName", "RENAMED@example.com")))); len(rs) != 1 || rs[0]["id"] != userID(1) {
		t.Fatalf("the new name finds %v", rs)
	}

	groupsOf := func(name string) []string {
		rs := resources(t, warm.get(filterPath(eq("userName", name))))
		if len(rs) != 1 {
			t.Fatalf("%s: %d results", name, len(rs))
		}
		var out []string
		list, _ := rs[0]["groups"].([]any)
		for _, g := range list {
			out = append(out, g.(map[string]any)["value"].(string))
		}
		return out
	}
	if got := groupsOf("user4@example.com"); len(got) != 1 || got[0] != groupID(1) {
		t.Fatalf("user 4's groups before: %v", got)
	}
	g0 := genGroup(0, 3)
	g0.Members = append(g0.Members, scim.Member{Value: userID(4), Type: scim.UserType, Display: "User 4"})
	g1 := genGroup(1, 3)
	g1.Members = g1.Members[:1] // user 3 only
	apply(cache.Batch{Upserts: []*scim.Resource{g0, g1}})
	check("after membership changes")
	if got := groupsOf("user4@example.com"); len(got) != 1 || got[0] != groupID(0) {
		t.Fatalf("user 4's groups after moving from group 1 to group 0: %v", got)
	}

	g0.Attributes["displayName"] = "Renamed group"
	apply(cache.Batch{Upserts: []*scim.Resource{g0}})
	check("after a group rename")

	u = genUser(2)
	u.Attributes["emails"] = []any{map[string]any{"value": "other@mail.example.com", "type": "home"}}
	apply(cache.Batch{Upserts: []*scim.Resource{u}})
	check("after an email change")

	apply(cache.Batch{Deletes: []string{"case-b", userID(4)}})
	check("after deletions")
}

// listAll returns every user.
func listAll(t *testing.T, c client) []map[string]any {
	t.Helper()
	return resources(t, c.get("/scim/v2/Users?count=1000"))
}

// A conditional GET answered from the hot cache compares against the cached version.
func TestHotGetByIDConditional(t *testing.T) {
	st := openStore(t, "")
	fill(t, st, 3, 0, 0)
	c := client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
	path := "/scim/v2/Users/" + userID(1)
	first := c.get(path)
	if first.status != 200 || c.get(path).status != 200 {
		t.Fatalf("GET: %d %s", first.status, first.body)
	}
	tag := first.header.Get("ETag")
	if r := c.get(path, "If-None-Match", tag); r.status != 304 {
		t.Fatalf("If-None-Match the current version: %d", r.status)
	}
	if r := c.get(path, "If-Match", `"other"`); r.status != 412 {
		t.Fatalf("If-Match another version: %d", r.status)
	}
	u := genUser(1)
	u.Attributes["title"] = "Changed"
	if _, err := st.Apply(context.Background(), cache.Batch{Upserts: []*scim.Resource{u}}); err != nil {
		t.Fatal(err)
	}
	r := c.get(path, "If-None-Match", tag)
	if r.status != 200 || r.header.Get("ETag") == tag || r.json["title"] != "Changed" {
		t.Fatalf("after a change, If-None-Match the old version: %d %s %s", r.status, r.header.Get("ETag"), r.body)
	}
	if loc := r.header.Get("Location"); loc != fmt.Sprintf("%s/Users/%s", testBase, userID(1)) {
		t.Fatalf("Location %q", loc)
	}
}
