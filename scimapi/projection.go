package scimapi

import (
	"strings"

	"github.com/ldapscim/ldapscim/scim"
)

// projection is RFC 7644 §3.9's attributes / excludedAttributes, resolved against a resource
// type's schema. id and schemas (returned "always") survive both; returned "never" and
// "request" attributes follow the RFC. Unknown names are ignored, as most servers do, so a
// client asking for an attribute ldapscim does not serve gets the rest.
type projection struct {
	mode  projMode
	attrs map[string]map[string]bool // attrKey → nil (whole attribute) or lower-cased sub names
	exts  map[string]bool            // lower-cased extension URN named as a whole
}

type projMode uint8

const (
	projDefault projMode = iota
	projInclude
	projExclude
)

func newProjection(rs *scim.ResourceSchema, attributes, excluded []string) *projection {
	p := &projection{}
	list := attributes
	switch {
	case len(attributes) > 0:
		p.mode = projInclude
	case len(excluded) > 0:
		p.mode, list = projExclude, excluded
	default:
		return p
	}
	p.attrs = map[string]map[string]bool{}
	p.exts = map[string]bool{}
	for _, path := range list {
		p.add(rs, path)
	}
	return p
}

func (p *projection) add(rs *scim.ResourceSchema, path string) {
	for _, e := range rs.Extensions {
		if strings.EqualFold(path, e.Schema.ID) {
			p.exts[strings.ToLower(e.Schema.ID)] = true
			return
		}
	}
	ref, err := rs.Lookup(path)
	if err != nil {
		return
	}
	k := attrKey(ref.URN, ref.Attr.Name)
	subs, seen := p.attrs[k]
	switch {
	case ref.Sub == nil:
		p.attrs[k] = nil
	case seen && subs == nil:
	default:
		if subs == nil {
			subs = map[string]bool{}
			p.attrs[k] = subs
		}
		subs[strings.ToLower(ref.Sub.Name)] = true
	}
}

// attrKey names a top-level attribute: its lower-cased name for common and core attributes,
// "urn:name" lower-cased for extension attributes.
func attrKey(urn, name string) string {
	if urn == "" || urn == scim.SchemaUser || urn == scim.SchemaGroup {
		return strings.ToLower(name)
	}
	return strings.ToLower(urn) + ":" + strings.ToLower(name)
}

// sel is the decision for one top-level attribute: render it or not, and which sub-attributes.
type sel struct {
	ok      bool
	subs    map[string]bool // nil: every sub-attribute
	include bool            // subs lists what to keep (else what to drop)
}

var selAll = sel{ok: true}

// want decides about attribute a of schema urn.
func (p *projection) want(urn string, a *scim.Attribute) sel {
	if a.Returned == scim.ReturnedAlways {
		return selAll
	}
	if a.Returned == scim.ReturnedNever {
		return sel{}
	}
	ext := urn != "" && urn != scim.SchemaUser && urn != scim.SchemaGroup
	switch p.mode {
	case projInclude:
		if ext && p.exts[strings.ToLower(urn)] {
			return selAll
		}
		subs, ok := p.attrs[attrKey(urn, a.Name)]
		return sel{ok: ok, subs: subs, include: true}
	case projExclude:
		if ext && p.exts[strings.ToLower(urn)] {
			return sel{}
		}
		subs, ok := p.attrs[attrKey(urn, a.Name)]
		if ok && subs == nil {
			return sel{}
		}
		return sel{ok: true, subs: subs}
	}
	return sel{ok: a.Returned != scim.ReturnedRequest}
}

// sub reports whether sub-attribute d (named as stored) is rendered.
func (s sel) sub(name string, d *scim.Attribute) bool {
	if s.subs == nil {
		return true
	}
	if d != nil && d.Returned == scim.ReturnedAlways {
		return true
	}
	return s.subs[strings.ToLower(name)] == s.include
}

// wantsTop is want for a core or common attribute named by its RFC spelling.
func (p *projection) wantsTop(rs *scim.ResourceSchema, name string) sel {
	ref, err := rs.Lookup(name)
	if err != nil {
		return sel{}
	}
	return p.want(ref.URN, ref.Attr)
}
