package scimapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// A list response is computed in three steps: match (ids per resource type, from indexes or a
// bounded scan), order (id order by default, so pages are stable; sortBy sorts the matches) and
// page (startIndex/count or an RFC 9865 cursor), and only the page's resources are read and
// rendered.

const schemaListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// item is one result: a resource type and id.
type item struct {
	typ scim.ResourceType
	id  string
}

// order is the ordered result of a query: either per-type runs of sorted ids (the default, id
// order, users before groups) or an explicit sorted list.
type order struct {
	runs   []*matched
	sorted []item
	loaded map[item]*scim.Resource
}

func (o *order) total() int {
	if o.sorted != nil {
		return len(o.sorted)
	}
	n := 0
	for _, r := range o.runs {
		n += len(r.ids)
	}
	return n
}

// slice returns the items at positions [start, end).
func (o *order) slice(start, end int) []item {
	if o.sorted != nil {
		return o.sorted[start:end]
	}
	out := make([]item, 0, end-start)
	base := 0
	for _, r := range o.runs {
		lo, hi := max(start-base, 0), min(end-base, len(r.ids))
		for i := lo; i < hi; i++ {
			out = append(out, item{r.typ, r.ids[i]})
		}
		base += len(r.ids)
	}
	return out
}

// after returns the position just after it in id order (for cursors).
func (o *order) after(it item) int {
	base := 0
	for _, r := range o.runs {
		if r.typ == it.typ {
			i, found := slices.BinarySearch(r.ids, it.id)
			if found {
				i++
			}
			return base + i
		}
		base += len(r.ids)
	}
	return base
}

// respondList answers a list or search request over the resource types in scope.
func (s *Server) respondList(c *gin.Context, scope []*scim.ResourceSchema, q *listQuery) {
	ctx := c.Request.Context()
	head, err := s.store.JournalHead(ctx)
	if err != nil {
		s.writeError(c, err)
		return
	}
	q.head = head
	o, err := s.query(ctx, scope, q)
	if err != nil {
		s.writeError(c, err)
		return
	}
	total := o.total()
	start, err := s.pageStart(o, q, total)
	if err != nil {
		s.writeError(c, err)
		return
	}
	end := min(start+q.count, total)
	page := o.slice(start, end)
	res, groups, bodies, projs, err := s.loadPage(ctx, o, page, q)
	if err != nil {
		s.writeError(c, err)
		return
	}
	w := newStream(c, 512+1024*len(res))
	buf := w.buf
	buf = append(buf, `{"schemas":["`+schemaListResponse+`"],"totalResults":`...)
	buf = strconv.AppendInt(buf, int64(total), 10)
	buf = append(buf, `,"itemsPerPage":`...)
	buf = strconv.AppendInt(buf, int64(len(res)), 10)
	if q.cursor == nil {
		buf = append(buf, `,"startIndex":`...)
		buf = strconv.AppendInt(buf, int64(q.startIndex), 10)
	} else if end < total && len(page) > 0 {
		buf = append(buf, `,"nextCursor":`...)
		buf = jsonappend.String(buf, s.nextCursor(o, q, end, page[len(page)-1]))
	}
	buf = append(buf, `,"Resources":[`...)
	w.buf = buf
	streamMembers := projs[scim.GroupType].want(scim.SchemaGroup, membersAttr).ok
	for i, r := range res {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		if r.Type == scim.GroupType && streamMembers {
			if err := s.streamGroup(ctx, w, r.ID, r, projs[r.Type], nil); err != nil {
				s.fail(w, err)
				return
			}
		} else if body := bodies[r.ID]; body != nil && r.Type == scim.UserType {
			w.buf = append(w.buf, body...)
		} else {
			n, keep := len(w.buf), bodies != nil && r.Type == scim.UserType && settled(r)
			w.buf = s.appendResource(w.buf, r, groups[r.ID], projs[r.Type])
			if keep {
				s.hot.setBody(q.head, r.ID, slices.Clone(w.buf[n:]))
			}
		}
		if err := w.maybeFlush(); err != nil {
			s.abort(w, err)
		}
	}
	w.buf = append(w.buf, "]}"...)
	s.finish(w)
}

// query matches and orders.
func (s *Server) query(ctx context.Context, scope []*scim.ResourceSchema, q *listQuery) (*order, error) {
	var e filter.Expr
	if strings.TrimSpace(q.filter) != "" {
		var err error
		if e, err = filter.Parse(q.filter); err != nil {
			return nil, err
		}
	}
	o := &order{}
	var firstErr error
	for _, rs := range scope {
		m, err := filter.Compile(e, rs)
		if err != nil {
			// A search over every resource type skips the types the filter does not fit.
			firstErr = cmpOr(firstErr, err)
			continue
		}
		run, err := s.match(ctx, rs, e, m, q.head)
		if err != nil {
			return nil, err
		}
		o.runs = append(o.runs, run)
	}
	if len(o.runs) == 0 {
		return nil, firstErr
	}
	if q.sortBy != "" {
		return o, s.sort(ctx, o, q)
	}
	return o, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// pageStart is the 0-based position of the page: startIndex-1, or where the cursor points.
func (s *Server) pageStart(o *order, q *listQuery, total int) (int, error) {
	if q.cursor == nil {
		return min(q.startIndex-1, total), nil
	}
	if *q.cursor == "" {
		return 0, nil
	}
	bad := errorf(http.StatusBadRequest, scimInvalidCursor, "the cursor is not one this server issued; start again with an empty cursor")
	raw, err := base64.RawURLEncoding.DecodeString(*q.cursor)
	if err != nil || len(raw) < 2 {
		return 0, bad
	}
	switch raw[0] {
	case 'o': // sorted results: an offset
		n, err := strconv.Atoi(string(raw[1:]))
		if err != nil || n < 0 || q.sortBy == "" {
			return 0, bad
		}
		return min(n, total), nil
	case 'k': // id order: the last id returned, so inserts and deletes never skip or repeat
		typ := scim.UserType
		if raw[1] == 'G' {
			typ = scim.GroupType
		} else if raw[1] != 'U' {
			return 0, bad
		}
		if q.sortBy != "" {
			return 0, bad
		}
		return min(o.after(item{typ, string(raw[2:])}), total), nil
	}
	return 0, bad
}

func (s *Server) nextCursor(o *order, q *listQuery, end int, last item) string {
	if q.sortBy != "" {
		return base64.RawURLEncoding.EncodeToString([]byte("o" + strconv.Itoa(end)))
	}
	tb := "U"
	if last.typ == scim.GroupType {
		tb = "G"
	}
	return base64.RawURLEncoding.EncodeToString([]byte("k" + tb + last.id))
}

// loadPage reads the page's resources (reusing those the filter already loaded), and the groups
// of its users when they are rendered. Resources deleted since matching are left out. Under the
// default projection, bodies is non-nil and holds the renderings the hot cache has; those users
// need no groups.
func (s *Server) loadPage(ctx context.Context, o *order, page []item, q *listQuery) (res []*scim.Resource,
	groups map[string][]groupRef, bodies map[string][]byte, projs map[scim.ResourceType]*projection, err error) {
	projs = map[scim.ResourceType]*projection{}
	byItem := make(map[item]*scim.Resource, len(page))
	if len(q.attributes) == 0 && len(q.excluded) == 0 {
		bodies = map[string][]byte{}
	}
	for _, rs := range []*scim.ResourceSchema{scim.UserResource, scim.GroupResource} {
		p := newProjection(rs, q.attributes, q.excluded)
		projs[rs.Type] = p
		var need []string
		for _, it := range page {
			if it.typ != rs.Type {
				continue
			}
			if bodies != nil && it.typ == scim.UserType {
				// A rendering and the slim copy are all respondList needs.
				if slim, body, _ := s.hot.get(q.head, it.id); body != nil {
					byItem[it], bodies[it.id] = slim, body
					continue
				}
			}
			if r := o.reuse(it); r != nil {
				byItem[it] = r
			} else {
				need = append(need, it.id)
			}
		}
		if len(need) == 0 {
			continue
		}
		// Groups without members: respondList streams them (stream.go).
		list, err := s.getMany(ctx, rs.Type, need, q.head)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		for _, r := range list {
			byItem[item{rs.Type, r.ID}] = r
		}
	}
	res = make([]*scim.Resource, 0, len(page))
	var users []string
	for _, it := range page {
		r := byItem[it]
		if r == nil {
			continue
		}
		res = append(res, r)
		if it.typ == scim.UserType && bodies[it.id] == nil {
			users = append(users, it.id)
		}
	}
	if len(users) > 0 && projs[scim.UserType].want(scim.SchemaUser, groupsAttr).ok {
		if groups, err = s.userGroups(ctx, users); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return res, groups, bodies, projs, nil
}

// reuse returns a resource the query already loaded.
func (o *order) reuse(it item) *scim.Resource {
	if r := o.loaded[it]; r != nil {
		return r
	}
	for _, run := range o.runs {
		if run.typ != it.typ || run.kept == nil {
			continue
		}
		i := sort.Search(len(run.kept), func(i int) bool { return run.kept[i].ID >= it.id })
		if i < len(run.kept) && run.kept[i].ID == it.id {
			return run.kept[i]
		}
	}
	return nil
}
