package push_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/confval"
	"github.com/ldapscim/ldapscim/push"
	"github.com/ldapscim/ldapscim/scim"
)

// A group event carries the group's members only while they fit into a reasonable body: a
// group of more than 10,000 members comes without them (membersOmitted), and a change of a
// few of its members arrives as membership events naming just those, with a small body.
func TestWebhookBigGroupEventsStaySmall(t *testing.T) {
	st, err := cache.Open(cache.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	var events []map[string]any
	largest := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var ev map[string]any
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		largest = max(largest, len(body))
	}))
	defer srv.Close()
	hooks := []push.WebhookConfig{{Name: "hook", URL: srv.URL, Secret: confval.NewSecret("s3cret-hook"), Events: []string{"group.created", "group.updated", "membership.added", "membership.removed"}}}
	if errs := push.Prepare(nil, hooks); len(errs) > 0 {
		t.Fatal(errs)
	}
	wh := push.NewWebhook(hooks[0], st, push.WorkerOptions{})

	group := func(id, name string, n int) *scim.Resource {
		g := &scim.Resource{Type: scim.GroupType, ID: id, Attributes: map[string]any{"displayName": name}}
		for i := range n {
			g.Members = append(g.Members, scim.Member{Value: fmt.Sprintf("u%06d", i), Type: scim.UserType})
		}
		return g
	}
	ctx := context.Background()
	if _, err := st.Apply(ctx, cache.Batch{Upserts: []*scim.Resource{group("small", "Small", 3), group("big", "All staff", 12000)}}); err != nil {
		t.Fatal(err)
	}
	drain(t, wh)
	big := group("big", "All staff", 12000)
	big.Members = big.Members[2:]
	if _, err := st.Apply(ctx, cache.Batch{Upserts: []*scim.Resource{big}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	events, largest = nil, 0
	mu.Unlock()
	drain(t, wh)
	var removed []any
	for _, ev := range events {
		res, _ := ev["resource"].(map[string]any)
		if _, has := res["members"]; ev["type"] == "group.updated" && (has || ev["membersOmitted"] != true) {
			t.Errorf("%s of the big group: members in the resource %v, membersOmitted %v", ev["type"], has, ev["membersOmitted"])
		}
		if ev["type"] == "membership.removed" {
			removed, _ = ev["members"].([]any)
		}
	}
	if len(events) != 2 || len(removed) != 2 || removed[0] != "u000000" || largest > 4096 {
		t.Fatalf("membership.removed %v; largest body %d bytes; events %d", removed, largest, len(events))
	}

	// The small group's events carry its members, as before.
	mu.Lock()
	events = nil
	mu.Unlock()
	if _, err := st.Apply(ctx, cache.Batch{Upserts: []*scim.Resource{group("small", "Small team", 3)}}); err != nil {
		t.Fatal(err)
	}
	drain(t, wh)
	if len(events) != 1 || events[0]["membersOmitted"] != nil {
		t.Fatalf("small group events: %v", events)
	}
	if ms, _ := events[0]["resource"].(map[string]any)["members"].([]any); len(ms) != 3 {
		t.Fatalf("small group event members: %v", ms)
	}
}
