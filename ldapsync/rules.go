package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// RuleConfig is one [[rules]] entry: role mapping from HR attributes. When the SCIM filter When
// matches a user (as normalized from the directory, manager resolved), the user gets the Roles
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
	rs := &Rules{groups: map[string]string{}}
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

// apply evaluates every rule against u, adds the roles of those that match and returns the ids
// of the virtual groups u belongs to.
func (rs *Rules) apply(u *scim.Resource) map[string]bool {
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

// fingerprint is what of the rules shapes resources.
func (rs *Rules) fingerprint() []RuleConfig {
	if rs == nil {
		return nil
	}
	out := make([]RuleConfig, len(rs.list))
	for i, r := range rs.list {
		out[i] = r.RuleConfig
	}
	return out
}

// virtualIDs returns the ids of the virtual groups, sorted.
func (rs *Rules) virtualIDs() []string {
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

// evalRules runs the rules on a user about to be queued and records its virtual memberships.
func (p *pass) evalRules(u *scim.Resource) {
	if p.s.rules == nil || len(p.s.rules.list) == 0 || u.Type != scim.UserType {
		return
	}
	in := p.s.rules.apply(u)
	m := scim.Member{Value: u.ID, Type: scim.UserType, Display: displayOf(u)}
	for name, id := range p.s.rules.groups {
		_ = name
		if in[id] {
			p.vgIn[id] = append(p.vgIn[id], m)
		} else {
			p.vgOut[id] = append(p.vgOut[id], u.ID)
		}
	}
}

// virtualGroups brings every virtual group up to date with the users this pass evaluated: the
// cached members, minus those that no longer match, plus those that do. Users the pass did not
// evaluate (unchanged) keep their membership.
//
// A cached group gets a member edit naming only the users evaluated in this pass, so its other
// members are neither read nor written, whatever their number. Only a group that is new, or
// whose display name changed (the same name in another case), is restated as a whole, its
// cached members streamed.
func (p *pass) virtualGroups(ctx context.Context, edits ingest.Edits) ([]*scim.Resource, error) {
	if p.s.rules == nil {
		return nil, nil
	}
	var out []*scim.Resource
	for _, name := range slices.Sorted(maps.Keys(p.s.rules.groups)) {
		id := p.s.rules.groups[name]
		// The users evaluated in this pass: in wins when one was evaluated twice, as before.
		in := make(map[string]scim.Member, len(p.vgIn[id]))
		for _, m := range p.vgIn[id] {
			in[m.Value] = m
		}
		ref, err := p.s.store.Ref(ctx, id)
		switch {
		case err == nil && ref.Type == scim.GroupType && ref.Display == name:
			for _, uid := range p.vgOut[id] {
				if _, ok := in[uid]; !ok {
					edits.Remove(id, uid)
				}
			}
			for _, uid := range slices.Sorted(maps.Keys(in)) {
				edits.Set(id, in[uid])
			}
			continue
		case err != nil && !errors.Is(err, cache.ErrNotFound):
			return nil, err
		}
		g := &scim.Resource{Type: scim.GroupType, ID: id, Attributes: map[string]any{"displayName": name}}
		if err == nil {
			left := make(map[string]bool, len(p.vgOut[id]))
			for _, uid := range p.vgOut[id] {
				left[uid] = true
			}
			err := p.s.store.ForEachMember(ctx, id, "", func(m scim.Member) error {
				if _, ok := in[m.Value]; !ok && !left[m.Value] {
					g.Members = append(g.Members, m)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
		for _, m := range in {
			g.Members = append(g.Members, m)
		}
		slices.SortFunc(g.Members, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
		out = append(out, g)
	}
	return out, nil
}
