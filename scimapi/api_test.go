package scimapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/scimapi"
)

func newTestAPI(t *testing.T, users, groups, groupSize int) client {
	st := openStore(t, "")
	fill(t, st, users, groups, groupSize)
	return client{t: t, h: scimapi.New(testConfig(t), st, scimapi.Options{}), tok: testToken}
}

// TestRoutesAndErrors covers every route and every error the API answers with.
func TestRoutesAndErrors(t *testing.T) {
	c := newTestAPI(t, 30, 3, 5)
	long := "/scim/v2/Users?filter=" + strings.Repeat("a", 9000)
	big := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"` + strings.Repeat("x", 2<<20) + `"}`
	tests := []struct {
		name, method, target, body string
		tok                        string
		status                     int
		scimType                   string
		check                      func(t *testing.T, r response)
	}{
		{"list users", "GET", "/scim/v2/Users", "", testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 30 || len(resources(t, r)) != 30 || num(r.json["startIndex"]) != 1 {
				t.Errorf("got %v", r.json["totalResults"])
			}
		}},
		{"get user", "GET", "/scim/v2/Users/" + userID(3), "", testToken, 200, "", nil},
		{"list groups", "GET", "/scim/v2/Groups", "", testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 3 {
				t.Errorf("totalResults %v", r.json["totalResults"])
			}
		}},
		{"get group", "GET", "/scim/v2/Groups/" + groupID(1), "", testToken, 200, "", nil},
		{"users search", "POST", "/scim/v2/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"userName eq \"user7@example.com\"","count":"5","startIndex":1}`, testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 1 {
				t.Errorf("totalResults %v", r.json["totalResults"])
			}
		}},
		{"groups search", "POST", "/scim/v2/Groups/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"displayName eq \"group 2\"","excludedAttributes":["members"]}`, testToken, 200, "", func(t *testing.T, r response) {
			res := resources(t, r)
			if len(res) != 1 || res[0]["members"] != nil {
				t.Errorf("got %s", r.body)
			}
		}},
		{"root search", "POST", "/scim/v2/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"filter":"externalId pr or displayName eq \"Group 1\""}`, testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 31 {
				t.Errorf("totalResults %v", r.json["totalResults"])
			}
		}},
		{"service provider config", "GET", "/scim/v2/ServiceProviderConfig", "", testToken, 200, "", func(t *testing.T, r response) {
			for _, k := range []string{"patch", "bulk", "changePassword"} {
				if r.json[k].(map[string]any)["supported"] != false {
					t.Errorf("%s supported", k)
				}
			}
			for _, k := range []string{"filter", "sort", "etag"} {
				if r.json[k].(map[string]any)["supported"] != true {
					t.Errorf("%s not supported", k)
				}
			}
			if num(r.json["filter"].(map[string]any)["maxResults"]) != 1000 || r.json["pagination"].(map[string]any)["cursor"] != true {
				t.Errorf("got %s", r.body)
			}
		}},
		{"resource types", "GET", "/scim/v2/ResourceTypes", "", testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 2 {
				t.Errorf("got %s", r.body)
			}
		}},
		{"resource type", "GET", "/scim/v2/ResourceTypes/User", "", testToken, 200, "", nil},
		{"schemas", "GET", "/scim/v2/Schemas", "", testToken, 200, "", func(t *testing.T, r response) {
			if num(r.json["totalResults"]) != 3 {
				t.Errorf("got %v", r.json["totalResults"])
			}
		}},
		{"schema", "GET", "/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", "", testToken, 200, "", nil},
		{"unknown schema", "GET", "/scim/v2/Schemas/urn:x", "", testToken, 404, "", nil},
		{"unknown resource type", "GET", "/scim/v2/ResourceTypes/Device", "", testToken, 404, "", nil},

		{"no token", "GET", "/scim/v2/Users", "", "", 401, "", func(t *testing.T, r response) {
			if r.header.Get("WWW-Authenticate") != `Bearer realm="ldapscim"` {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		}},
		{"wrong token", "GET", "/scim/v2/Users", "", "wrong", 401, "", nil},
		{"wrong token discovery", "GET", "/scim/v2/ServiceProviderConfig", "", "wrong", 401, "", nil},
		{"unknown user", "GET", "/scim/v2/Users/nope", "", testToken, 404, "", nil},
		{"group id as user", "GET", "/scim/v2/Users/" + groupID(1), "", testToken, 404, "", nil},
		{"unknown path", "GET", "/scim/v2/Devices", "", testToken, 404, "", nil},
		{"filter syntax", "GET", "/scim/v2/Users?filter=" + q(`userName eq`), "", testToken, 400, "invalidFilter", func(t *testing.T, r response) {
			if !strings.Contains(r.json["detail"].(string), "position") {
				t.Errorf("detail %q", r.json["detail"])
			}
		}},
		{"filter unknown attribute", "GET", "/scim/v2/Users?filter=" + q(`shoeSize eq "9"`), "", testToken, 400, "invalidFilter", nil},
		{"filter on group attribute", "GET", "/scim/v2/Groups?filter=" + q(`userName eq "x"`), "", testToken, 400, "invalidFilter", nil},
		{"scan too many", "GET", "/scim/v2/Users?filter=" + q(`title pr`), "", testToken, 200, "", nil},
		{"bad startIndex", "GET", "/scim/v2/Users?startIndex=abc", "", testToken, 400, "invalidValue", nil},
		{"bad count", "GET", "/scim/v2/Users?count=1.5", "", testToken, 400, "invalidValue", nil},
		{"bad sortOrder", "GET", "/scim/v2/Users?sortBy=userName&sortOrder=up", "", testToken, 400, "invalidValue", nil},
		{"bad cursor", "GET", "/scim/v2/Users?cursor=!!!", "", testToken, 400, "invalidCursor", nil},
		{"cursor and startIndex", "GET", "/scim/v2/Users?cursor=&startIndex=3", "", testToken, 400, "invalidValue", nil},
		{"search without schemas", "POST", "/scim/v2/Users/.search", `{"filter":"userName pr"}`, testToken, 400, "invalidSyntax", nil},
		{"search not json", "POST", "/scim/v2/Users/.search", `{"schemas":`, testToken, 400, "invalidSyntax", nil},
		{"search bad count", "POST", "/scim/v2/Users/.search", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":"x"}`, testToken, 400, "invalidValue", nil},
		{"url too long", "GET", long, "", testToken, 414, "", nil},
		{"body too large", "POST", "/scim/v2/Users/.search", big, testToken, 413, "", nil},
		{"create user", "POST", "/scim/v2/Users", `{}`, testToken, 501, "", nil},
		{"replace user", "PUT", "/scim/v2/Users/" + userID(1), `{}`, testToken, 501, "", nil},
		{"patch group", "PATCH", "/scim/v2/Groups/" + groupID(1), `{}`, testToken, 501, "", nil},
		{"delete group", "DELETE", "/scim/v2/Groups/" + groupID(1), "", testToken, 501, "", nil},
		{"create group", "POST", "/scim/v2/Groups", `{}`, testToken, 501, "", nil},
		{"bulk", "POST", "/scim/v2/Bulk", `{}`, testToken, 501, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := c
			cl.tok = tt.tok
			r := cl.do(tt.method, tt.target, tt.body)
			if r.status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.status, tt.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/scim+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.status >= 400 {
				if r.json["status"] != fmt.Sprint(tt.status) {
					t.Errorf("status in body %#v, want the string %q", r.json["status"], fmt.Sprint(tt.status))
				}
				if s := r.json["schemas"].([]any); s[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
					t.Errorf("schemas %v", s)
				}
				if got, _ := r.json["scimType"].(string); got != tt.scimType {
					t.Errorf("scimType %q, want %q", got, tt.scimType)
				}
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestTooMany(t *testing.T) {
	st := openStore(t, "")
	fill(t, st, 30, 0, 0)
	cfg := testConfig(t)
	cfg.MaxResults = 10
	c := client{t: t, h: scimapi.New(cfg, st, scimapi.Options{}), tok: testToken}
	r := c.get("/scim/v2/Users?filter=" + q(`title pr`))
	if r.status != 400 || r.json["scimType"] != "tooMany" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// An indexed filter is not a scan: it is fine however many resources exist.
	if r := c.get("/scim/v2/Users?filter=" + q(`userName eq "user1@example.com" and title pr`)); r.status != 200 || num(r.json["totalResults"]) != 1 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// A scan with few matches is fine.
	if r := c.get("/scim/v2/Users?filter=" + q(`title eq "Title 3"`)); r.status != 200 || num(r.json["totalResults"]) != 3 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// sortBy over more than max_results resources.
	if r := c.get("/scim/v2/Users?sortBy=userName"); r.status != 400 || r.json["scimType"] != "tooMany" {
		t.Fatalf("got %d %s", r.status, r.body)
	}
}

func TestETag(t *testing.T) {
	c := newTestAPI(t, 3, 0, 0)
	r := c.get("/scim/v2/Users/" + userID(1))
	tag := r.header.Get("ETag")
	meta := r.json["meta"].(map[string]any)
	if tag == "" || tag[0] != '"' || strings.HasPrefix(tag, "W/") || meta["version"] != tag {
		t.Fatalf("ETag %q, meta.version %v", tag, meta["version"])
	}
	if r := c.get("/scim/v2/Users/"+userID(1), "If-None-Match", tag); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match: %d %s", r.status, r.body)
	}
	if r := c.get("/scim/v2/Users/"+userID(1), "If-None-Match", `"other"`); r.status != 200 {
		t.Errorf("If-None-Match other: %d", r.status)
	}
	if r := c.get("/scim/v2/Users/"+userID(1), "If-Match", `"other"`); r.status != http.StatusPreconditionFailed || r.json["status"] != "412" {
		t.Errorf("If-Match other: %d %s", r.status, r.body)
	}
	if r := c.get("/scim/v2/Users/"+userID(1), "If-Match", tag); r.status != 200 {
		t.Errorf("If-Match: %d", r.status)
	}
	if r := c.get("/scim/v2/Users/"+userID(2), "If-None-Match", tag); r.status != 200 {
		t.Errorf("another user's tag: %d", r.status)
	}
}

func TestPaging(t *testing.T) {
	c := newTestAPI(t, 25, 0, 0)
	ids := func(r response) []string {
		var out []string
		for _, res := range resources(t, r) {
			out = append(out, res["id"].(string))
		}
		return out
	}
	tests := []struct {
		query               string
		total, items, start int
		first               string
	}{
		{"startIndex=1&count=10", 25, 10, 1, userID(0)},
		{"startIndex=11&count=10", 25, 10, 11, userID(10)},
		{"startIndex=21&count=10", 25, 5, 21, userID(20)},
		{"startIndex=26&count=10", 25, 0, 26, ""},
		{"startIndex=1000&count=10", 25, 0, 1000, ""},
		{"startIndex=0&count=3", 25, 3, 1, userID(0)},
		{"startIndex=-5&count=3", 25, 3, 1, userID(0)},
		{"count=0", 25, 0, 1, ""},
		{"count=-4", 25, 0, 1, ""},
		{"startIndex=2", 25, 24, 2, userID(1)},
		{"count=99999999999999999999999", 25, 25, 1, userID(0)},
		{"filter=" + q(`title eq "Title 1"`) + "&count=1&startIndex=2", 2, 1, 2, userID(14)},
	}
	for _, tt := range tests {
		r := c.get("/scim/v2/Users?" + tt.query)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", tt.query, r.status, r.body)
		}
		got := ids(r)
		if num(r.json["totalResults"]) != tt.total || num(r.json["itemsPerPage"]) != tt.items || len(got) != tt.items || num(r.json["startIndex"]) != tt.start {
			t.Errorf("%s: total %v items %v start %v (%d resources)", tt.query, r.json["totalResults"], r.json["itemsPerPage"], r.json["startIndex"], len(got))
		}
		if tt.first != "" && (len(got) == 0 || got[0] != tt.first) {
			t.Errorf("%s: first %v, want %s", tt.query, got, tt.first)
		}
	}
}

func TestCursorPaging(t *testing.T) {
	c := newTestAPI(t, 25, 0, 0)
	seen := map[string]bool{}
	cursor := ""
	for pages := 0; ; pages++ {
		r := c.get("/scim/v2/Users?count=7&cursor=" + cursor)
		if r.status != 200 || num(r.json["totalResults"]) != 25 || r.json["startIndex"] != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		for _, res := range resources(t, r) {
			id := res["id"].(string)
			if seen[id] {
				t.Fatalf("%s twice", id)
			}
			seen[id] = true
		}
		next, _ := r.json["nextCursor"].(string)
		if next == "" {
			break
		}
		if pages > 10 {
			t.Fatal("no end")
		}
		cursor = next
	}
	if len(seen) != 25 {
		t.Fatalf("saw %d users", len(seen))
	}
}

func TestSort(t *testing.T) {
	c := newTestAPI(t, 12, 0, 0)
	r := c.get("/scim/v2/Users?sortBy=name.familyName&sortOrder=descending&count=3")
	res := resources(t, r)
	if len(res) != 3 || res[0]["id"] != userID(11) || res[2]["id"] != userID(9) {
		t.Fatalf("got %s", r.body)
	}
	r = c.get("/scim/v2/Users?sortBy=title&count=2&startIndex=1")
	res = resources(t, r)
	// Title 0 (user 0), Title 1 (user 1), Title 10 (user 10): lexicographic.
	if res[0]["id"] != userID(0) || res[1]["id"] != userID(1) {
		t.Fatalf("got %v %v", res[0]["id"], res[1]["id"])
	}
	r = c.get("/scim/v2/Users?sortBy=id&sortOrder=descending&count=1")
	if resources(t, r)[0]["id"] != userID(11) {
		t.Fatalf("got %s", r.body)
	}
}

func TestProjection(t *testing.T) {
	c := newTestAPI(t, 12, 2, 5)
	r := c.get("/scim/v2/Users/" + userID(3) + "?attributes=userName,name.givenName")
	want := map[string]bool{"schemas": true, "id": true, "userName": true, "name": true}
	for k := range r.json {
		if !want[k] {
			t.Errorf("attributes: unexpected %q", k)
		}
	}
	if n := r.json["name"].(map[string]any); len(n) != 1 || n["givenName"] != "User" {
		t.Errorf("name %v", n)
	}
	r = c.get("/scim/v2/Users/" + userID(3) + "?excludedAttributes=id,schemas,emails,meta,groups,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
	for _, k := range []string{"emails", "meta", "groups"} {
		if r.json[k] != nil {
			t.Errorf("excluded %q still there", k)
		}
	}
	if r.json["id"] == nil || r.json["schemas"] == nil || r.json["userName"] == nil {
		t.Errorf("always/default attributes dropped: %s", r.body)
	}
	ent := r.json["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"].(map[string]any)
	if ent["manager"] != nil || ent["department"] == nil {
		t.Errorf("enterprise %v", ent)
	}
	r = c.get("/scim/v2/Groups?excludedAttributes=members")
	for _, g := range resources(t, r) {
		if g["members"] != nil || g["displayName"] == nil {
			t.Errorf("group %v", g)
		}
	}
	r = c.get("/scim/v2/Groups/" + groupID(1) + "?attributes=members.value")
	m := r.json["members"].([]any)
	if len(m) != 5 || len(m[0].(map[string]any)) != 1 || r.json["displayName"] != nil {
		t.Errorf("members.value: %s", r.body)
	}
}

func TestFilters(t *testing.T) {
	c := newTestAPI(t, 40, 4, 10)
	tests := []struct {
		path, filter string
		total        int
	}{
		{"Users", `userName eq "USER5@EXAMPLE.COM"`, 1},
		{"Users", `userName eq "absent@example.com"`, 0},
		{"Users", `externalId eq "E000007"`, 1},
		{"Users", `externalId eq "e000007"`, 0}, // caseExact
		{"Users", `externalId eq E000007`, 1},   // Entra's unquoted form
		{"Users", `emails[type eq "work"].value eq "user9@mail.example.com"`, 1},
		{"Users", `emails.value eq "USER9@mail.example.com"`, 1},
		{"Users", `id eq "` + userID(3) + `"`, 1},
		{"Users", `id eq "` + groupID(1) + `"`, 0},
		{"Users", `userName eq "user1@example.com" or userName eq "user2@example.com"`, 2},
		{"Users", `userName eq "user1@example.com" and title eq "Title 2"`, 0},
		{"Users", `groups.value eq "` + groupID(2) + `"`, 10},
		{"Users", `groups[display eq "Group 3"]`, 10},
		{"Users", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "` + userID(1) + `"`, 10},
		{"Users", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "` + strings.ToUpper(userID(1)) + `"`, 10},
		{"Users", `urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "` + userID(1) + `" and title eq "Title 12"`, 1},
		{"Users", `active eq false`, 0},
		{"Users", `not (title pr)`, 0},
		{"Users", `meta.lastModified gt "2000-01-01T00:00:00Z"`, 40},
		{"Users", `meta.lastModified ge "2999-01-01T00:00:00Z"`, 0},
		{"Groups", `displayName eq "GROUP 2"`, 1},
		{"Groups", `members.value eq "` + userID(15) + `"`, 1},
		{"Groups", `members[value eq "` + userID(15) + `"] or displayName eq "Group 0"`, 2},
		{"Groups", `displayName sw "Group"`, 4},
	}
	for _, tt := range tests {
		r := c.get("/scim/v2/" + tt.path + "?filter=" + q(tt.filter))
		if r.status != 200 || num(r.json["totalResults"]) != tt.total || len(resources(t, r)) != tt.total {
			t.Errorf("%s %s: %d totalResults %v", tt.path, tt.filter, r.status, r.json["totalResults"])
		}
	}
}
