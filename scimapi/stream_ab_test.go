package scimapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// A/B tests: what the API streams and decides member by member must be byte for byte (and
// match for match) what it rendered and matched with the whole member list in memory.

func abStore(t *testing.T) (*cache.Store, *Server) {
	t.Helper()
	st, err := cache.Open(cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	uid := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	var batch []*scim.Resource
	for i := range 12 {
		batch = append(batch, &scim.Resource{Type: scim.UserType, ID: uid(i),
			Attributes: map[string]any{"userName": fmt.Sprintf("u%d", i), "displayName": fmt.Sprintf("User %d", i)}})
	}
	group := func(id, name string, members ...scim.Member) *scim.Resource {
		return &scim.Resource{Type: scim.GroupType, ID: id, ExternalID: "x-" + name, DN: "cn=" + name,
			Attributes: map[string]any{"displayName": name}, Members: members}
	}
	u := func(i int, display string) scim.Member {
		return scim.Member{Value: uid(i), Type: scim.UserType, Display: display}
	}
	batch = append(batch,
		group("g-empty", "Empty"),
		group("g-one", "One", u(1, "User 1")),
		group("g-mixed", "Mixed \"quoted\" é", u(1, "User 1"), u(2, ""), u(3, "Ünïcode \"q\" \\ back"),
			scim.Member{Value: "g-one", Type: scim.GroupType, Display: "One"},
			scim.Member{Value: "odd id/with space", Type: scim.UserType, Display: "Odd"}),
		group("g-many", "Many", u(0, "User 0"), u(2, "User 2"), u(4, "User 4"), u(5, "User 5"), u(11, "User 11")),
	)
	if _, err := st.Apply(context.Background(), cache.Batch{Source: "test", Upserts: batch}); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.BaseURL = "https://scim.example.test/scim/v2"
	sum := sha256.Sum256([]byte("tok"))
	cfg.Tokens = []Token{{Name: "t", TokenSHA256: hex.EncodeToString(sum[:])}}
	if errs := cfg.ResolveTokens(); len(errs) > 0 {
		t.Fatal(errs)
	}
	return st, New(cfg, st, Options{})
}

var abGroups = []string{"g-empty", "g-one", "g-mixed", "g-many"}

func abGet(t *testing.T, s *Server, target string) string {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	req.Header.Set("Authorization", "Bearer tok")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != 200 {
		t.Fatalf("%s: %d %s", target, w.Code, w.Body)
	}
	return w.Body.String()
}

func TestStreamedGroupsRenderAsBefore(t *testing.T) {
	st, s := abStore(t)
	ctx := context.Background()
	for _, proj := range []string{"", "attributes=members.value", "attributes=members.display", "attributes=displayName,members",
		"attributes=members.$ref,members.type", "excludedAttributes=meta", "excludedAttributes=members.$ref",
		"excludedAttributes=members.display,externalId", "excludedAttributes=members", "attributes=displayName"} {
		v, _ := url.ParseQuery(proj)
		p := newProjection(scim.GroupResource, splitList(v.Get("attributes")), splitList(v.Get("excludedAttributes")))
		var want []string
		for _, id := range abGroups {
			full, err := st.Get(ctx, scim.GroupType, id) // every member in memory: the old path
			if err != nil {
				t.Fatal(err)
			}
			old := string(s.appendResource(nil, full, nil, p))
			want = append(want, old)
			if got := abGet(t, s, "/scim/v2/Groups/"+url.PathEscape(id)+"?"+proj); got != old {
				t.Errorf("GET %s?%s:\n got %s\nwant %s", id, proj, got, old)
			}
		}
		// A list page is the same renderings, in id order (g-empty < g-many < g-mixed < g-one).
		list := abGet(t, s, "/scim/v2/Groups?"+proj)
		wantList := `{"schemas":["` + schemaListResponse + `"],"totalResults":4,"itemsPerPage":4,"startIndex":1,"Resources":[` +
			strings.Join([]string{want[0], want[3], want[2], want[1]}, ",") + "]}"
		if list != wantList {
			t.Errorf("list ?%s:\n got %s\nwant %s", proj, list, wantList)
		}
	}
}

func TestMemberFiltersDecideAsBefore(t *testing.T) {
	st, s := abStore(t)
	ctx := context.Background()
	u1 := "00000000-0000-4000-8000-000000000001"
	filters := []string{
		`members.value eq "` + u1 + `"`,
		`members eq "` + u1 + `"`,
		`members[value eq "` + u1 + `"]`,
		`members[value eq "` + u1 + `" and type eq "User"]`,
		`members[value eq "` + u1 + `" and type eq "Group"]`,
		`members[type eq "User"].value eq "` + u1 + `"`,
		`members[value eq "` + u1 + `" and display eq "user 1"]`,
		`members.value eq "nobody"`,
		`members.value ne "` + u1 + `"`,
		`members ne "` + u1 + `"`,
		`members.display ne "User 1"`,
		`members.display ne "One"`,
		`members[display ne "User 1"]`,
		`members.display ne null`,
		`members.type pr`,
		`not (members.display ne "User 1")`,
		`not (members.value eq "` + u1 + `")`,
		`members.display co "1"`,
		`members.display sw "user 1"`,
		`members.display ew "\"q\" \\ back"`,
		`members pr`,
		`not (members pr)`,
		`members eq null`,
		`members.display pr`,
		`members.display eq null`,
		`members.value ne null`,
		`members.type eq "Group"`,
		`members.value gt "00000000-0000-4000-8000-000000000004"`,
		`members.value co "000000000002" and members.value co "000000000004"`,
		`members[display co "User" and not (value eq "` + u1 + `")]`,
		`members.display co "User" or displayName eq "Empty"`,
		`displayName eq "Many" and members.value eq "` + u1 + `"`,
		`displayName sw "M" and not (members.display co "11")`,
		`(members.value eq "` + u1 + `" or members.value eq "g-one") and externalId pr`,
	}
	for _, f := range filters {
		e, err := filter.Parse(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, err := filter.Compile(e, scim.GroupResource)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		mf, err := s.newMemberFilter(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		var matched []string
		for _, id := range abGroups {
			full, err := st.Get(ctx, scim.GroupType, id)
			if err != nil {
				t.Fatal(err)
			}
			bare, err := st.GetMany(ctx, scim.GroupType, []string{id}, false)
			if err != nil {
				t.Fatal(err)
			}
			got, err := mf.match(ctx, bare[0])
			if err != nil {
				t.Fatal(err)
			}
			if want := m.Match(full); got != want {
				t.Errorf("%s on %s: %v, with every member in memory %v", f, id, got, want)
			}
			if got {
				matched = append(matched, id)
			}
		}
		t.Logf("%-70s %v", f, matched)
	}
}
