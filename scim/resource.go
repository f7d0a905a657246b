// Package scim is the SCIM 2.0 model shared by every part of ldapscim: resource types, schema
// URNs, the normalized Resource that ldapsync produces and cache stores, and (in later files)
// schemas, attribute projection and the filter language in scim/filter.
//
// It knows nothing about LDAP or Badger.
package scim

import (
	"time"
)

// ResourceType names a SCIM resource type.
type ResourceType string

// The resource types ldapscim serves.
const (
	UserType  ResourceType = "User"
	GroupType ResourceType = "Group"
)

// Schema URNs from RFC 7643.
const (
	SchemaUser           = "urn:ietf:params:scim:schemas:core:2.0:User"
	SchemaEnterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	SchemaGroup          = "urn:ietf:params:scim:schemas:core:2.0:Group"
)

// Resource is one normalized SCIM resource as ldapsync produces it and cache stores it.
//
// Attributes holds the SCIM attributes in their JSON shape (string, bool, []any,
// map[string]any), keyed by attribute name as RFC 7643 spells it ("userName", "name",
// "emails", ...). Extension attributes live under their schema URN key, e.g.
// Attributes[SchemaEnterpriseUser] = map[string]any{"department": "Sales"}.
// id, externalId, meta and (for groups) members are fields, not attributes.
//
// A user's "groups" attribute is never stored: the cache derives it from group members.
type Resource struct {
	Type       ResourceType   `json:"type"`
	ID         string         `json:"id"`
	ExternalID string         `json:"externalId,omitempty"`
	DN         string         `json:"dn,omitempty"` // source DN as the directory spells it; never served
	Attributes map[string]any `json:"attributes,omitempty"`
	Members    []Member       `json:"members,omitempty"` // groups only, sorted by Value
	Meta       Meta           `json:"meta"`              // owned by the cache; ignored on apply
}

// Member is one group member: the member's id, its resource type and a display name.
type Member struct {
	Value   string       `json:"value"`
	Type    ResourceType `json:"type"`
	Display string       `json:"display,omitempty"`
}

// Meta is the cache-owned metadata of a resource (RFC 7643 §3.1).
type Meta struct {
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
	// Version is a strong content version, usable as an ETag value (without quotes).
	Version string `json:"version"`
}

// Active reports the resource's "active" attribute; a user without it is active.
func (r *Resource) Active() bool {
	v, ok := r.Attributes["active"].(bool)
	return !ok || v
}

// String returns the string attribute name, or "".
func (r *Resource) String(name string) string {
	s, _ := r.Attributes[name].(string)
	return s
}

// UserName returns the user's userName, or "".
func (r *Resource) UserName() string { return r.String("userName") }

// DisplayName returns displayName, or "".
func (r *Resource) DisplayName() string { return r.String("displayName") }

// Emails returns every emails[].value of a user.
func (r *Resource) Emails() []string {
	list, _ := r.Attributes["emails"].([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			if v, ok := m["value"].(string); ok && v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}
