package scimapi

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/scim"
)

// Prefix is where the API lives; [scim] base_url names the same place as clients reach it.
const Prefix = "/scim/v2"

// routes is the whole URL space of the API: the SCIM 2.0 endpoints under /scim/v2 (RFC 7644 §3).
func (s *Server) routes(r *gin.Engine) {
	r.Use(s.observe, s.recovery, withRequestID, s.limits)
	r.NoRoute(s.notFound)

	v2 := r.Group(Prefix, s.authenticate)
	users, groups := scim.UserResource, scim.GroupResource

	// Every GET answers HEAD too (net/http sends no body for HEAD).
	get := func(path string, h gin.HandlerFunc) {
		v2.GET(path, h)
		v2.HEAD(path, h)
	}
	get("/Users", s.list(users))
	get("/Users/:id", s.get(users))
	v2.POST("/Users/.search", s.search(users))
	get("/Groups", s.list(groups))
	get("/Groups/:id", s.get(groups))
	v2.POST("/Groups/.search", s.search(groups))
	v2.POST("/.search", s.search(nil))

	get("/ServiceProviderConfig", s.serviceProviderConfig)
	get("/ResourceTypes", s.resourceTypes)
	get("/ResourceTypes/:name", s.resourceType)
	get("/Schemas", s.schemas)
	get("/Schemas/:urn", s.schema)
	// RFC 7644 §3.11: /Me needs an authenticated subject that is a resource; tokens here are
	// clients, not users.
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
		v2.Handle(m, "/Me", s.noMe)
	}

	// ldapscim is read-only: the directory is the source of truth.
	for _, p := range []string{"/Users", "/Groups", "/Bulk"} {
		v2.POST(p, s.notImplemented)
	}
	for _, p := range []string{"/Users/:id", "/Groups/:id"} {
		v2.PUT(p, s.notImplemented)
		v2.PATCH(p, s.notImplemented)
		v2.DELETE(p, s.notImplemented)
	}
}

func (s *Server) notImplemented(c *gin.Context) {
	s.writeError(c, errorf(http.StatusNotImplemented, "", "ldapscim is read-only: change the directory instead"))
}

func (s *Server) noMe(c *gin.Context) {
	s.writeError(c, errorf(http.StatusNotImplemented, "", "/Me is not supported: a bearer token names a client, not a user"))
}

// endpoints are the endpoint names under Prefix by their lower case: clients send them in any
// case (Microsoft's SCIM validator asks for /scim/v2/users), RFC 7644 names them in one.
var endpoints = map[string]string{"users": "Users", "groups": "Groups", "serviceproviderconfig": "ServiceProviderConfig",
	"resourcetypes": "ResourceTypes", "schemas": "Schemas", "me": "Me", "bulk": "Bulk", ".search": ".search"}

// canonicalPath spells the endpoint name of path as the routes do; other paths stay as they are.
func canonicalPath(path string) string {
	rest, ok := strings.CutPrefix(path, Prefix+"/")
	if !ok {
		return path
	}
	seg, tail, slash := strings.Cut(rest, "/")
	canon, known := endpoints[strings.ToLower(seg)]
	if !known || canon == seg {
		return path
	}
	if slash {
		return Prefix + "/" + canon + "/" + tail
	}
	return Prefix + "/" + canon
}

func (s *Server) notFound(c *gin.Context) {
	s.writeError(c, errorf(http.StatusNotFound, "", "no such endpoint"))
}
