package ingest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// RuleConfig is one [[rules]] entry: role mapping from HR attributes. When the SCIM filter When
// matches a user (as normalized from its source, manager resolved), the user gets the Roles
// as SCIM roles values and is a member of the virtual Groups, which are served and pushed like
// directory groups.
type RuleConfig struct {
	Name   string   `toml:"name"`
	When   string   `toml:"when"`
	Roles  []string `toml:"roles"`
	Groups []string `toml:"groups"`
}

// rule is a compiled RuleConfig.
type rule struct {
	RuleConfig
	expr  filter.Expr
	match *filter.Matcher
}

// Rules are compiled [[rules]]. The zero value has no rules.
type Rules struct {
	list   []rule
	groups map[string]string // virtual group display name → id
	ids    map[string]bool   // virtual group ids
}

// virtualGroupNS is the UUID namespace of virtual group ids: a virtual group's id is a name-based
// (SHA-1) UUID of its display name, so it is the same in every pass and on every install.
var virtualGroupNS = uuid.MustParse("5d3e4c0a-8f0f-4b7e-9d5e-6c2b1a0f9e11")

// VirtualGroupID returns the id of the virtual group with that display name.
func VirtualGroupID(displayName string) string {
	return uuid.NewSHA1(virtualGroupNS, []byte(strings.ToLower(displayName))).String()
}

// CompileRules validates and compiles the [[rules]] section; its error lists every problem,
// each prefixed with the rule's position.
func CompileRules(cfgs []RuleConfig) (*Rules, error) {
	rs := &Rules{groups: map[string]string{}, ids: map[string]bool{}}
	var errs []error
	names := map[string]bool{}
	for i, c := range cfgs {
		at := fmt.Sprintf("rules[%d]", i)
		if c.Name != "" {
			at = fmt.Sprintf("rules[%d] (%s)", i, c.Name)
			if names[c.Name] {
				errs = append(errs, fmt.Errorf("%s.name: %q is used twice", at, c.Name))
			}
			names[c.Name] = true
		} else {
			errs = append(errs, fmt.Errorf("%s.name: is required", at))
		}
		if len(c.Roles) == 0 && len(c.Groups) == 0 {
			errs = append(errs, fmt.Errorf("%s: has neither roles nor groups", at))
		}
		e, err := filter.Parse(c.When)
		if err == nil {
			err = guardRuleFilter(e)
		}
		var m *filter.Matcher
		if err == nil {
			m, err = filter.Compile(e, scim.UserResource)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.when: %w", at, err))
			continue
		}
		for _, g := range c.Groups {
			if strings.TrimSpace(g) == "" {
				errs = append(errs, fmt.Errorf("%s.groups: an empty group name", at))
				continue
			}
			rs.groups[g] = VirtualGroupID(g)
			rs.ids[VirtualGroupID(g)] = true
		}
		rs.list = append(rs.list, rule{RuleConfig: c, expr: e, match: m})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rs, nil
}

// guardRuleFilter rejects attributes a rule cannot see: groups and roles are computed after
// rules run (and roles by rules themselves).
func guardRuleFilter(e filter.Expr) error {
	var bad error
	walk(e, func(x filter.Expr) {
		var p filter.AttrPath
		switch x := x.(type) {
		case *filter.Compare:
			p = x.Attr
		case *filter.ValuePath:
			p = x.Attr
		default:
			return
		}
		if n := strings.ToLower(p.Name); (n == "groups" || n == "roles") && bad == nil {
			bad = &filter.Error{Pos: p.Pos, Msg: fmt.Sprintf("rules cannot test %q: it is computed after rules run", p.Name)}
		}
	})
	return bad
}

func walk(e filter.Expr, fn func(filter.Expr)) {
	fn(e)
	switch x := e.(type) {
	case *filter.Logical:
		for _, t := range x.Terms {
			walk(t, fn)
		}
	case *filter.Not:
		walk(x.X, fn)
	}
}

// Apply evaluates every rule against u, adds the roles of those that match and returns the ids
// of the virtual groups u belongs to.
func (rs *Rules) Apply(u *scim.Resource) map[string]bool {
	if rs == nil || len(rs.list) == 0 {
		return nil
	}
	in := map[string]bool{}
	var roles []string
	for _, r := range rs.list {
		if !r.match.Match(u) {
			continue
		}
		roles = append(roles, r.Roles...)
		for _, g := range r.Groups {
			in[rs.groups[g]] = true
		}
	}
	if len(roles) > 0 {
		list, _ := u.Attributes["roles"].([]any)
		for _, role := range roles {
			if !slices.ContainsFunc(list, func(v any) bool { m, _ := v.(map[string]any); return m["value"] == role }) {
				list = append(list, map[string]any{"value": role, "type": "rule"})
			}
		}
		u.Attributes["roles"] = list
	}
	return in
}

// Fingerprint is what of the rules shapes resources: a source stores it in its settings
// fingerprint, so a change of the rules forces a full pass.
func (rs *Rules) Fingerprint() []RuleConfig {
	if rs == nil {
		return nil
	}
	out := make([]RuleConfig, len(rs.list))
	for i, r := range rs.list {
		out[i] = r.RuleConfig
	}
	return out
}

// IsVirtual reports whether id is a virtual group's: no source has it, so no pass may
// reconcile it away.
func (rs *Rules) IsVirtual(id string) bool {
	return rs != nil && rs.ids[id]
}

// VirtualIDs returns the ids of the virtual groups, sorted.
func (rs *Rules) VirtualIDs() []string {
	if rs == nil {
		return nil
	}
	var ids []string
	for _, id := range rs.groups {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
