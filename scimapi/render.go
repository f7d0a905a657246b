package scimapi

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/jsonappend"
	"github.com/ldapscim/ldapscim/scim"
)

// Rendering writes JSON by appending to a byte slice: a list page is the hot path, and
// encoding/json's reflection over map[string]any costs more than the rest of a request.

// etag is the strong entity tag of a resource version: meta.version and the ETag header.
func etag(r *scim.Resource) string { return `"` + r.Meta.Version + `"` }

// location is the absolute URL of a resource.
func (s *Server) location(typ scim.ResourceType, id string) string {
	if typ == scim.GroupType {
		return s.base + "/Groups/" + url.PathEscape(id)
	}
	return s.base + "/Users/" + url.PathEscape(id)
}

// appendResource renders r as its SCIM representation under projection p. groups are a user's
// groups (from the member index; never stored on the user). A group's members come from
// r.Members; the API streams them instead (stream.go), between appendHead and appendTail.
func (s *Server) appendResource(buf []byte, r *scim.Resource, groups []groupRef, p *projection) []byte {
	buf = s.appendHead(buf, r, groups, p)
	if r.Type == scim.GroupType {
		if sl := p.want(scim.SchemaGroup, membersAttr); sl.ok && len(r.Members) > 0 {
			buf = append(buf, `,"members":`...)
			buf = s.appendMembers(buf, r.Members, sl)
		}
	}
	return s.appendTail(buf, r, p)
}

// appendHead renders r up to where a group's "members" go: schemas, id, externalId, the core
// attributes and a user's groups.
func (s *Server) appendHead(buf []byte, r *scim.Resource, groups []groupRef, p *projection) []byte {
	rs := scim.SchemaFor(r.Type)
	buf = append(buf, `{"schemas":[`...)
	buf = jsonappend.String(buf, rs.Schema.ID)
	for _, e := range rs.Extensions {
		if m, _ := r.Attributes[e.Schema.ID].(map[string]any); len(m) > 0 {
			buf = append(buf, ',')
			buf = jsonappend.String(buf, e.Schema.ID)
		}
	}
	buf = append(buf, `],"id":`...)
	buf = jsonappend.String(buf, r.ID)
	if r.ExternalID != "" && p.wantsTop(rs, "externalId").ok {
		buf = append(buf, `,"externalId":`...)
		buf = jsonappend.String(buf, r.ExternalID)
	}
	buf = s.appendCore(buf, r, rs, p)
	if r.Type == scim.UserType {
		if sl := p.want(scim.SchemaUser, groupsAttr); sl.ok && len(groups) > 0 {
			buf = append(buf, `,"groups":`...)
			buf = s.appendRefs(buf, groups, sl)
		}
	}
	return buf
}

// appendTail renders what follows a group's "members": extensions, meta and the closing brace.
func (s *Server) appendTail(buf []byte, r *scim.Resource, p *projection) []byte {
	rs := scim.SchemaFor(r.Type)
	for _, e := range rs.Extensions {
		buf = s.appendExtension(buf, r, e.Schema, p)
	}
	if sl := p.want("", metaAttr); sl.ok {
		buf = s.appendMeta(buf, r, sl)
	}
	return append(buf, '}')
}

var (
	groupsAttr  = mustLookup(scim.UserResource, "groups")
	membersAttr = mustLookup(scim.GroupResource, "members")
	metaAttr    = mustLookup(scim.UserResource, "meta")
)

func mustLookup(rs *scim.ResourceSchema, name string) *scim.Attribute {
	ref, err := rs.Lookup(name)
	if err != nil {
		panic(err)
	}
	return ref.Attr
}

// appendCore renders the core schema's attributes, in name order.
func (s *Server) appendCore(buf []byte, r *scim.Resource, rs *scim.ResourceSchema, p *projection) []byte {
	var arr [24]string
	keys := arr[:0]
	for k, v := range r.Attributes {
		if v != nil && !strings.HasPrefix(k, "urn:") && k != "groups" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		a := schemaAttr(rs.Schema, k)
		if a == nil {
			continue
		}
		sl := p.want(rs.Schema.ID, a)
		if !sl.ok {
			continue
		}
		buf = append(buf, ',')
		buf = jsonappend.String(buf, k)
		buf = append(buf, ':')
		buf = appendFiltered(buf, r.Attributes[k], a, sl)
	}
	return buf
}

// appendExtension renders one extension schema's object, if it has anything to show.
func (s *Server) appendExtension(buf []byte, r *scim.Resource, schema *scim.Schema, p *projection) []byte {
	m, _ := r.Attributes[schema.ID].(map[string]any)
	if len(m) == 0 {
		return buf
	}
	var arr [8]string
	keys := arr[:0]
	for k, v := range m {
		if v != nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	start := len(buf)
	buf = append(buf, ',')
	buf = jsonappend.String(buf, schema.ID)
	buf = append(buf, ":{"...)
	n := 0
	for _, k := range keys {
		a := schemaAttr(schema, k)
		if a == nil {
			continue
		}
		sl := p.want(schema.ID, a)
		if !sl.ok {
			continue
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = jsonappend.String(buf, k)
		buf = append(buf, ':')
		if mgr, ok := m[k].(map[string]any); ok && a.Name == "manager" {
			buf = s.appendManager(buf, mgr, a, sl)
			continue
		}
		buf = appendFiltered(buf, m[k], a, sl)
	}
	if n == 0 {
		return buf[:start]
	}
	return append(buf, '}')
}

// appendManager renders the manager with a $ref to the manager's User resource.
func (s *Server) appendManager(buf []byte, m map[string]any, a *scim.Attribute, sl sel) []byte {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	if id, _ := m["value"].(string); id != "" {
		out["$ref"] = s.location(scim.UserType, id)
	}
	return appendFiltered(buf, out, a, sl)
}

// appendRefs renders a user's groups: value, display, $ref, type "direct" or "indirect".
func (s *Server) appendRefs(buf []byte, refs []groupRef, sl sel) []byte {
	buf = append(buf, '[')
	for i, g := range refs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = s.appendMemberObj(buf, g.ID, g.Type, g.Display, g.kind(), sl)
	}
	return append(buf, ']')
}

// appendMembers renders a group's members from the stored member list alone: no member
// resource is read, whatever the group's size.
func (s *Server) appendMembers(buf []byte, members []scim.Member, sl sel) []byte {
	buf = append(buf, '[')
	for i, m := range members {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = s.appendMemberObj(buf, m.Value, m.Type, m.Display, string(m.Type), sl)
	}
	return append(buf, ']')
}

func (s *Server) appendMemberObj(buf []byte, id string, typ scim.ResourceType, display, kind string, sl sel) []byte {
	buf = append(buf, '{')
	n := 0
	field := func(name, v string) {
		if v == "" || !sl.sub(name, nil) {
			return
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = jsonappend.String(buf, name)
		buf = append(buf, ':')
		buf = jsonappend.String(buf, v)
	}
	field("value", id)
	field("display", display)
	if typ != "" {
		field("$ref", s.location(typ, id))
	}
	field("type", kind)
	return append(buf, '}')
}

// notAfter returns t, or now when t is later. Replicas behind a load balancer store a
// lastModified up to twice [ha] max_lag ahead of the write (cache.Options.ReplicaLag), and a
// client may take the largest lastModified it saw as its next "gt": shown as it is, a time
// ahead of the clock would make that client skip the changes another replica applies before
// then. Shown as now, it is a time at which this replica had every change with an earlier
// lastModified; the filter still matches the stored value, so the resource comes again in
// the next pull until its time has passed (invariant 6, docs/architecture.md).
func notAfter(t, now time.Time) time.Time {
	if t.After(now) {
		return now
	}
	return t
}

// settled reports whether r's times are not ahead of the clock, so that its rendering stays
// true and the hot cache may keep it.
func settled(r *scim.Resource) bool {
	now := time.Now()
	return !r.Meta.LastModified.After(now) && !r.Meta.Created.After(now)
}

func (s *Server) appendMeta(buf []byte, r *scim.Resource, sl sel) []byte {
	buf = append(buf, `,"meta":{`...)
	n := 0
	field := func(name string, v []byte) {
		if !sl.sub(name, nil) {
			return
		}
		if n > 0 {
			buf = append(buf, ',')
		}
		n++
		buf = jsonappend.String(buf, name)
		buf = append(buf, ':')
		buf = append(buf, v...)
	}
	var tmp [96]byte
	now := time.Now()
	field("resourceType", jsonappend.String(tmp[:0], string(r.Type)))
	field("created", jsonappend.Time(tmp[:0], notAfter(r.Meta.Created, now)))
	field("lastModified", jsonappend.Time(tmp[:0], notAfter(r.Meta.LastModified, now)))
	field("location", jsonappend.String(tmp[:0], s.location(r.Type, r.ID)))
	field("version", jsonappend.String(tmp[:0], etag(r)))
	return append(buf, '}')
}

// appendFiltered renders an attribute value, keeping only the selected sub-attributes of
// complex values.
func appendFiltered(buf []byte, v any, a *scim.Attribute, sl sel) []byte {
	if sl.subs == nil || a.Type != scim.TypeComplex {
		return appendValue(buf, v)
	}
	switch x := v.(type) {
	case map[string]any:
		return appendValue(buf, filterMap(x, a, sl))
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				if f := filterMap(m, a, sl); len(f) > 0 {
					out = append(out, f)
				}
			}
		}
		return appendValue(buf, out)
	}
	return appendValue(buf, v)
}

func filterMap(m map[string]any, a *scim.Attribute, sl sel) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sl.sub(k, a.SubAttribute(k)) {
			out[k] = v
		}
	}
	return out
}

// appendValue appends a stored attribute value. The cache encoded every such value when it
// wrote it (jsonappend, the same encoder), so an error cannot happen here; if one did, the
// value is written as null rather than leaving the document broken.
func appendValue(buf []byte, v any) []byte {
	out, err := jsonappend.Value(buf, v)
	if err != nil {
		return append(buf, "null"...)
	}
	return out
}

// attrIndex finds top-level attribute definitions by their stored (RFC) spelling in O(1).
var attrIndex = func() map[*scim.Schema]map[string]*scim.Attribute {
	out := map[*scim.Schema]map[string]*scim.Attribute{}
	for _, rs := range []*scim.ResourceSchema{scim.UserResource, scim.GroupResource} {
		for _, sc := range rs.Schemas() {
			m := map[string]*scim.Attribute{}
			for _, a := range sc.Attributes {
				m[a.Name] = a
			}
			out[sc] = m
		}
	}
	return out
}()

func schemaAttr(sc *scim.Schema, name string) *scim.Attribute {
	if a := attrIndex[sc][name]; a != nil {
		return a
	}
	a, err := sc.Attribute(name)
	if err != nil || strings.Contains(name, ".") {
		return nil
	}
	return a
}

// memberFields is which sub-attributes of a group's members a selection renders, decided once
// per group rather than once per member.
type memberFields struct{ value, display, ref, typ bool }

func memberFieldsOf(sl sel) memberFields {
	return memberFields{value: sl.sub("value", nil), display: sl.sub("display", nil),
		ref: sl.sub("$ref", nil), typ: sl.sub("type", nil)}
}

// appendMemberBytes renders one streamed member exactly as appendMemberObj renders a stored
// one, without allocating.
func (s *Server) appendMemberBytes(buf []byte, m cache.MemberBytes, f memberFields) []byte {
	buf = append(buf, '{')
	n := len(buf)
	if f.value && len(m.ID) > 0 {
		buf = append(buf, `"value":`...)
		buf = jsonappend.StringBytes(buf, m.ID)
	}
	if f.display && len(m.Display) > 0 {
		if len(buf) > n {
			buf = append(buf, ',')
		}
		buf = append(buf, `"display":`...)
		buf = jsonappend.StringBytes(buf, m.Display)
	}
	if f.ref && m.Type != "" {
		if len(buf) > n {
			buf = append(buf, ',')
		}
		buf = append(buf, `"$ref":`...)
		buf = s.appendLocation(buf, m.Type, m.ID)
	}
	if f.typ && m.Type != "" {
		if len(buf) > n {
			buf = append(buf, ',')
		}
		buf = append(buf, `"type":`...)
		buf = jsonappend.String(buf, string(m.Type))
	}
	return append(buf, '}')
}

// appendLocation appends the JSON string of s.location(typ, id) without building it.
func (s *Server) appendLocation(buf []byte, typ scim.ResourceType, id []byte) []byte {
	for _, c := range id {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return jsonappend.String(buf, s.location(typ, string(id)))
		}
	}
	prefix := s.userLoc
	if typ == scim.GroupType {
		prefix = s.groupLoc
	}
	buf = append(buf, prefix...)
	buf = append(buf, id...)
	return append(buf, '"')
}

// locPrefix is the JSON string of the location of a resource of typ with an empty id, without
// its closing quote.
func (s *Server) locPrefix(typ scim.ResourceType) []byte {
	q := jsonappend.String(nil, s.location(typ, ""))
	return q[:len(q)-1]
}
