package scimapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/internal/sampledata"
	"github.com/ldapscim/ldapscim/internal/testenv"
	"github.com/ldapscim/ldapscim/ldapsync"
	"github.com/ldapscim/ldapscim/scimapi"
)

// e2e is a real slapd with sample data, synced into a real cache, served by the API.
type e2e struct {
	sl    *testenv.Slapd
	store *cache.Store
	sync  *ldapsync.Syncer
	c     client
}

func newE2E(t *testing.T, o sampledata.Options) *e2e {
	t.Helper()
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{LDIF: []string{testenv.SampleLDIF(t, o)}})
	st := openStore(t, t.TempDir())
	cfg := ldapsync.DefaultConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword = sl.URL, sl.RootDN, confval.NewSecret(sl.RootPassword)
	cfg.Users.BaseDN, cfg.Groups.BaseDN = "ou=people,"+sl.BaseDN, "ou=groups,"+sl.BaseDN
	cfg.Timeout = confval.Duration(20 * time.Second)
	s, err := ldapsync.New(cfg, ldapsync.SafetyConfig{MaxDeletes: 100000, MaxDeletePercent: 100}, st, ldapsync.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{sl: sl, store: st, sync: s, c: client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}}
	e.pass(true)
	return e
}

func (e *e2e) pass(full bool) ldapsync.Summary {
	e.c.t.Helper()
	run := e.sync.SyncOnce
	if full {
		run = e.sync.SyncFull
	}
	sum, err := run(context.Background())
	if err != nil {
		e.c.t.Fatal(err)
	}
	return sum
}

// TestOktaImportAndExistenceCheck follows ref/scim-clients.md: pages of 100 with startIndex until
// totalResults, then userName filters as existence checks, then an unknown id.
func TestOktaImportAndExistenceCheck(t *testing.T) {
	const users, groups = 250, 12
	e := newE2E(t, sampledata.Options{Users: users, Groups: groups, Seed: 7, Disabled: 3})
	okta := e.c
	seen := map[string]map[string]any{}
	var order []string
	for start := 1; ; start += 100 {
		r := okta.get(fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=100", start), "User-Agent", "Okta SCIM Client 1.0.0")
		if r.status != 200 || r.header.Get("Content-Type") != "application/scim+json" {
			t.Fatalf("page %d: %d %s", start, r.status, r.body)
		}
		if num(r.json["totalResults"]) != users || num(r.json["startIndex"]) != start {
			t.Fatalf("page %d: totalResults %v startIndex %v", start, r.json["totalResults"], r.json["startIndex"])
		}
		res := resources(t, r)
		if num(r.json["itemsPerPage"]) != len(res) {
			t.Fatalf("itemsPerPage %v, %d resources", r.json["itemsPerPage"], len(res))
		}
		for _, u := range res {
			id, _ := u["id"].(string)
			meta, _ := u["meta"].(map[string]any)
			if id == "" || u["schemas"] == nil || u["userName"] == nil || u["active"] == nil ||
				meta["resourceType"] != "User" || meta["location"] != testBase+"/Users/"+id {
				t.Fatalf("incomplete user for Okta: %v", u)
			}
			if seen[id] != nil {
				t.Fatalf("%s on two pages", id)
			}
			seen[id] = u
			order = append(order, id)
		}
		if start+100 > num(r.json["totalResults"]) {
			break
		}
	}
	if len(seen) != users || !slices.IsSorted(order) {
		t.Fatalf("imported %d users (sorted %v)", len(seen), slices.IsSorted(order))
	}
	inactive := 0
	for _, u := range seen {
		if u["active"] == false {
			inactive++
		}
	}
	if inactive != 3 {
		t.Errorf("%d inactive users, want 3", inactive)
	}
	// Groups import.
	r := okta.get("/scim/v2/Groups?startIndex=1&count=100")
	if num(r.json["totalResults"]) != groups || len(resources(t, r)) != groups {
		t.Fatalf("groups: %s", r.body)
	}
	// Existence checks: present (in another case), absent.
	some := seen[order[42]]
	name := strings.ToUpper(some["userName"].(string))
	r = okta.get("/scim/v2/Users?filter=" + q(`userName eq "`+name+`"`) + "&startIndex=1&count=100")
	if num(r.json["totalResults"]) != 1 || resources(t, r)[0]["id"] != order[42] {
		t.Fatalf("existence check of %s: %s", name, r.body)
	}
	r = okta.get("/scim/v2/Users?filter=" + q(`userName eq "nobody@nowhere.example"`) + "&startIndex=1&count=100")
	if r.status != 200 || num(r.json["totalResults"]) != 0 || len(resources(t, r)) != 0 {
		t.Fatalf("absent user: %s", r.body)
	}
	r = okta.get("/scim/v2/Users/00000000-dead-beef-0000-000000000000")
	if r.status != 404 || r.json["status"] != "404" {
		t.Fatalf("unknown id: %d %s", r.status, r.body)
	}
	// Group membership as users see it: every member of a group lists that group.
	g := resources(t, okta.get("/scim/v2/Groups?count=1"))[0]
	members, _ := g["members"].([]any)
	if len(members) == 0 {
		t.Fatalf("first group has no members: %v", g)
	}
	mid := members[0].(map[string]any)["value"].(string)
	u := okta.get("/scim/v2/Users/" + mid)
	found := false
	for _, x := range u.json["groups"].([]any) {
		gg := x.(map[string]any)
		if gg["value"] == g["id"] && gg["$ref"] == testBase+"/Groups/"+g["id"].(string) && gg["type"] == "direct" {
			found = true
		}
	}
	if !found {
		t.Errorf("member %s does not list group %s: %v", mid, g["id"], u.json["groups"])
	}
}

// TestEntraQueries follows Entra's query-before-write sequence from ref/scim-clients.md.
func TestEntraQueries(t *testing.T) {
	e := newE2E(t, sampledata.Options{Users: 120, Groups: 8, Seed: 3})
	entra := e.c
	u := resources(t, entra.get("/scim/v2/Users?startIndex=37&count=1"))[0]
	userName, externalID := u["userName"].(string), u["externalId"].(string)
	mail := u["emails"].([]any)[0].(map[string]any)["value"].(string)
	for _, f := range []string{
		`userName eq "` + userName + `"`,
		`externalId eq "` + externalID + `"`,
		`externalId eq ` + externalID,
		`emails[type eq "work"].value eq "` + strings.ToUpper(mail) + `"`,
		`userName eq "` + userName + `" and externalId eq "` + externalID + `"`,
	} {
		r := entra.get("/scim/v2/Users?filter=" + q(f))
		if r.status != 200 || num(r.json["totalResults"]) != 1 || resources(t, r)[0]["id"] != u["id"] {
			t.Errorf("%s: %d %s", f, r.status, r.body)
		}
	}
	if r := entra.get("/scim/v2/Users?filter=" + q(`userName eq "`+userName+`" and externalId eq "nope"`)); num(r.json["totalResults"]) != 0 {
		t.Errorf("and with a miss: %s", r.body)
	}
	r := entra.get("/scim/v2/Groups?excludedAttributes=members")
	gs := resources(t, r)
	if len(gs) != 8 {
		t.Fatalf("groups: %s", r.body)
	}
	for _, g := range gs {
		if g["members"] != nil {
			t.Fatalf("members not excluded: %v", g)
		}
	}
	name := gs[3]["displayName"].(string)
	r = entra.get("/scim/v2/Groups?excludedAttributes=members&filter=" + q(`displayName eq "`+name+`"`))
	if num(r.json["totalResults"]) != 1 || resources(t, r)[0]["id"] != gs[3]["id"] {
		t.Fatalf("displayName eq %q: %s", name, r.body)
	}
}

// TestChangeAppearsAfterDeltaPass: a directory change shows up after the next delta pass with a
// new meta.version and a later meta.lastModified, and meta.lastModified gt finds it.
func TestChangeAppearsAfterDeltaPass(t *testing.T) {
	e := newE2E(t, sampledata.Options{Users: 30, Groups: 2, Seed: 5})
	r := e.c.get("/scim/v2/Users?filter=" + q(`userName eq "`+firstUserName(t, e)+`"`))
	before := resources(t, r)[0]
	id := before["id"].(string)
	beforeMeta := before["meta"].(map[string]any)
	get := e.c.get("/scim/v2/Users/" + id)
	tag := get.header.Get("ETag")
	time.Sleep(10 * time.Millisecond)
	e.sl.Modify(t, fmt.Sprintf("dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Chief Test Officer\n", before["userName"], e.sl.BaseDN))
	if e.pass(false).Updated != 1 {
		t.Fatal("the delta pass did not update the user")
	}
	after := e.c.get("/scim/v2/Users/" + id)
	afterMeta := after.json["meta"].(map[string]any)
	if after.json["title"] != "Chief Test Officer" {
		t.Fatalf("title %v", after.json["title"])
	}
	if afterMeta["version"] == beforeMeta["version"] || after.header.Get("ETag") == tag {
		t.Errorf("version unchanged: %v", afterMeta["version"])
	}
	t0, _ := time.Parse(time.RFC3339Nano, beforeMeta["lastModified"].(string))
	t1, _ := time.Parse(time.RFC3339Nano, afterMeta["lastModified"].(string))
	if !t1.After(t0) {
		t.Errorf("lastModified %v not after %v", t1, t0)
	}
	if r := e.c.get("/scim/v2/Users/"+id, "If-None-Match", tag); r.status != 200 {
		t.Errorf("old ETag still matches: %d", r.status)
	}
	r = e.c.get("/scim/v2/Users?filter=" + q(`meta.lastModified gt "`+beforeMeta["lastModified"].(string)+`"`))
	if num(r.json["totalResults"]) != 1 || resources(t, r)[0]["id"] != id {
		t.Errorf("meta.lastModified gt: %s", r.body)
	}
}

func firstUserName(t *testing.T, e *e2e) string {
	return resources(t, e.c.get("/scim/v2/Users?count=1&startIndex=5"))[0]["userName"].(string)
}

// TestPagingDuringSync pages through 10k users with count=100 again and again while a sync
// pass applies updates: every paging run sees every user exactly once, in id order.
func TestPagingDuringSync(t *testing.T) {
	const users = 10000
	e := newE2E(t, sampledata.Options{Users: users, Groups: 20, Seed: 11})
	// Change 1000 users in the directory; the pass below applies them while we page.
	var ldif strings.Builder
	r := e.c.get("/scim/v2/Users?count=1000&attributes=userName")
	for _, u := range resources(t, r) {
		fmt.Fprintf(&ldif, "dn: uid=%s,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: Paged %d\n\n", u["userName"], e.sl.BaseDN, time.Now().UnixNano())
	}
	e.sl.Modify(t, ldif.String())
	var running atomic.Bool
	var wg sync.WaitGroup
	running.Store(true)
	var sum ldapsync.Summary
	wg.Go(func() {
		defer running.Store(false)
		sum = e.pass(true)
	})
	overlapped := 0 // pages served while the pass ran
	for runs := 0; runs == 0 || running.Load(); runs++ {
		var order []string
		seen := map[string]bool{}
		for start := 1; start <= users; start += 100 {
			during := running.Load()
			r := e.c.get(fmt.Sprintf("/scim/v2/Users?startIndex=%d&count=100&attributes=userName", start))
			if during && running.Load() {
				overlapped++
			}
			if r.status != 200 || num(r.json["totalResults"]) != users {
				t.Fatalf("page %d: %d totalResults %v", start, r.status, r.json["totalResults"])
			}
			for _, u := range resources(t, r) {
				id := u["id"].(string)
				if seen[id] {
					t.Fatalf("run %d: %s twice", runs, id)
				}
				seen[id] = true
				order = append(order, id)
			}
		}
		if len(seen) != users || !slices.IsSorted(order) {
			t.Fatalf("run %d: %d users, sorted %v", runs, len(seen), slices.IsSorted(order))
		}
	}
	wg.Wait()
	if sum.Updated < 1000 {
		t.Errorf("the pass updated %d users, want ≥ 1000", sum.Updated)
	}
	if overlapped == 0 {
		t.Errorf("no paging run overlapped the sync pass")
	}
	t.Logf("%d pages overlapped the pass (%+v)", overlapped, sum)
}
