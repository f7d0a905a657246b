package scimapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/scim"
)

// list answers GET /Users and GET /Groups.
func (s *Server) list(rs *scim.ResourceSchema) gin.HandlerFunc {
	return func(c *gin.Context) {
		q, err := s.queryFromURL(c.Request.URL.Query())
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.respondList(c, []*scim.ResourceSchema{rs}, q)
	}
}

// search answers POST .search; rs nil is the root, over every resource type.
func (s *Server) search(rs *scim.ResourceSchema) gin.HandlerFunc {
	scope := []*scim.ResourceSchema{rs}
	if rs == nil {
		scope = []*scim.ResourceSchema{scim.UserResource, scim.GroupResource}
	}
	return func(c *gin.Context) {
		q, err := s.queryFromBody(c)
		if err != nil {
			s.writeError(c, err)
			return
		}
		s.respondList(c, scope, q)
	}
}

// get answers GET /Users/{id} and /Groups/{id}, with ETag, If-None-Match (304) and If-Match
// (412).
func (s *Server) get(rs *scim.ResourceSchema) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx := c.Request.Context()
		id := c.Param("id")
		v := c.Request.URL.Query()
		attrs, excluded := splitList(v.Get("attributes")), splitList(v.Get("excludedAttributes"))
		p := newProjection(rs, attrs, excluded)
		if rs.Type == scim.GroupType && p.want(scim.SchemaGroup, membersAttr).ok {
			s.getGroupStreaming(c, id, p)
			return
		}
		head, err := s.store.JournalHead(ctx)
		if err != nil {
			s.writeError(c, err)
			return
		}
		// A user under the default projection may be rendered already (hot.go).
		cacheable := rs.Type == scim.UserType && len(attrs) == 0 && len(excluded) == 0
		if cacheable {
			if slim, body, _ := s.hot.get(head, id); body != nil {
				if err := s.conditional(c, slim); err != nil {
					if err != errNotModified {
						s.writeError(c, err)
					}
					return
				}
				c.Data(http.StatusOK, contentType, body)
				return
			}
		}
		list, err := s.getMany(ctx, rs.Type, []string{id}, head)
		if err != nil {
			s.writeError(c, err)
			return
		}
		if len(list) == 0 {
			s.writeError(c, errNotFound(string(rs.Type), id))
			return
		}
		r := list[0]
		if err := s.conditional(c, r); err != nil {
			if err != errNotModified {
				s.writeError(c, err)
			}
			return
		}
		var groups []groupRef
		if rs.Type == scim.UserType && p.want(scim.SchemaUser, groupsAttr).ok {
			m, err := s.userGroups(ctx, []string{id})
			if err != nil {
				s.writeError(c, err)
				return
			}
			groups = m[id]
		}
		cacheable = cacheable && settled(r)
		body := s.appendResource(make([]byte, 0, 2048), r, groups, p)
		if cacheable {
			s.hot.setBody(head, id, body)
		}
		c.Data(http.StatusOK, contentType, body)
	}
}

// errNotModified stops a GET that answered 304.
var errNotModified = errors.New("not modified")

// conditional sets ETag and Location of r and evaluates If-Match (412, an *Error) and
// If-None-Match (304 written, errNotModified).
//
// A body cut down by attributes or excludedAttributes is another representation of the same
// version, so its ETag is weak (RFC 9110 §8.8.1): a cache must not take it for the whole
// resource. If-Match still compares the version itself.
func (s *Server) conditional(c *gin.Context, r *scim.Resource) error {
	tag := etag(r)
	if q := c.Request.URL.Query(); q.Has("attributes") || q.Has("excludedAttributes") {
		c.Header("ETag", "W/"+tag)
	} else {
		c.Header("ETag", tag)
	}
	if im := c.GetHeader("If-Match"); im != "" && !etagMatch(im, tag, false) {
		return errorf(http.StatusPreconditionFailed, "", "the resource's version is %s", tag)
	}
	if inm := c.GetHeader("If-None-Match"); inm != "" && etagMatch(inm, tag, true) {
		c.Status(http.StatusNotModified)
		return errNotModified
	}
	c.Header("Location", s.location(r.Type, r.ID))
	return nil
}

// getGroupStreaming answers GET /Groups/{id} with the group's members, streamed (stream.go):
// the version, and so the ETag and the conditional headers, come from the same snapshot as the
// members, before any of them is read.
func (s *Server) getGroupStreaming(c *gin.Context, id string, p *projection) {
	o := newStream(c, 4096)
	err := s.streamGroup(c.Request.Context(), o, id, nil, p, func(g *scim.Resource) error { return s.conditional(c, g) })
	switch {
	case err == errNotModified:
	case errors.Is(err, errGone):
		s.writeError(c, errNotFound(string(scim.GroupType), id))
	case err != nil:
		s.fail(o, err)
	default:
		s.finish(o)
	}
}

// etagMatch evaluates an If-Match (strong comparison) or If-None-Match (weak comparison) list
// against tag (RFC 9110 §13.1).
func etagMatch(header, tag string, weak bool) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" {
			return true
		}
		if weak {
			t = strings.TrimPrefix(t, "W/")
		}
		if t == tag {
			return true
		}
	}
	return false
}
