package scimapi

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// The hot cache holds at most its byte budget, whatever the number of users and lookups, and
// its account of the bytes it holds stays exact through replacements and evictions.
func TestHotCacheStaysWithinItsBytes(t *testing.T) {
	h := newHotCache(256 << 10)
	for i := range 3000 {
		id := fmt.Sprintf("user-%d", i%2000) // later rounds replace entries
		r := &scim.Resource{Type: scim.UserType, ID: id, Attributes: map[string]any{
			"userName": id + "@example.com", "title": strings.Repeat("t", 500),
			"emails": []any{map[string]any{"value": id + "@mail.example.com", "type": "work"}}}}
		head := uint64(i / 1000)
		h.put(head, r)
		h.setBody(head, id, make([]byte, 1000))
		h.putLookup(head, lookupKey{cache.IndexUserName, id + "@example.com"}, []string{id})
		slim, body, ok := h.get(head, id)
		if !ok || len(body) != 1000 || slim.Attributes["title"] != nil || slim.Attributes["userName"] != id+"@example.com" {
			t.Fatalf("the entry just put: %v %d %v", ok, len(body), slim)
		}
		sum := 0
		for _, e := range h.m {
			sum += e.size
		}
		if sum != h.bytes || h.bytes > h.maxBytes {
			t.Fatalf("after %d puts: entries sum to %d, accounted %d, budget %d", i+1, sum, h.bytes, h.maxBytes)
		}
		lsum := 0
		for _, e := range h.lookups {
			lsum += e.size
		}
		if lsum != h.lookupBytes || h.lookupBytes > h.lookupMax {
			t.Fatalf("after %d lookups: entries sum to %d, accounted %d, budget %d", i+1, lsum, h.lookupBytes, h.lookupMax)
		}
	}
	if n := len(h.m); n >= 2000 || n < 50 {
		t.Fatalf("%d users in 224 KB", n)
	}
	if _, _, ok := h.get(1, "user-1999"); ok {
		t.Fatal("an entry of an older head is a hit")
	}
}

// A filter is decided on a slim copy only when it names nothing else.
func TestSlimFilter(t *testing.T) {
	for f, want := range map[string]bool{
		`userName eq "a"`: true,
		`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`:                       true,
		`USERNAME eq "a" or externalId eq "b"`:                                             true,
		`emails[type eq "work" and value eq "a"]`:                                          true,
		`emails[type eq "work"].value eq "a"`:                                              true,
		`not (emails.value eq "a") and id eq "x"`:                                          true,
		`meta.lastModified gt "2024-01-01T00:00:00Z"`:                                      true,
		`userName eq "a" and title eq "b"`:                                                 false,
		`name.givenName eq "a"`:                                                            false,
		`groups.value eq "a"`:                                                              false,
		`schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"`:          false,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "1"`: false,
	} {
		e, err := filter.Parse(f)
		if err != nil {
			t.Fatal(f, err)
		}
		if got := slimFilter(e); got != want {
			t.Errorf("slimFilter(%s) = %v", f, got)
		}
	}
}

// The hot cache's estimate of the bytes it holds is close to the heap its entries take, so its
// byte bound is one on memory: 10,000 users like the benchmark fixture's, rendered, with a
// lookup each.
func TestHotCacheEstimateMatchesTheHeap(t *testing.T) {
	const n = 10000
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	h := newHotCache(1 << 30)
	for i := range n {
		u := &scim.Resource{Type: scim.UserType, ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			ExternalID: fmt.Sprintf("E%06d", i), Meta: scim.Meta{Version: fmt.Sprintf("%032x", i)},
			Attributes: map[string]any{
				"userName":    fmt.Sprintf("user%d@example.com", i),
				"displayName": fmt.Sprintf("User %d", i),
				"title":       strings.Repeat("t", 100),
				"emails":      []any{map[string]any{"value": fmt.Sprintf("user%d@mail.example.com", i), "type": "work", "primary": true}},
			}}
		h.put(1, u)
		h.setBody(1, u.ID, make([]byte, 1108))
		h.putLookup(1, lookupKey{cache.IndexUserName, fmt.Sprintf("user%d@example.com", i)}, []string{u.ID})
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	heap, est := int(ms.HeapAlloc)-int(before), h.bytes+h.lookupBytes
	t.Logf("heap %d B, estimate %d B (%d users)", heap, est, len(h.m))
	if len(h.m) != n || est < heap*8/10 || est > heap*3/2 {
		t.Fatalf("%d entries take %d bytes of heap, the cache estimates %d", len(h.m), heap, est)
	}
	runtime.KeepAlive(h)
}
