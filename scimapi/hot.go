package scimapi

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// hotCache keeps the users the API served last, rendered under the default projection, so
// asking for the same users again costs no store read, JSON decoding, group lookup or
// rendering. IdPs do ask again: a user is looked up by userName before every update, and read
// back after it.
//
// An entry is valid for one journal head. Every change in the cache appends to the journal,
// so any change retires every entry: a request reads the head first, and only entries of that
// head are hits. An entry's data was read after its head was, so it is never older than the
// head says.
//
// An entry does not hold the decoded user (about 3.5 KB of maps for a typical user) but its
// rendering and a slim copy with the attributes most lookups filter on (slimAttrs): a filter
// that names only those is decided on the slim copy (slimFilter), and a page of such users is
// answered with the renderings. Anything else reads the user from the store. Resources in the
// cache are shared between requests and never modified.
//
// It also remembers the answers of index lookups (a userName, an email, ...), under the same
// rule. Both are bounded in bytes (an estimate of the heap they hold), not in entries, and
// evict at random when full.
type hotCache struct {
	mu          sync.Mutex
	maxBytes    int // users
	bytes       int
	m           map[string]*hotEntry // by user id
	lookupMax   int                  // lookups
	lookupBytes int
	lookups     map[lookupKey]lookupEntry
}

type lookupKey struct {
	idx   cache.Index
	value string
}

type lookupEntry struct {
	head uint64
	ids  []string
	size int
}

type hotEntry struct {
	head uint64
	r    *scim.Resource // slim: only slimAttrs among the attributes
	body []byte         // the default rendering (groups included); nil until rendered
	size int
}

// hotBytes bounds the heap the hot cache holds: 32 MB, of which an eighth for lookups. A user
// like the benchmark fixture's takes about 2.3 KB (a 1.1 KB rendering, its slim copy and the
// map entry), so about 12,000 users fit; a lookup about 150 bytes.
const hotBytes = 32 << 20

// hotBatch is the most users one read puts into the cache: a lookup, not a page of an import
// that reads every user once and would only push the others out.
const hotBatch = 16

// slimAttrs are the attributes a hot entry keeps: those of the indexed lookups IdPs make
// (userName, emails). The common attributes (id, externalId, meta) are Resource fields and
// always kept.
var slimAttrs = []string{"userName", "emails"}

// slimCommon are the common attributes a slim copy has.
var slimCommon = []string{"id", "externalId", "meta"}

func newHotCache(maxBytes int) *hotCache {
	return &hotCache{maxBytes: maxBytes - maxBytes/8, lookupMax: maxBytes / 8,
		m: map[string]*hotEntry{}, lookups: map[lookupKey]lookupEntry{}}
}

// Per-entry overheads: map slot, entry and Resource structs, the slim attribute map, slice and
// string headers. Calibrated so that the estimate matches the heap 10,000 entries took
// (runtime.MemStats, Go 1.26): 2,295 bytes per user, 143 per lookup.
const (
	entryOverhead  = 760
	lookupOverhead = 96
)

// lookup returns the ids an index lookup gave as of head (the caller's own copy).
func (h *hotCache) lookup(head uint64, k lookupKey) ([]string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.lookups[k]; ok && e.head == head {
		return slices.Clone(e.ids), true
	}
	return nil, false
}

// putLookup stores the ids an index lookup gave after head was read.
func (h *hotCache) putLookup(head uint64, k lookupKey, ids []string) {
	size := lookupOverhead + len(k.value) + 16*len(ids)
	for _, id := range ids {
		size += len(id)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if size > h.lookupMax {
		return
	}
	if old, ok := h.lookups[k]; ok {
		h.lookupBytes -= old.size
		delete(h.lookups, k)
	}
	for k := range h.lookups { // map order is random: a random eviction
		if h.lookupBytes+size <= h.lookupMax {
			break
		}
		h.lookupBytes -= h.lookups[k].size
		delete(h.lookups, k)
	}
	h.lookups[k] = lookupEntry{head: head, ids: slices.Clone(ids), size: size}
	h.lookupBytes += size
}

// get returns the slim copy of user id as of head and its default rendering (nil if not
// rendered yet); ok is false when the cache does not have it.
func (h *hotCache) get(head uint64, id string) (slim *scim.Resource, body []byte, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[id]; e != nil && e.head == head {
		return e.r, e.body, true
	}
	return nil, nil, false
}

// put stores user r as read after head was. It replaces an entry of another head.
func (h *hotCache) put(head uint64, r *scim.Resource) {
	sl := slimCopy(r)
	size := entryOverhead + len(sl.ID) + len(sl.ExternalID) + len(sl.Meta.Version) + valueSize(sl.Attributes)
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[r.ID]; e != nil && e.head == head {
		return
	}
	h.replace(r.ID, &hotEntry{head: head, r: sl, size: size})
}

// setBody stores the default rendering of user id, if its entry is still of head.
func (h *hotCache) setBody(head uint64, id string, body []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.m[id]; e != nil && e.head == head && e.body == nil {
		n := *e
		n.body, n.size = body, e.size+cap(body)
		h.replace(id, &n)
	}
}

// replace puts e under id, evicting at random until the users fit in maxBytes. h.mu is held.
func (h *hotCache) replace(id string, e *hotEntry) {
	if old := h.m[id]; old != nil {
		h.bytes -= old.size
		delete(h.m, id)
	}
	if e.size > h.maxBytes {
		return
	}
	for k, v := range h.m { // map order is random: a random eviction
		if h.bytes+e.size <= h.maxBytes {
			break
		}
		h.bytes -= v.size
		delete(h.m, k)
	}
	h.m[id] = e
	h.bytes += e.size
}

// slimCopy is r with only the slimAttrs among its attributes (their values shared with r,
// which is never modified).
func slimCopy(r *scim.Resource) *scim.Resource {
	c := &scim.Resource{Type: r.Type, ID: r.ID, ExternalID: r.ExternalID, Meta: r.Meta,
		Attributes: make(map[string]any, len(slimAttrs))}
	for _, k := range slimAttrs {
		if v, ok := r.Attributes[k]; ok {
			c.Attributes[k] = v
		}
	}
	return c
}

// valueSize estimates the heap an attribute value holds.
func valueSize(v any) int {
	switch v := v.(type) {
	case string:
		return 16 + len(v)
	case map[string]any:
		n := 48
		for k, x := range v {
			n += 16 + len(k) + valueSize(x)
		}
		return n
	case []any:
		n := 24
		for _, x := range v {
			n += 16 + valueSize(x)
		}
		return n
	}
	return 16
}

// slimFilter reports whether e names only attributes a slim copy has, so that matching it
// against the slim copy gives the same answer as against the whole user.
func slimFilter(e filter.Expr) bool {
	switch e := e.(type) {
	case *filter.Compare:
		return slimAttr(e.Attr)
	case *filter.ValuePath: // the inner paths name sub-attributes of e.Attr
		return slimAttr(e.Attr)
	case *filter.Logical:
		for _, t := range e.Terms {
			if !slimFilter(t) {
				return false
			}
		}
		return true
	case *filter.Not:
		return slimFilter(e.X)
	}
	return false
}

func slimAttr(p filter.AttrPath) bool {
	if p.URI != "" && !strings.EqualFold(p.URI, scim.SchemaUser) {
		return false
	}
	return containsFold(slimAttrs, p.Name) || containsFold(slimCommon, p.Name)
}

// getMany is Store.GetMany without members, for users through the hot cache: it reads them
// from the store and puts them into the cache if they are few. Groups never go into the
// cache, and no caller ever gets a group's members in a slice: they are streamed (stream.go)
// or decided member by member (memberfilter.go), since a group can have a million of them.
func (s *Server) getMany(ctx context.Context, typ scim.ResourceType, ids []string, head uint64) ([]*scim.Resource, error) {
	list, err := s.store.GetMany(ctx, typ, ids, false)
	if err != nil || typ != scim.UserType || len(ids) > hotBatch {
		return list, err
	}
	for _, r := range list {
		s.hot.put(head, r)
	}
	return list, nil
}
