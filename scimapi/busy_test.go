package scimapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// While a first sync writes its bulk load into the cache, the API answers as the cache was
// before it (empty: 404 for a user, no error), and serves the users once it is written.
func TestReadsDuringAFirstSyncLoadSeeTheEmptyCache(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, t.TempDir())
	srv := httptest.NewServer(scimapi.New(testConfig(t), st, scimapi.Options{}))
	defer srv.Close()
	l, err := st.BeginLoad(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 60000
	for from := 0; from < n; from += 5000 {
		var batch []*scim.Resource
		for i := from; i < from+5000; i++ {
			batch = append(batch, genUser(i))
		}
		if _, err := l.Apply(ctx, cache.Batch{Source: "ldap", Upserts: batch}); err != nil {
			t.Fatal(err)
		}
	}
	get := func(path string) (int, http.Header, map[string]any) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, nil, nil
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(body, &m)
		return resp.StatusCode, resp.Header, m
	}
	var done atomic.Bool
	committed := make(chan error, 1)
	go func() { committed <- l.Commit(ctx); done.Store(true) }()
	reads, loaded := 0, false
	for i := 0; !done.Load(); i++ {
		code, _, body := get("/scim/v2/Users/" + userID(i%n))
		switch {
		case code == http.StatusOK:
			loaded = true // the load is in: from now on every user is there
		case code == http.StatusNotFound && !loaded:
		default:
			t.Fatalf("status %d while the load was written (loaded: %v): %v", code, loaded, body)
		}
		code, _, body = get("/scim/v2/Users?filter=userName+eq+%22user1@example.com%22")
		if code != http.StatusOK {
			t.Fatalf("filter: status %d while the load was written: %v", code, body)
		}
		reads++
	}
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d reads while the load was written", reads)
	if code, _, _ := get("/scim/v2/Users/" + userID(n-1)); code != http.StatusOK {
		t.Fatalf("after the load: %d", code)
	}
}
