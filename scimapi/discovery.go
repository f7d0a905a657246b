package scimapi

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/ldapscim/ldapscim/scim"
)

// The discovery endpoints (RFC 7644 §4): what the API supports, truthfully.

type obj = map[string]any

func (s *Server) writeJSON(c *gin.Context, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.Data(http.StatusOK, contentType, b)
}

func (s *Server) serviceProviderConfig(c *gin.Context) {
	s.writeJSON(c, obj{
		"schemas":          []string{scim.SchemaServiceProviderConfig},
		"documentationUri": "https://github.com/ldapscim/ldapscim#scim-api",
		"patch":            obj{"supported": false},
		"bulk":             obj{"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
		"filter":           obj{"supported": true, "maxResults": s.cfg.MaxResults},
		"changePassword":   obj{"supported": false},
		"sort":             obj{"supported": true},
		"etag":             obj{"supported": true},
		// RFC 9865.
		"pagination": obj{"cursor": true, "index": true, "defaultPaginationMethod": "index",
			"defaultPageSize": s.cfg.MaxResults, "maxPageSize": s.cfg.MaxResults},
		"authenticationSchemes": []obj{{"type": "oauthbearertoken", "name": "Bearer token",
			"description": "Authorization: Bearer <token>; tokens are configured as [[scim.tokens]] (SHA-256 hashes)",
			"primary":     true}},
		"meta": obj{"resourceType": "ServiceProviderConfig", "location": s.base + "/ServiceProviderConfig"},
	})
}

func (s *Server) resourceTypeObj(rs *scim.ResourceSchema) obj {
	exts := []obj{}
	for _, e := range rs.Extensions {
		exts = append(exts, obj{"schema": e.Schema.ID, "required": e.Required})
	}
	return obj{
		"schemas":          []string{scim.SchemaResourceType},
		"id":               string(rs.Type),
		"name":             string(rs.Type),
		"endpoint":         rs.Endpoint,
		"description":      rs.Description,
		"schema":           rs.Schema.ID,
		"schemaExtensions": exts,
		"meta":             obj{"resourceType": "ResourceType", "location": s.base + "/ResourceTypes/" + string(rs.Type)},
	}
}

var resourceSchemas = []*scim.ResourceSchema{scim.UserResource, scim.GroupResource}

func (s *Server) resourceTypes(c *gin.Context) {
	var list []any
	for _, rs := range resourceSchemas {
		list = append(list, s.resourceTypeObj(rs))
	}
	s.writeJSON(c, listResponse(list))
}

func (s *Server) resourceType(c *gin.Context) {
	for _, rs := range resourceSchemas {
		if strings.EqualFold(c.Param("name"), string(rs.Type)) {
			s.writeJSON(c, s.resourceTypeObj(rs))
			return
		}
	}
	s.writeError(c, errNotFound("ResourceType", c.Param("name")))
}

func (s *Server) schemaObj(sc *scim.Schema) obj {
	return obj{
		"schemas":     []string{scim.SchemaSchema},
		"id":          sc.ID,
		"name":        sc.Name,
		"description": sc.Description,
		"attributes":  sc.Attributes,
		"meta":        obj{"resourceType": "Schema", "location": s.base + "/Schemas/" + sc.ID},
	}
}

func allSchemas() []*scim.Schema {
	var out []*scim.Schema
	for _, rs := range resourceSchemas {
		out = append(out, rs.Schemas()...)
	}
	return out
}

func (s *Server) schemas(c *gin.Context) {
	var list []any
	for _, sc := range allSchemas() {
		list = append(list, s.schemaObj(sc))
	}
	s.writeJSON(c, listResponse(list))
}

func (s *Server) schema(c *gin.Context) {
	for _, sc := range allSchemas() {
		if strings.EqualFold(c.Param("urn"), sc.ID) {
			s.writeJSON(c, s.schemaObj(sc))
			return
		}
	}
	s.writeError(c, errNotFound("Schema", c.Param("urn")))
}

func listResponse(list []any) obj {
	return obj{"schemas": []string{schemaListResponse}, "totalResults": len(list),
		"itemsPerPage": len(list), "startIndex": 1, "Resources": list}
}
