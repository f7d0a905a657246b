package scimapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/scim"
)

// Prefix is where the API lives; [scim] base_url names the same place as clients reach it.
const Prefix = "/scim/v2"

// routes is the whole URL space of the API (DESIGN.md "SCIM API under /scim/v2").
func (s *Server) routes(r *gin.Engine) {
	r.Use(s.observe, s.recovery, withRequestID, s.limits)
	r.NoRoute(s.notFound)

	v2 := r.Group(Prefix, s.authenticate)
	users, groups := scim.UserResource, scim.GroupResource

	v2.GET("/Users", s.list(users))
	v2.GET("/Users/:id", s.get(users))
	v2.POST("/Users/.search", s.search(users))
	v2.GET("/Groups", s.list(groups))
	v2.GET("/Groups/:id", s.get(groups))
	v2.POST("/Groups/.search", s.search(groups))
	v2.POST("/.search", s.search(nil))

	v2.GET("/ServiceProviderConfig", s.serviceProviderConfig)
	v2.GET("/ResourceTypes", s.resourceTypes)
	v2.GET("/ResourceTypes/:name", s.resourceType)
	v2.GET("/Schemas", s.schemas)
	v2.GET("/Schemas/:urn", s.schema)

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

func (s *Server) notFound(c *gin.Context) {
	s.writeError(c, errorf(http.StatusNotFound, "", "no such endpoint"))
}
