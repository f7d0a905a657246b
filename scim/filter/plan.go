package filter

import (
	"strings"
	"time"

	"github.com/ldapscim/ldapscim/scim"
)

// QueryPlan says how to find the candidates for a filter with the cache's indexes. It is only
// an optimization: Access must yield a superset of the matching resources, and every candidate
// is re-checked against Residual, which is always the whole original filter. A plan can therefore
// make a query faster but never change its answer.
type QueryPlan struct {
	Access   Access
	Residual Expr
}

func (p QueryPlan) String() string { return p.Access.String() }

// Access is a node of an access path: Index, Intersect, Union or Scan. An executor that has no
// index for an Index node treats it as Scan.
type Access interface {
	String() string
	access()
}

// Index selects the resources whose attribute Attr satisfies Op Value: Op is OpEq, or OpGt /
// OpGe for "meta.lastModified" (then Time holds the parsed Value). Attr is the canonical path:
// "id", "userName", "externalId", "emails.value", "displayName", "members.value",
// "manager.value" (the enterprise extension's) or "meta.lastModified". CaseExact false means the index must fold case, as the filter does.
type Index struct {
	Attr      string
	Op        Op
	Value     string
	Time      time.Time
	CaseExact bool
}

// Intersect selects the resources every child selects (from "and").
type Intersect []Access

// Union selects the resources any child selects (from "or").
type Union []Access

// Scan selects every resource of the type.
type Scan struct{}

func (Index) access()     {}
func (Intersect) access() {}
func (Union) access()     {}
func (Scan) access()      {}

func (i Index) String() string {
	var b strings.Builder
	b.WriteString("index(")
	b.WriteString(i.Attr)
	b.WriteByte(' ')
	b.WriteString(i.Op.String())
	b.WriteByte(' ')
	quote(&b, i.Value)
	b.WriteByte(')')
	return b.String()
}

func (s Intersect) String() string { return "intersect" + listString(s) }
func (u Union) String() string     { return "union" + listString(u) }
func (Scan) String() string        { return "scan" }

func listString(list []Access) string {
	parts := make([]string, len(list))
	for i, a := range list {
		parts[i] = a.String()
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// indexed are the conditions Plan turns into Index nodes. Names match case-insensitively;
// implied is the sub-attribute a bare name stands for (`emails eq "x"` is emails.value).
var indexed = []struct {
	name, sub string
	implied   bool
	caseExact bool
	time      bool // meta.lastModified: gt and ge rather than eq
}{
	{name: "id", caseExact: true},
	{name: "userName"},
	{name: "externalId", caseExact: true},
	{name: "displayName"},
	{name: "emails", sub: "value", implied: true},
	{name: "members", sub: "value", implied: true, caseExact: true},
	{name: "meta", sub: "lastModified", time: true},
}

// Plan chooses an access path for e: indexable conditions (see Index) at the top level, "and"
// as Intersect (conditions that are not indexable are dropped: the residual filter checks them),
// "or" as Union (if any branch needs a scan, the whole "or" does). A value path is planned on its
// element filter (`emails[value eq "x"]`, Entra's `emails[type eq "work"].value eq "x"`),
// because a condition on one element implies the same condition on the attribute. "not" and
// everything else scans. A nil e (no filter) scans.
func Plan(e Expr) QueryPlan {
	return QueryPlan{Access: plan(e, ""), Residual: e}
}

// plan plans e; parent is the attribute of the enclosing value path, or "".
func plan(e Expr, parent string) Access {
	switch e := e.(type) {
	case *Compare:
		return planCompare(e, parent)
	case *ValuePath:
		if parent != "" || !coreURI(e.Attr.URI) {
			return Scan{}
		}
		if e.Then == nil {
			return plan(e.Filter, e.Attr.Name)
		}
		return intersect([]Access{plan(e.Filter, e.Attr.Name), planCompare(e.Then, e.Attr.Name)})
	case *Logical:
		parts := make([]Access, len(e.Terms))
		for i, t := range e.Terms {
			parts[i] = plan(t, parent)
		}
		if e.Op == And {
			return intersect(parts)
		}
		return union(parts)
	}
	return Scan{}
}

func planCompare(c *Compare, parent string) Access {
	name, sub := c.Attr.Name, c.Attr.Sub
	if parent != "" {
		if c.Attr.URI != "" || sub != "" {
			return Scan{}
		}
		name, sub = parent, name
	} else if strings.EqualFold(c.Attr.URI, scim.SchemaEnterpriseUser) && strings.EqualFold(name, "manager") &&
		(sub == "" || strings.EqualFold(sub, "value")) && c.Op == OpEq && c.Value.Kind == KindString {
		// The enterprise manager's id: a manager's reports.
		return Index{Attr: "manager.value", Op: OpEq, Value: c.Value.Text}
	} else if !coreURI(c.Attr.URI) {
		return Scan{}
	}
	if c.Op == OpPr || c.Value.Kind == KindNull {
		return Scan{}
	}
	for _, ix := range indexed {
		if !strings.EqualFold(name, ix.name) ||
			!(strings.EqualFold(sub, ix.sub) || sub == "" && ix.implied) {
			continue
		}
		attr := ix.name
		if ix.sub != "" {
			attr += "." + ix.sub
		}
		if ix.time {
			t, ok := timeValue(c.Value)
			if !ok || (c.Op != OpGt && c.Op != OpGe) {
				return Scan{}
			}
			return Index{Attr: attr, Op: c.Op, Value: c.Value.Text, Time: t, CaseExact: true}
		}
		if c.Op != OpEq {
			return Scan{}
		}
		return Index{Attr: attr, Op: OpEq, Value: c.Value.Text, CaseExact: ix.caseExact}
	}
	return Scan{}
}

// coreURI reports whether uri is empty or a core schema URN; the indexed attributes live there
// (id, externalId and meta are common attributes, which clients may qualify with the core URN).
func coreURI(uri string) bool {
	return uri == "" || strings.EqualFold(uri, scim.SchemaUser) || strings.EqualFold(uri, scim.SchemaGroup)
}

func intersect(parts []Access) Access {
	var out Intersect
	for _, p := range parts {
		switch p := p.(type) {
		case Scan:
		case Intersect:
			out = append(out, p...)
		default:
			out = append(out, p)
		}
	}
	switch len(out) {
	case 0:
		return Scan{}
	case 1:
		return out[0]
	}
	return out
}

func union(parts []Access) Access {
	var out Union
	for _, p := range parts {
		switch p := p.(type) {
		case Scan:
			return Scan{}
		case Union:
			out = append(out, p...)
		default:
			out = append(out, p)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return out
}
