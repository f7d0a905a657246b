package scimapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scimapi"
)

// blockingStore holds every GetMany until release is closed, so requests stay in flight.
type blockingStore struct {
	*cache.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) GetMany(ctx context.Context, typ scim.ResourceType, ids []string, withMembers bool) ([]*scim.Resource, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.GetMany(ctx, typ, ids, withMembers)
}

// Beyond max_concurrent_requests requests at once the API answers 503 with Retry-After and a
// SCIM error, and serves again once a slot is free.
func TestConcurrentRequestsAreBounded(t *testing.T) {
	st := openStore(t, t.TempDir())
	if _, err := st.Apply(context.Background(), cache.Batch{Upserts: []*scim.Resource{genUser(1)}}); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.MaxConcurrentRequests = 2
	bs := &blockingStore{Store: st, entered: make(chan struct{}, 8), release: make(chan struct{})}
	srv := httptest.NewServer(scimapi.New(cfg, bs, scimapi.Options{}))
	defer srv.Close()
	get := func() *http.Response {
		req, _ := http.NewRequest("GET", srv.URL+"/scim/v2/Users/"+url.PathEscape(userID(1)), nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		return resp
	}
	done := make(chan int, 2)
	for range 2 {
		go func() {
			if resp := get(); resp != nil {
				resp.Body.Close()
				done <- resp.StatusCode
			}
		}()
		<-bs.entered
	}
	resp := get()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		!strings.Contains(body["detail"].(string), "more than 2 requests at once") {
		t.Fatalf("third request: %d, Retry-After %q, %v", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	close(bs.release)
	for range 2 {
		if code := <-done; code != http.StatusOK {
			t.Fatalf("a request in flight ended with %d", code)
		}
	}
	if resp := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the others finished: %d", resp.StatusCode)
	}
}
