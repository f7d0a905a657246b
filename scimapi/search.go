package scimapi

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// Filtering: filter.Plan picks an access path; index nodes go to the cache's indexes, "and"
// intersects and "or" unions sorted id lists, and every candidate is re-checked against the
// whole filter. Only a filter without a usable index scans every resource, and such a scan
// fails with 400 tooMany once its matches pass max_results.

// matchBatch is how many candidates are loaded and matched per store read.
const matchBatch = 500

// match returns the sorted ids of typ that satisfy e (every id when e is nil), and the matched
// resources themselves when they were few enough to keep.
func (s *Server) match(ctx context.Context, rs *scim.ResourceSchema, e filter.Expr, m *filter.Matcher, head uint64) (*matched, error) {
	if e == nil {
		ids, err := s.ids.get(ctx, rs.Type)
		return &matched{typ: rs.Type, ids: ids}, err
	}
	cand, scan, err := s.candidates(ctx, rs.Type, filter.Plan(e).Access, head)
	if err != nil {
		return nil, err
	}
	if scan {
		if cand, err = s.ids.get(ctx, rs.Type); err != nil {
			return nil, err
		}
	}
	needGroups := rs.Type == scim.UserType && mentions(e, "groups")
	// Groups are read without members; a filter on members is decided member by member
	// (memberfilter.go).
	var mf *memberFilter
	if rs.Type == scim.GroupType && mentions(e, "members") {
		if mf, err = s.newMemberFilter(ctx, e); err != nil {
			return nil, err
		}
	}
	out := &matched{typ: rs.Type}
	keep := len(cand) <= matchBatch
	// Users the hot cache has are decided on their slim copies when the filter names nothing
	// else; those are not kept (loadPage takes their renderings from the cache).
	slim := rs.Type == scim.UserType && !needGroups && slimFilter(e)
	for start := 0; start < len(cand); start += matchBatch {
		batch, fromHot, err := s.matchBatch(ctx, rs.Type, cand[start:min(start+matchBatch, len(cand))], head, slim)
		if err != nil {
			return nil, err
		}
		if needGroups {
			if err := s.fillGroups(ctx, batch); err != nil {
				return nil, err
			}
		}
		for _, r := range batch {
			ok := false
			if mf != nil {
				if ok, err = mf.match(ctx, r); err != nil {
					return nil, err
				}
			} else {
				ok = m.Match(r)
			}
			if !ok {
				continue
			}
			out.ids = append(out.ids, r.ID)
			if keep && !fromHot[r] {
				out.kept = append(out.kept, r)
			}
		}
		if scan && len(out.ids) > s.cfg.MaxResults {
			return nil, errorf(http.StatusBadRequest, scimTooMany,
				"the filter cannot use an index and matches more than %d resources; narrow it (userName, externalId, emails, displayName, members.value, the enterprise manager.value, id or meta.lastModified gt/ge use indexes)", s.cfg.MaxResults)
		}
	}
	return out, nil
}

// matchBatch reads the candidates ids (sorted) of typ that exist, in id order: with slim, the
// users the hot cache has as of head are its slim copies (marked in fromHot), the others are
// read from the store.
func (s *Server) matchBatch(ctx context.Context, typ scim.ResourceType, ids []string, head uint64, slim bool) (
	batch []*scim.Resource, fromHot map[*scim.Resource]bool, err error) {
	if !slim {
		batch, err = s.getMany(ctx, typ, ids, head)
		return batch, nil, err
	}
	hot := make([]*scim.Resource, len(ids))
	var need []string
	for i, id := range ids {
		if r, _, ok := s.hot.get(head, id); ok {
			hot[i] = r
		} else {
			need = append(need, id)
		}
	}
	var loaded []*scim.Resource
	if len(need) > 0 {
		if loaded, err = s.getMany(ctx, typ, need, head); err != nil {
			return nil, nil, err
		}
	}
	batch = make([]*scim.Resource, 0, len(ids))
	fromHot = map[*scim.Resource]bool{}
	j := 0
	for i, id := range ids {
		switch {
		case hot[i] != nil:
			batch = append(batch, hot[i])
			fromHot[hot[i]] = true
		case j < len(loaded) && loaded[j].ID == id: // GetMany keeps the order and skips the missing
			batch = append(batch, loaded[j])
			j++
		}
	}
	return batch, fromHot, nil
}

// matched is the result of a filter over one resource type.
type matched struct {
	typ  scim.ResourceType
	ids  []string         // sorted
	kept []*scim.Resource // the matches (groups without members), when few enough to keep; else nil
}

// fillGroups sets the "groups" attribute of users for the filter to see. It replaces each user
// with a copy: the originals may be shared through the hot cache.
func (s *Server) fillGroups(ctx context.Context, users []*scim.Resource) error {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	groups, err := s.userGroups(ctx, ids)
	if err != nil {
		return err
	}
	for i, u := range users {
		list := make([]any, 0, len(groups[u.ID]))
		for _, g := range groups[u.ID] {
			list = append(list, map[string]any{"value": g.ID, "display": g.Display, "type": g.kind(),
				"$ref": "/Groups/" + g.ID})
		}
		c := *u
		c.Attributes = maps.Clone(u.Attributes)
		if c.Attributes == nil {
			c.Attributes = map[string]any{}
		}
		c.Attributes["groups"] = list
		users[i] = &c
	}
	return nil
}

// mentions reports whether e names the top-level attribute name anywhere.
func mentions(e filter.Expr, name string) bool {
	switch e := e.(type) {
	case *filter.Compare:
		return strings.EqualFold(e.Attr.Name, name)
	case *filter.ValuePath:
		return strings.EqualFold(e.Attr.Name, name) || mentions(e.Filter, name)
	case *filter.Logical:
		for _, t := range e.Terms {
			if mentions(t, name) {
				return true
			}
		}
	case *filter.Not:
		return mentions(e.X, name)
	}
	return false
}

// candidates executes an access path: sorted candidate ids, or scan == true when it needs
// every resource.
func (s *Server) candidates(ctx context.Context, typ scim.ResourceType, a filter.Access, head uint64) (ids []string, scan bool, err error) {
	switch a := a.(type) {
	case filter.Index:
		return s.index(ctx, typ, a, head)
	case filter.Intersect:
		var out []string
		have := false
		for _, part := range a {
			ids, scan, err := s.candidates(ctx, typ, part, head)
			if err != nil {
				return nil, false, err
			}
			if scan {
				continue // the residual filter checks this part
			}
			if !have {
				out, have = ids, true
			} else {
				out = intersectSorted(out, ids)
			}
		}
		return out, !have, nil
	case filter.Union:
		var out []string
		for _, part := range a {
			ids, scan, err := s.candidates(ctx, typ, part, head)
			if err != nil || scan {
				return nil, scan, err
			}
			out = unionSorted(out, ids)
		}
		return out, false, nil
	}
	return nil, true, nil
}

// index reads one cache index (through the hot cache); an attribute this resource type has no
// index for scans.
func (s *Server) index(ctx context.Context, typ scim.ResourceType, ix filter.Index, head uint64) ([]string, bool, error) {
	users, groups := typ == scim.UserType, typ == scim.GroupType
	lookup := func(idx cache.Index) ([]string, bool, error) {
		k := lookupKey{idx, ix.Value}
		if ids, ok := s.hot.lookup(head, k); ok {
			return ids, false, nil
		}
		ids, err := s.store.Lookup(ctx, idx, ix.Value)
		if err == nil {
			s.hot.putLookup(head, k, ids)
		}
		return ids, false, err
	}
	switch {
	case ix.Attr == "id":
		return []string{ix.Value}, false, nil
	case ix.Attr == "userName" && users:
		return lookup(cache.IndexUserName)
	case ix.Attr == "externalId":
		return lookup(cache.IndexExternalID)
	case ix.Attr == "emails.value" && users:
		return lookup(cache.IndexEmail)
	case ix.Attr == "displayName" && groups:
		return lookup(cache.IndexDisplayName)
	case ix.Attr == "manager.value" && users:
		ix.Value = strings.ToLower(ix.Value) // ids are lower case; the filter ignores case
		return lookup(cache.IndexManager)
	case ix.Attr == "members.value" && groups:
		refs, err := s.store.GroupsOfMany(ctx, []string{ix.Value})
		ids := make([]string, 0, len(refs[ix.Value]))
		for _, r := range refs[ix.Value] {
			ids = append(ids, r.ID)
		}
		return ids, false, err
	case ix.Attr == "meta.lastModified":
		t := ix.Time
		if ix.Op == filter.OpGe {
			t = t.Add(-time.Nanosecond) // ModifiedSince is "after t"
		}
		var ids []string
		err := s.store.ModifiedSince(ctx, typ, t, func(id string) error {
			ids = append(ids, id)
			return nil
		})
		slices.Sort(ids)
		return ids, false, err
	}
	return nil, true, nil
}

func intersectSorted(a, b []string) []string {
	var out []string
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	return out
}

func unionSorted(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}
