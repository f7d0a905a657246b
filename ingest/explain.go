package ingest

import (
	"encoding/json"
	"strings"

	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// RuleResult says whether one rule matched a user and why.
type RuleResult struct {
	Name    string       `json:"name"`
	When    string       `json:"when"`
	Matched bool         `json:"matched"`
	Roles   []string     `json:"roles,omitempty"`
	Groups  []string     `json:"groups,omitempty"`
	Terms   []TermResult `json:"terms"`
}

// TermResult is one node of a rule's filter: its text, its depth in the tree, whether it held
// for the user, and, for a comparison, the user's value of the attribute it tests.
type TermResult struct {
	Depth   int    `json:"depth"`
	Expr    string `json:"expr"`
	Matched bool   `json:"matched"`
	Actual  string `json:"actual,omitempty"`
}

// Explain evaluates every rule against u, node by node.
func (rs *Rules) Explain(u *scim.Resource) []RuleResult {
	if rs == nil {
		return nil
	}
	out := make([]RuleResult, 0, len(rs.list))
	for _, r := range rs.list {
		res := RuleResult{Name: r.Name, When: r.When, Matched: r.match.Match(u)}
		if res.Matched {
			res.Roles, res.Groups = r.Roles, r.Groups
		}
		res.Terms = explainExpr(r.expr, u, 0, nil)
		out = append(out, res)
	}
	return out
}

func explainExpr(e filter.Expr, u *scim.Resource, depth int, out []TermResult) []TermResult {
	ok, _ := filter.Match(e, u, scim.UserResource) // the rule compiled, so its parts do too
	t := TermResult{Depth: depth, Expr: e.String(), Matched: ok}
	switch x := e.(type) {
	case *filter.Compare:
		t.Actual = actual(u, x.Attr)
	case *filter.ValuePath:
		t.Actual = actual(u, filter.AttrPath{URI: x.Attr.URI, Name: x.Attr.Name})
	}
	out = append(out, t)
	switch x := e.(type) {
	case *filter.Logical:
		for _, term := range x.Terms {
			out = explainExpr(term, u, depth+1, out)
		}
	case *filter.Not:
		out = explainExpr(x.X, u, depth+1, out)
	}
	return out
}

// actual renders the user's value of an attribute path as JSON, or "(absent)".
func actual(u *scim.Resource, p filter.AttrPath) string {
	ref, err := scim.UserResource.Resolve(p.URI, p.Name, p.Sub)
	if err != nil {
		return ""
	}
	var v any
	switch ref.URN {
	case "":
		switch strings.ToLower(ref.Attr.Name) {
		case "id":
			v = u.ID
		case "externalid":
			v = u.ExternalID
		default:
			return ""
		}
	case scim.SchemaUser:
		v = u.Attributes[ref.Attr.Name]
	default:
		ext, _ := u.Attributes[ref.URN].(map[string]any)
		v = ext[ref.Attr.Name]
	}
	if ref.Sub != nil {
		v = sub(v, ref.Sub.Name)
	}
	if v == nil || v == "" {
		return "(absent)"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func sub(v any, name string) any {
	switch x := v.(type) {
	case map[string]any:
		return x[name]
	case []any:
		var out []any
		for _, e := range x {
			if s := sub(e, name); s != nil {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return nil
}
