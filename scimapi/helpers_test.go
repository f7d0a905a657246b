package scimapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

const (
	testToken = "s3cret-token"
	testBase  = "https://scim.example.test/scim/v2"
)

func testConfig(t testing.TB) scimapi.Config {
	t.Helper()
	cfg := scimapi.DefaultConfig()
	cfg.BaseURL = testBase
	sum := sha256.Sum256([]byte(testToken))
	cfg.Tokens = []scimapi.Token{{Name: "test", TokenSHA256: hex.EncodeToString(sum[:])}}
	if errs := cfg.ResolveTokens(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	return cfg
}

func openStore(t testing.TB, dir string) *cache.Store {
	t.Helper()
	st, err := cache.Open(cache.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// userID and groupID are deterministic UUID-shaped ids.
func userID(i int) string  { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
func groupID(i int) string { return fmt.Sprintf("10000000-0000-4000-8000-%012d", i) }

// genUser is user i, with a manager (user i/10) for i > 0.
func genUser(i int) *scim.Resource {
	ent := map[string]any{"employeeNumber": fmt.Sprint(i), "department": fmt.Sprintf("Dept %d", i%7)}
	if i > 0 {
		ent["manager"] = map[string]any{"value": userID(i / 10), "displayName": fmt.Sprintf("User %d", i/10)}
	}
	return &scim.Resource{Type: scim.UserType, ID: userID(i), ExternalID: fmt.Sprintf("E%06d", i),
		DN: fmt.Sprintf("uid=user%d,ou=people,dc=example,dc=com", i),
		Attributes: map[string]any{
			"userName":                fmt.Sprintf("user%d@example.com", i),
			"displayName":             fmt.Sprintf("User %d", i),
			"name":                    map[string]any{"givenName": "User", "familyName": fmt.Sprintf("N%06d", i), "formatted": fmt.Sprintf("User %d", i)},
			"emails":                  []any{map[string]any{"value": fmt.Sprintf("user%d@mail.example.com", i), "type": "work", "primary": true}},
			"title":                   fmt.Sprintf("Title %d", i%13),
			"active":                  i%50 != 49,
			scim.SchemaEnterpriseUser: ent,
		}}
}

// genGroup is group g with members users [g*size, g*size+size).
func genGroup(g, size int) *scim.Resource {
	r := &scim.Resource{Type: scim.GroupType, ID: groupID(g), DN: fmt.Sprintf("cn=group%d,ou=groups,dc=example,dc=com", g),
		Attributes: map[string]any{"displayName": fmt.Sprintf("Group %d", g)}}
	for i := g * size; i < g*size+size; i++ {
		r.Members = append(r.Members, scim.Member{Value: userID(i), Type: scim.UserType, Display: fmt.Sprintf("User %d", i)})
	}
	return r
}

// fill applies users and groups in batches.
func fill(t testing.TB, st *cache.Store, users, groups, groupSize int) {
	t.Helper()
	fillWith(t, st.Apply, users, groups, groupSize)
}

// fillWith is fill through apply (a Store's, or a first sync's bulk load's).
func fillWith(t testing.TB, apply func(context.Context, cache.Batch) (cache.Result, error), users, groups, groupSize int) {
	t.Helper()
	var batch []*scim.Resource
	flush := func() {
		if _, err := apply(context.Background(), cache.Batch{Source: "test", Upserts: batch}); err != nil {
			t.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < users; i++ {
		batch = append(batch, genUser(i))
		if len(batch) == 5000 {
			flush()
		}
	}
	for g := 0; g < groups; g++ {
		batch = append(batch, genGroup(g, groupSize))
		if len(batch) == 500 {
			flush()
		}
	}
	flush()
}

type client struct {
	t   testing.TB
	h   http.Handler
	tok string
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (c client) do(method, target, body string, hdr ...string) response {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if c.tok != "" {
		req.Header.Set("Authorization", "Bearer "+c.tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	c.h.ServeHTTP(w, req)
	r := response{status: w.Code, header: w.Header(), body: w.Body.Bytes()}
	if len(r.body) > 0 {
		if err := json.Unmarshal(r.body, &r.json); err != nil {
			c.t.Fatalf("%s %s: body is not JSON: %v\n%s", method, target, err, r.body)
		}
	}
	return r
}

func (c client) get(target string, hdr ...string) response {
	c.t.Helper()
	return c.do("GET", target, "", hdr...)
}

func resources(t testing.TB, r response) []map[string]any {
	t.Helper()
	list, ok := r.json["Resources"].([]any)
	if !ok {
		t.Fatalf("no Resources in %s", r.body)
	}
	out := make([]map[string]any, len(list))
	for i, x := range list {
		out[i] = x.(map[string]any)
	}
	return out
}

func num(v any) int {
	f, _ := v.(float64)
	return int(f)
}

func q(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, " ", "%20"), `"`, "%22") }
