package scim

import (
	"errors"
	"fmt"
	"strings"
)

// This file holds the RFC 7643 attribute-definition model and the lookups the filter language,
// attribute projection and the /Schemas endpoint use. The definitions themselves are in
// schema_rfc7643.go.

// AttrType is an RFC 7643 §2.3 attribute data type.
type AttrType string

// The RFC 7643 §2.3 data types.
const (
	TypeString    AttrType = "string"
	TypeBoolean   AttrType = "boolean"
	TypeDecimal   AttrType = "decimal"
	TypeInteger   AttrType = "integer"
	TypeDateTime  AttrType = "dateTime"
	TypeReference AttrType = "reference"
	TypeComplex   AttrType = "complex"
	TypeBinary    AttrType = "binary"
)

// Mutability is an RFC 7643 §7 "mutability" value. The definitions keep the RFC's values so that
// they describe the SCIM model faithfully (push targets rely on them); ldapscim's own API is
// read-only as a whole and says so in ServiceProviderConfig.
type Mutability string

// The RFC 7643 §7 mutability values.
const (
	MutReadOnly  Mutability = "readOnly"
	MutReadWrite Mutability = "readWrite"
	MutImmutable Mutability = "immutable"
	MutWriteOnly Mutability = "writeOnly"
)

// Returned is an RFC 7643 §7 "returned" value.
type Returned string

// The RFC 7643 §7 returned values.
const (
	ReturnedAlways  Returned = "always"
	ReturnedNever   Returned = "never"
	ReturnedDefault Returned = "default"
	ReturnedRequest Returned = "request"
)

// Uniqueness is an RFC 7643 §7 "uniqueness" value.
type Uniqueness string

// The RFC 7643 §7 uniqueness values.
const (
	UniqueNone   Uniqueness = "none"
	UniqueServer Uniqueness = "server"
	UniqueGlobal Uniqueness = "global"
)

// Attribute is one RFC 7643 §7 attribute definition; it marshals to the §7 JSON shape.
// Definitions are shared, package-level data: callers must not modify them.
type Attribute struct {
	Name            string       `json:"name"`
	Type            AttrType     `json:"type"`
	MultiValued     bool         `json:"multiValued"`
	Description     string       `json:"description"`
	Required        bool         `json:"required"`
	CanonicalValues []string     `json:"canonicalValues,omitempty"`
	CaseExact       bool         `json:"caseExact"`
	Mutability      Mutability   `json:"mutability"`
	Returned        Returned     `json:"returned"`
	Uniqueness      Uniqueness   `json:"uniqueness"`
	ReferenceTypes  []string     `json:"referenceTypes,omitempty"` // for TypeReference: "User", "Group", "external", "uri"
	SubAttributes   []*Attribute `json:"subAttributes,omitempty"`  // for TypeComplex
}

// SubAttribute returns the sub-attribute called name (case-insensitive), or nil.
func (a *Attribute) SubAttribute(name string) *Attribute {
	return findAttr(a.SubAttributes, name)
}

// Schema is one RFC 7643 §7 schema: a URN and its top-level attributes.
//
// It marshals to the RFC 7643 §7 representation minus "schemas" and "meta", which the
// /Schemas endpoint adds (meta.location needs the base URL).
type Schema struct {
	ID          string       `json:"id"` // the schema URN
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Attributes  []*Attribute `json:"attributes"`
}

// ErrUnknownAttribute is wrapped by every lookup error: the path names no attribute (or no
// schema) that ldapscim serves.
var ErrUnknownAttribute = errors.New("unknown attribute")

// Attribute resolves path within s: "userName", "name.givenName", optionally qualified with s's
// URN ("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName"). Names are case-insensitive.
// It returns the sub-attribute's definition for a dotted path. Errors wrap ErrUnknownAttribute.
func (s *Schema) Attribute(path string) (*Attribute, error) {
	uri, name, sub := SplitPath(path)
	if uri != "" && !strings.EqualFold(uri, s.ID) {
		return nil, fmt.Errorf("%w: %q is not an attribute of schema %s", ErrUnknownAttribute, path, s.ID)
	}
	a := findAttr(s.Attributes, name)
	if a == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownAttribute, path)
	}
	if sub == "" {
		return a, nil
	}
	return subAttribute(a, sub)
}

// ResourceSchema describes one resource type (RFC 7643 §6): its endpoint, core schema and schema
// extensions. It is what the filter language validates and evaluates against.
type ResourceSchema struct {
	Type        ResourceType
	Endpoint    string // relative to the SCIM base URL, e.g. "/Users"
	Description string
	Schema      *Schema
	Extensions  []SchemaExtension
}

// SchemaExtension is an extension schema of a resource type.
type SchemaExtension struct {
	Schema   *Schema
	Required bool
}

// AttrRef is an attribute path resolved against a ResourceSchema.
type AttrRef struct {
	// URN is the schema the attribute lives in and so where to find its value in a Resource:
	// "" for the common attributes id, externalId, meta and schemas (Resource fields); the core
	// schema URN for Resource.Attributes[Attr.Name]; an extension URN for
	// Resource.Attributes[URN].(map[string]any)[Attr.Name]. A group's "members" is a core
	// attribute whose value is Resource.Members.
	URN  string
	Attr *Attribute // the top-level attribute
	Sub  *Attribute // the sub-attribute, or nil
}

// Def returns the definition the path ends at: the sub-attribute if any, else the attribute.
func (r AttrRef) Def() *Attribute {
	if r.Sub != nil {
		return r.Sub
	}
	return r.Attr
}

// String returns the canonical spelling of the path: RFC 7643's names, URN-qualified only for
// extension attributes.
func (r AttrRef) String() string {
	s := r.Attr.Name
	if r.Sub != nil {
		s += "." + r.Sub.Name
	}
	if r.URN != "" && !r.isCore() {
		s = r.URN + ":" + s
	}
	return s
}

func (r AttrRef) isCore() bool {
	return r.URN == SchemaUser || r.URN == SchemaGroup
}

// SchemaFor returns the schema of resource type t, or nil if ldapscim does not serve t.
func SchemaFor(t ResourceType) *ResourceSchema {
	switch t {
	case UserType:
		return UserResource
	case GroupType:
		return GroupResource
	}
	return nil
}

// Lookup resolves a path such as "userName", "name.givenName", "emails.value",
// "meta.lastModified", "urn:ietf:params:scim:schemas:core:2.0:User:userName" or
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".
// Errors wrap ErrUnknownAttribute.
func (rs *ResourceSchema) Lookup(path string) (AttrRef, error) {
	return rs.Resolve(SplitPath(path))
}

// Resolve is Lookup for a path already split by SplitPath. Names and URNs are case-insensitive.
//
// An unqualified name is looked up among the common attributes, then the core schema, then the
// extensions: RFC 7644 §3.10 lets clients omit the core URN; resolving unqualified extension names
// ("department") too is a leniency that cannot be ambiguous, because no extension attribute
// ldapscim serves shares a name with a core one.
func (rs *ResourceSchema) Resolve(uri, name, sub string) (AttrRef, error) {
	var ref AttrRef
	switch {
	case uri == "":
		ref = rs.resolveUnqualified(name)
	case strings.EqualFold(uri, rs.Schema.ID):
		ref = rs.resolveIn(rs.Schema, name, true)
	default:
		ext := rs.extension(uri)
		if ext == nil {
			return AttrRef{}, fmt.Errorf("%w: %s has no schema %q", ErrUnknownAttribute, rs.Type, uri)
		}
		ref = rs.resolveIn(ext, name, false)
	}
	if ref.Attr == nil {
		return AttrRef{}, fmt.Errorf("%w %q", ErrUnknownAttribute, joinPath(uri, name, ""))
	}
	if sub == "" {
		return ref, nil
	}
	s, err := subAttribute(ref.Attr, sub)
	if err != nil {
		return AttrRef{}, err
	}
	ref.Sub = s
	return ref, nil
}

func (rs *ResourceSchema) resolveUnqualified(name string) AttrRef {
	if ref := rs.resolveIn(rs.Schema, name, true); ref.Attr != nil {
		return ref
	}
	for _, e := range rs.Extensions {
		if a := findAttr(e.Schema.Attributes, name); a != nil {
			return AttrRef{URN: e.Schema.ID, Attr: a}
		}
	}
	return AttrRef{}
}

// resolveIn looks name up in s and, for the core schema, among the common attributes (which
// clients may qualify with the core URN, e.g. "urn:...:core:2.0:User:id").
func (rs *ResourceSchema) resolveIn(s *Schema, name string, core bool) AttrRef {
	if core {
		if a := findAttr(CommonAttributes, name); a != nil {
			return AttrRef{Attr: a}
		}
	}
	if a := findAttr(s.Attributes, name); a != nil {
		return AttrRef{URN: s.ID, Attr: a}
	}
	return AttrRef{}
}

func (rs *ResourceSchema) extension(uri string) *Schema {
	for _, e := range rs.Extensions {
		if strings.EqualFold(uri, e.Schema.ID) {
			return e.Schema
		}
	}
	return nil
}

// Schemas returns the core schema followed by the extension schemas.
func (rs *ResourceSchema) Schemas() []*Schema {
	out := []*Schema{rs.Schema}
	for _, e := range rs.Extensions {
		out = append(out, e.Schema)
	}
	return out
}

// SplitPath splits an attribute path into its schema URI, attribute name and sub-attribute name:
// "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName" → (core URN, "name", "givenName").
// The URI ends at the last colon (URNs contain dots, "2.0", so the dot split comes after). A
// path with more than one dot keeps the rest in sub, which no attribute matches.
func SplitPath(path string) (uri, name, sub string) {
	if i := strings.LastIndexByte(path, ':'); i >= 0 {
		uri, path = path[:i], path[i+1:]
	}
	name, sub, _ = strings.Cut(path, ".")
	return uri, name, sub
}

func joinPath(uri, name, sub string) string {
	s := name
	if sub != "" {
		s += "." + sub
	}
	if uri != "" {
		s = uri + ":" + s
	}
	return s
}

func subAttribute(a *Attribute, sub string) (*Attribute, error) {
	if a.Type != TypeComplex {
		return nil, fmt.Errorf("%w: %q has no sub-attributes (asked for %q)", ErrUnknownAttribute, a.Name, sub)
	}
	s := a.SubAttribute(sub)
	if s == nil {
		return nil, fmt.Errorf("%w: %q has no sub-attribute %q", ErrUnknownAttribute, a.Name, sub)
	}
	return s, nil
}

func findAttr(list []*Attribute, name string) *Attribute {
	for _, a := range list {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}
