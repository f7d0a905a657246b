package ingest

import (
	"maps"
	"slices"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// Overlays of enriching sources (an HR file in enrich mode, cache.Overlay): the attributes a
// source sets on a directory user it joins, over the directory's values, which the overlay
// keeps so that they come back when the source stops setting them.

// MergeOverlay applies o to u, a user as its directory entry gives it: the directory's values
// at o's paths become the returned overlay's Under, and o's Set replaces them in u. Every
// directory pass of an enriched user goes through it, so that a directory change never drops
// the source's values and the stored Under follows the directory.
func MergeOverlay(u *scim.Resource, o *cache.Overlay) *cache.Overlay {
	n := &cache.Overlay{Source: o.Source, Key: o.Key, Set: o.Set, Under: Under(u, o.Set)}
	ApplySet(u, o.Set)
	return n
}

// Under returns u's values at the paths of set: what setting them replaces.
func Under(u *scim.Resource, set map[string]any) map[string]any {
	under := map[string]any{}
	for _, raw := range slices.Sorted(maps.Keys(set)) {
		if p, ok := overlayPath(raw); ok {
			if v, ok := p.Get(u); ok {
				under[raw] = v
			}
		}
	}
	if len(under) == 0 {
		return nil
	}
	return under
}

// ApplySet writes set's values into u.
func ApplySet(u *scim.Resource, set map[string]any) {
	for _, raw := range slices.Sorted(maps.Keys(set)) {
		if p, ok := overlayPath(raw); ok {
			p.Put(u, set[raw])
		}
	}
}

// RevertOverlay undoes o in u: the directory's values of o's paths come back, and a path the
// directory had no value for is removed.
func RevertOverlay(u *scim.Resource, o *cache.Overlay) {
	for _, raw := range slices.Sorted(maps.Keys(o.Set)) {
		p, ok := overlayPath(raw)
		if !ok {
			continue
		}
		if v, ok := o.Under[raw]; ok {
			p.Put(u, v)
		} else {
			p.Unset(u)
		}
	}
}

// overlayPath parses an overlay's path; one that is not single-valued is never stored.
func overlayPath(raw string) (scim.Path, bool) {
	p, err := scim.ParsePath(scim.UserType, raw)
	return p, err == nil && p.Single()
}
