package filter

import (
	"strconv"
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// Matcher is a filter compiled against a resource type's schema: attribute paths resolved,
// operands converted to the attributes' types. It is immutable and safe for concurrent use;
// compile once per request and call Match for every candidate.
type Matcher struct {
	root node // nil: no filter, everything matches
}

// Compile validates e against rs (see Validate for the rules) and compiles it. A nil e compiles
// to a Matcher that matches every resource. Errors are *Error.
func Compile(e Expr, rs *scim.ResourceSchema) (*Matcher, error) {
	if e == nil {
		return &Matcher{}, nil
	}
	c := compiler{rs: rs}
	n, err := c.compile(e, nil)
	if err != nil {
		return nil, err
	}
	return &Matcher{root: n}, nil
}

// Match reports whether r satisfies the filter. It never fails: a filter that compiled can be
// evaluated against any resource, and an attribute r lacks simply does not match.
func (m *Matcher) Match(r *scim.Resource) bool {
	return m.root == nil || m.root.match(newEval(r), nil)
}

// Match is Compile followed by Matcher.Match, for a single resource. The error is about the
// filter (an *Error), never about r; "no match" is (false, nil).
func Match(e Expr, r *scim.Resource, rs *scim.ResourceSchema) (bool, error) {
	m, err := Compile(e, rs)
	if err != nil {
		return false, err
	}
	return m.Match(r), nil
}

type compiler struct {
	rs *scim.ResourceSchema
}

// compile turns e into a node. elem is the complex attribute whose elements the expression is
// evaluated on, inside a value path, or nil at top level.
func (c *compiler) compile(e Expr, elem *scim.AttrRef) (node, error) {
	switch e := e.(type) {
	case *Logical:
		terms := make([]node, len(e.Terms))
		for i, t := range e.Terms {
			n, err := c.compile(t, elem)
			if err != nil {
				return nil, err
			}
			terms[i] = n
		}
		if e.Op == Or {
			return orNode(terms), nil
		}
		return andNode(terms), nil
	case *Not:
		x, err := c.compile(e.X, elem)
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case *Compare:
		return c.compare(e, elem)
	case *ValuePath:
		return c.valuePath(e, elem)
	}
	return nil, errorf(0, "unsupported expression") // only a hand-built Expr of a foreign type
}

func (c *compiler) compare(e *Compare, elem *scim.AttrRef) (node, error) {
	ref, err := resolve(c.rs, e.Attr, elem)
	if err != nil {
		return nil, err
	}
	// RFC 7644 §3.4.2.2 compares `emails co "example.com"`: a multi-valued complex attribute
	// without a sub-attribute stands for its "value".
	if ref.Sub == nil && ref.Attr.Type == scim.TypeComplex && e.Op != OpPr {
		ref.Sub = ref.Attr.SubAttribute("value")
		if ref.Sub == nil {
			return nil, checkCompare(e, ref) // explains that a complex attribute needs a sub-attribute
		}
	}
	if err := checkCompare(e, ref); err != nil {
		return nil, err
	}
	return newCmpNode(e, ref.Def(), c.getter(ref, elem != nil)), nil
}

func (c *compiler) valuePath(e *ValuePath, elem *scim.AttrRef) (node, error) {
	if elem != nil {
		return nil, errorf(e.Pos(), "complex value filters cannot be nested")
	}
	ref, err := resolve(c.rs, e.Attr, nil)
	if err != nil {
		return nil, err
	}
	if ref.Sub != nil || ref.Attr.Type != scim.TypeComplex {
		return nil, errorf(e.Attr.Pos, strconv.Quote(e.Attr.String())+" is not a complex attribute; "+
			"[...] filters the elements of one, as in emails[type eq \"work\"]")
	}
	f, err := c.compile(e.Filter, &ref)
	if err != nil {
		return nil, err
	}
	if e.Then != nil {
		then, err := c.compile(e.Then, &ref)
		if err != nil {
			return nil, err
		}
		f = andNode{f, then}
	}
	return &valuePathNode{elems: c.getter(ref, false), filter: f}, nil
}

// newCmpNode converts the operand to def's type; checkCompare has vetted it.
func newCmpNode(e *Compare, def *scim.Attribute, get getter) *cmpNode {
	n := &cmpNode{get: get, op: e.Op, typ: def.Type, exact: def.CaseExact || def.Type == scim.TypeBinary}
	v := e.Value
	switch {
	case e.Op == OpPr:
	case v.Kind == KindNull:
		n.null = true
	case def.Type == scim.TypeBoolean:
		n.b, _ = boolValue(v)
	case def.Type == scim.TypeInteger || def.Type == scim.TypeDecimal:
		n.num, _ = numValue(v)
	case def.Type == scim.TypeDateTime:
		n.t, _ = timeValue(v)
	default:
		n.s = v.Text
		if !n.exact {
			n.s = strings.ToLower(n.s)
		}
	}
	return n
}

// getter appends the values at a resolved path to buf: one per element for multi-valued
// attributes, nothing when absent. In an element scope (inside a value path) it reads the
// sub-attribute ref.Sub of the current element instead of the resource.
type getter func(r *scim.Resource, elem any, buf []any) []any

func (c *compiler) getter(ref scim.AttrRef, inElem bool) getter {
	sub := ""
	if ref.Sub != nil {
		sub = ref.Sub.Name
	}
	switch {
	case inElem:
		return func(_ *scim.Resource, elem any, buf []any) []any { return appendField(buf, elem, sub) }
	case ref.URN == "":
		return c.commonGetter(ref.Attr.Name, sub)
	case ref.URN == scim.SchemaGroup && ref.Attr.Name == "members":
		return func(r *scim.Resource, _ any, buf []any) []any {
			for i := range r.Members {
				buf = appendField(buf, &r.Members[i], sub)
			}
			return buf
		}
	case ref.URN == c.rs.Schema.ID:
		name := ref.Attr.Name
		return func(r *scim.Resource, _ any, buf []any) []any {
			return appendValues(buf, r.Attributes[name], sub)
		}
	}
	urn, name := ref.URN, ref.Attr.Name
	return func(r *scim.Resource, _ any, buf []any) []any {
		ext, _ := r.Attributes[urn].(map[string]any)
		return appendValues(buf, ext[name], sub)
	}
}

// commonGetter reads the common attributes, which are Resource fields. meta.location depends on
// the base URL, which only scimapi knows: it is absent here.
func (c *compiler) commonGetter(name, sub string) getter {
	rs := c.rs
	switch name + "." + sub {
	case "id.":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendString(buf, r.ID) }
	case "externalId.":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendString(buf, r.ExternalID) }
	case "schemas.":
		return func(r *scim.Resource, _ any, buf []any) []any {
			buf = append(buf, rs.Schema.ID)
			for _, e := range rs.Extensions {
				if !isEmpty(r.Attributes[e.Schema.ID]) {
					buf = append(buf, e.Schema.ID)
				}
			}
			return buf
		}
	case "meta.":
		// Only `meta pr` and `meta[...]` get here: build the complex value.
		return func(r *scim.Resource, _ any, buf []any) []any { return append(buf, metaValue(r)) }
	case "meta.resourceType":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendString(buf, string(r.Type)) }
	case "meta.created":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendTime(buf, r.Meta.Created) }
	case "meta.lastModified":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendTime(buf, r.Meta.LastModified) }
	case "meta.version":
		return func(r *scim.Resource, _ any, buf []any) []any { return appendString(buf, r.Meta.Version) }
	}
	return func(*scim.Resource, any, []any) []any { return nil }
}

func metaValue(r *scim.Resource) map[string]any {
	m := make(map[string]any, 4)
	for _, f := range [...]struct {
		name string
		v    any
	}{{"resourceType", string(r.Type)}, {"created", r.Meta.Created}, {"lastModified", r.Meta.LastModified},
		{"version", r.Meta.Version}} {
		if !isEmpty(f.v) {
			m[f.name] = f.v
		}
	}
	return m
}

func appendString(buf []any, s string) []any {
	if s == "" {
		return buf
	}
	return append(buf, s)
}

func appendTime(buf []any, t time.Time) []any {
	if t.IsZero() {
		return buf
	}
	return append(buf, t)
}

// appendValues appends v — or, when sub is set, v's sub-attribute sub — flattening multi-valued
// attributes. Attribute values are in their JSON shape; the slice types ldapsync might build
// besides []any are accepted too.
func appendValues(buf []any, v any, sub string) []any {
	switch v := v.(type) {
	case nil:
	case []any:
		for _, x := range v {
			buf = appendField(buf, x, sub)
		}
	case []map[string]any:
		for _, x := range v {
			buf = appendField(buf, x, sub)
		}
	case []string:
		if sub == "" {
			for _, x := range v {
				buf = append(buf, x)
			}
		}
	default:
		buf = appendField(buf, v, sub)
	}
	return buf
}

// appendField appends x itself (sub == "") or x's sub-attribute sub, if x is a complex value.
func appendField(buf []any, x any, sub string) []any {
	if x == nil {
		return buf
	}
	if sub == "" {
		return append(buf, x)
	}
	switch x := x.(type) {
	case map[string]any:
		if y, ok := x[sub]; ok && y != nil {
			buf = append(buf, y)
		}
	case *scim.Member:
		switch sub {
		case "value":
			buf = appendString(buf, x.Value)
		case "type":
			buf = appendString(buf, string(x.Type))
		case "display":
			buf = appendString(buf, x.Display)
		}
	}
	return buf
}
