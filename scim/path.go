package scim

import (
	"errors"
	"fmt"
	"strings"
)

// Path is an attribute a source's mapping writes: a key of [ldap.users.mapping] or
// [csv.mapping] such as userName, "name.givenName", 'emails[type eq "work"].value' or an
// enterprise extension attribute by its URN. ParsePath accepts the RFC 7643 attributes ldapscim
// stores, in any letter case, and Set writes values to them; both are shared by every source.
type Path struct {
	Raw    string // as configured
	Schema string // "" for core, or SchemaEnterpriseUser
	Attr   string // top-level attribute, canonical case
	Sub    string // sub-attribute, or ""
	Type   string // multi-valued targets: the type value
	Multi  bool   // a multi-valued complex attribute
}

// targets a mapping may write, per resource type: top-level attribute → allowed sub-attributes
// (nil: a simple attribute). Multi-valued attributes take the [type eq "x"].sub form.
var (
	userTargets = map[string][]string{
		"userName": nil, "externalId": nil, "displayName": nil, "nickName": nil, "profileUrl": nil,
		"title": nil, "userType": nil, "preferredLanguage": nil, "locale": nil, "timezone": nil, "active": nil,
		"name": {"formatted", "familyName", "givenName", "middleName", "honorificPrefix", "honorificSuffix"},
	}
	userMultiTargets = map[string][]string{
		"emails": {"value"}, "phoneNumbers": {"value"}, "ims": {"value"}, "photos": {"value"},
		"addresses":    {"formatted", "streetAddress", "locality", "region", "postalCode", "country"},
		"entitlements": {"value"}, "roles": {"value"}, "x509Certificates": {"value"},
	}
	enterpriseTargets = []string{"employeeNumber", "costCenter", "organization", "division", "department", "manager"}
	groupTargets      = map[string][]string{"displayName": nil, "externalId": nil}
)

// ParsePath parses and checks a mapping key for resources of typ.
func ParsePath(typ ResourceType, path string) (Path, error) {
	p := Path{Raw: path}
	bad := func(format string, a ...any) (Path, error) {
		return Path{}, fmt.Errorf("%q: %s", path, fmt.Sprintf(format, a...))
	}
	if strings.HasPrefix(strings.ToLower(path), "urn:") {
		i := strings.LastIndexByte(path, ':')
		urn, name := path[:i], path[i+1:]
		if typ != UserType {
			return bad("unknown schema %q (groups have no extension attributes)", urn)
		}
		if !strings.EqualFold(urn, SchemaEnterpriseUser) {
			return bad("unknown schema %q (only %s is supported)", urn, SchemaEnterpriseUser)
		}
		p.Schema = SchemaEnterpriseUser
		canon, ok := canonical(enterpriseTargets, name)
		if !ok {
			return bad("enterprise attribute %q is not one of %s", name, strings.Join(enterpriseTargets, ", "))
		}
		p.Attr = canon
		return p, nil
	}
	attr, typeVal, sub, err := splitPath(path)
	if err != nil {
		return bad("%v", err)
	}
	simple, multi := userTargets, userMultiTargets
	if typ == GroupType {
		simple, multi = groupTargets, nil
	}
	if subs, ok := lookupFold(simple, attr); ok && typeVal == "" {
		p.Attr = canonKey(simple, attr)
		if sub != "" {
			c, ok := canonical(subs, sub)
			if !ok {
				return bad("%s has no sub-attribute %q", p.Attr, sub)
			}
			p.Sub = c
		} else if subs != nil {
			return bad("%s is complex: map one of its sub-attributes (%s)", p.Attr, strings.Join(subs, ", "))
		}
		return p, nil
	}
	if subs, ok := lookupFold(multi, attr); ok {
		p.Attr, p.Multi = canonKey(multi, attr), true
		if typeVal == "" {
			return bad(`%s is multi-valued: use the form %s[type eq "work"].value`, p.Attr, p.Attr)
		}
		p.Type = typeVal
		if sub == "" {
			sub = "value"
		}
		c, ok := canonical(subs, sub)
		if !ok {
			return bad("%s has no sub-attribute %q", p.Attr, sub)
		}
		p.Sub = c
		return p, nil
	}
	return bad("is not an attribute ldapscim can map for a %s", typ)
}

// Set writes vals to the path's attribute of r: every non-empty value of a multi-valued
// attribute (appended, typed), else the first (a simple core attribute only when it is not
// empty). Booleans (active) and references (the enterprise manager) are the caller's to
// convert.
func (p Path) Set(r *Resource, vals ...string) {
	attrs := r.Attributes
	if len(vals) == 0 {
		return
	}
	switch {
	case p.Schema != "":
		ext, _ := attrs[p.Schema].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			attrs[p.Schema] = ext
		}
		ext[p.Attr] = vals[0]
	case p.Attr == "externalId":
		r.ExternalID = vals[0]
	case p.Multi:
		list, _ := attrs[p.Attr].([]any)
		for _, v := range vals {
			if v != "" {
				list = append(list, map[string]any{p.Sub: v, "type": p.Type})
			}
		}
		if len(list) > 0 {
			attrs[p.Attr] = list
		}
	case p.Sub != "":
		sub, _ := attrs[p.Attr].(map[string]any)
		if sub == nil {
			sub = map[string]any{}
			attrs[p.Attr] = sub
		}
		sub[p.Sub] = vals[0]
	default:
		if vals[0] != "" {
			attrs[p.Attr] = vals[0]
		}
	}
}

// Single reports whether the path names one value Get, Put and Unset can handle: a simple
// core attribute, a sub-attribute of name, or an enterprise extension attribute other than the
// manager (a complex reference).
func (p Path) Single() bool {
	return !p.Multi && !(p.Schema != "" && p.Attr == "manager")
}

// Get returns the value of a single-valued path in r (Single), and whether r has one.
func (p Path) Get(r *Resource) (any, bool) {
	if !p.Single() {
		return nil, false
	}
	switch {
	case p.Schema == "" && p.Attr == "externalId":
		return r.ExternalID, r.ExternalID != ""
	case p.Schema != "":
		ext, _ := r.Attributes[p.Schema].(map[string]any)
		v, ok := ext[p.Attr]
		return v, ok
	case p.Sub != "":
		sub, _ := r.Attributes[p.Attr].(map[string]any)
		v, ok := sub[p.Sub]
		return v, ok
	}
	v, ok := r.Attributes[p.Attr]
	return v, ok
}

// Put writes v as it is to a single-valued path of r (Single); other paths are left alone.
// externalId takes a string only.
func (p Path) Put(r *Resource, v any) {
	if !p.Single() {
		return
	}
	switch {
	case p.Schema == "" && p.Attr == "externalId":
		r.ExternalID, _ = v.(string)
	case p.Schema != "" || p.Sub != "":
		parent := p.Attr
		if p.Schema != "" {
			parent = p.Schema
		}
		m, _ := r.Attributes[parent].(map[string]any)
		if m == nil {
			m = map[string]any{}
			r.Attributes[parent] = m
		}
		if p.Schema != "" {
			m[p.Attr] = v
		} else {
			m[p.Sub] = v
		}
	default:
		r.Attributes[p.Attr] = v
	}
}

// Unset removes a single-valued path from r (Single), and the complex attribute or extension
// that holds it when it is left empty.
func (p Path) Unset(r *Resource) {
	if !p.Single() {
		return
	}
	parent, name := p.Attr, p.Sub
	switch {
	case p.Schema == "" && p.Attr == "externalId":
		r.ExternalID = ""
		return
	case p.Schema != "":
		parent, name = p.Schema, p.Attr
	case p.Sub == "":
		delete(r.Attributes, p.Attr)
		return
	}
	m, _ := r.Attributes[parent].(map[string]any)
	if m == nil {
		return
	}
	delete(m, name)
	if len(m) == 0 {
		delete(r.Attributes, parent)
	}
}

// MarkPrimaryEmail marks the first of r's emails primary, as a source does once every path is
// set.
func MarkPrimaryEmail(r *Resource) {
	if emails, ok := r.Attributes["emails"].([]any); ok && len(emails) > 0 {
		emails[0].(map[string]any)["primary"] = true
	}
}

// splitPath splits `emails[type eq "work"].value` into ("emails", "work", "value") and
// `name.givenName` into ("name", "", "givenName").
func splitPath(p string) (attr, typeVal, sub string, err error) {
	if i := strings.IndexByte(p, '['); i >= 0 {
		j := strings.IndexByte(p, ']')
		if j < i {
			return "", "", "", errors.New("unbalanced [")
		}
		attr = p[:i]
		cond := strings.Fields(p[i+1 : j])
		if len(cond) != 3 || !strings.EqualFold(cond[0], "type") || !strings.EqualFold(cond[1], "eq") {
			return "", "", "", fmt.Errorf(`only [type eq "x"] selects a value, not [%s]`, p[i+1:j])
		}
		typeVal = strings.Trim(cond[2], `"`)
		p = p[j+1:]
		if p != "" {
			if p[0] != '.' {
				return "", "", "", errors.New("expected .sub-attribute after ]")
			}
			sub = p[1:]
		}
		return attr, typeVal, sub, nil
	}
	attr, sub, _ = strings.Cut(p, ".")
	return attr, "", sub, nil
}

func lookupFold(m map[string][]string, k string) ([]string, bool) {
	for key, v := range m {
		if strings.EqualFold(key, k) {
			return v, true
		}
	}
	return nil, false
}

func canonKey(m map[string][]string, k string) string {
	for key := range m {
		if strings.EqualFold(key, k) {
			return key
		}
	}
	return k
}

func canonical(list []string, name string) (string, bool) {
	for _, s := range list {
		if strings.EqualFold(s, name) {
			return s, true
		}
	}
	return "", false
}
