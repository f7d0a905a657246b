package scimapi_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// What interop probes found: HEAD on GET routes, endpoint names in any case (Microsoft's
// validator), /Me, trailing data after a SearchRequest, and the ETag of a projected body.
func TestInteropEdges(t *testing.T) {
	st := openStore(t, t.TempDir())
	if _, err := st.Apply(context.Background(), cache.Batch{Upserts: []*scim.Resource{genUser(1)}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{}))
	defer srv.Close()
	do := func(method, path, body string, hdr ...string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+testToken)
		req.Header.Set("Content-Type", "application/scim+json")
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	user := "/scim/v2/Users/" + url.PathEscape(userID(1))

	full, _ := do("GET", user, "")
	if full.StatusCode != 200 || strings.HasPrefix(full.Header.Get("ETag"), "W/") {
		t.Fatalf("GET: %d, ETag %q", full.StatusCode, full.Header.Get("ETag"))
	}
	if resp, b := do("HEAD", user, ""); resp.StatusCode != 200 || b != "" || resp.Header.Get("ETag") != full.Header.Get("ETag") {
		t.Fatalf("HEAD: %d, body %q, ETag %q", resp.StatusCode, b, resp.Header.Get("ETag"))
	}
	for _, p := range []string{"/scim/v2/users/" + url.PathEscape(userID(1)), "/scim/v2/USERS?count=1", "/scim/v2/serviceproviderconfig", "/scim/v2/Groups", "/scim/v2/groups"} {
		if resp, b := do("GET", p, ""); resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", p, resp.StatusCode, b)
		}
	}
	if resp, b := do("GET", "/scim/v2/usersx", ""); resp.StatusCode != 404 {
		t.Fatalf("GET /usersx: %d %s", resp.StatusCode, b)
	}
	if resp, b := do("GET", "/scim/v2/Me", ""); resp.StatusCode != 501 || !strings.Contains(b, "/Me is not supported") {
		t.Fatalf("GET /Me: %d %s", resp.StatusCode, b)
	}
	search := `{"schemas":["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],"count":1}`
	if resp, b := do("POST", "/scim/v2/users/.search", search); resp.StatusCode != 200 {
		t.Fatalf(".search: %d %s", resp.StatusCode, b)
	}
	for _, trailing := range []string{search + "x", search + `{"a":1}`, search + "]"} {
		if resp, b := do("POST", "/scim/v2/Users/.search", trailing); resp.StatusCode != 400 || !strings.Contains(b, "invalidSyntax") {
			t.Fatalf(".search with trailing data %q: %d %s", trailing[len(search):], resp.StatusCode, b)
		}
	}
	proj, _ := do("GET", user+"?attributes=userName", "")
	tag := proj.Header.Get("ETag")
	if tag != "W/"+full.Header.Get("ETag") {
		t.Fatalf("ETag of a projection %q, of the whole %q", tag, full.Header.Get("ETag"))
	}
	if resp, _ := do("GET", user+"?attributes=userName", "", "If-None-Match", tag); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match with the weak tag: %d", resp.StatusCode)
	}
	if resp, _ := do("GET", user+"?attributes=userName", "", "If-Match", full.Header.Get("ETag")); resp.StatusCode != 200 {
		t.Fatalf("If-Match with the version: %d", resp.StatusCode)
	}
}
