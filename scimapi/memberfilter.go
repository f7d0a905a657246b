package scimapi

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
	"github.com/ldapscim/ldapscim/scim/filter"
)

// A group filter that names members is evaluated without loading any member list. Every
// comparison or value path on members (an "atom") is a statement about the member set that can
// be decided member by member, following the semantics of scim/filter/match.go:
//   - a value path (members[...]) holds when one member satisfies its filter;
//   - a comparison looks at the members whose compared value is present: when there are none,
//     it has its value on a group without members (true for ne and eq null, else false); when
//     there are, pr and ne null hold and eq null does not, and any other operator holds when
//     one of those members satisfies it (ne too: "a value that differs", as match.go has it).
//
// members.value eq "x" (also `members eq "x"` and `members[value eq "x"]`) is decided by the
// member → groups index, read once per request; a value path that also requires value eq "x"
// (`members[value eq "x" and type eq "User"]`) reads that one member key; any other atom streams
// the group's members from the store, one at a time, and stops at the first member that decides
// it. The rest of the filter is evaluated on the group without members, and "and"/"or" try their
// cheap terms first.

type atomKind uint8

const (
	atomPlain  atomKind = iota // names no members: the group alone answers
	atomID                     // members.value eq id: the member index answers
	atomIDPlus                 // a value path that implies value eq id: one member key answers
	atomStream                 // anything else on members: stream until decided
)

type atom struct {
	kind  atomKind
	m     *filter.Matcher // the atom alone, compiled for groups
	id    string          // atomID, atomIDPlus
	empty bool            // atomStream: the atom's value without members
	// atomStream comparisons: pres matches a group whose one member has the compared value
	// present; byPresence (pr, eq null, ne null) says the first such member decides.
	pres       *filter.Matcher
	byPresence bool
}

type memberFilter struct {
	s        *Server
	root     filter.Expr
	atoms    map[filter.Expr]*atom
	ordered  map[*filter.Logical][]filter.Expr // terms, cheapest first
	groupsOf map[string]map[string]bool        // member id → the groups listing it
}

// errDecided stops a member stream once an atom is decided.
var errDecided = errors.New("decided")

// newMemberFilter prepares e (which compiled for groups) for evaluation without member lists.
func (s *Server) newMemberFilter(ctx context.Context, e filter.Expr) (*memberFilter, error) {
	f := &memberFilter{s: s, root: e, atoms: map[filter.Expr]*atom{}, ordered: map[*filter.Logical][]filter.Expr{}}
	if err := f.prepare(e); err != nil {
		return nil, err
	}
	var ids []string
	for _, a := range f.atoms {
		if a.kind == atomID || a.kind == atomIDPlus {
			ids = append(ids, a.id)
		}
	}
	f.groupsOf = map[string]map[string]bool{}
	if len(ids) == 0 {
		return f, nil
	}
	slices.Sort(ids)
	refs, err := s.store.GroupsOfMany(ctx, slices.Compact(ids))
	if err != nil {
		return nil, err
	}
	for id, list := range refs {
		set := make(map[string]bool, len(list))
		for _, g := range list {
			set[g.ID] = true
		}
		f.groupsOf[id] = set
	}
	return f, nil
}

func (f *memberFilter) prepare(e filter.Expr) error {
	switch e := e.(type) {
	case *filter.Logical:
		for _, t := range e.Terms {
			if err := f.prepare(t); err != nil {
				return err
			}
		}
		terms := slices.Clone(e.Terms)
		slices.SortStableFunc(terms, func(a, b filter.Expr) int { return f.cost(a) - f.cost(b) })
		f.ordered[e] = terms
		return nil
	case *filter.Not:
		return f.prepare(e.X)
	}
	m, err := filter.Compile(e, scim.GroupResource)
	if err != nil {
		return err
	}
	a := &atom{kind: atomPlain, m: m}
	if onMembers(e) {
		a.kind = atomStream
		if id, alone, ok := impliedID(e); ok {
			a.kind, a.id = atomIDPlus, id
			if alone {
				a.kind = atomID
			}
		} else {
			a.empty = m.Match(&scim.Resource{Type: scim.GroupType})
			if c, ok := e.(*filter.Compare); ok {
				p := &filter.Compare{Attr: c.Attr, Op: filter.OpPr}
				if c.Op != filter.OpPr && p.Attr.Sub == "" {
					p.Attr.Sub = "value" // as Compile reads `members eq "x"`
				}
				if a.pres, err = filter.Compile(p, scim.GroupResource); err != nil {
					return err
				}
				a.byPresence = c.Op == filter.OpPr || c.Value.Kind == filter.KindNull
			}
		}
	}
	f.atoms[e] = a
	return nil
}

func (f *memberFilter) cost(e filter.Expr) int {
	switch e := e.(type) {
	case *filter.Logical:
		c := 0
		for _, t := range e.Terms {
			c = max(c, f.cost(t))
		}
		return c
	case *filter.Not:
		return f.cost(e.X)
	}
	switch f.atoms[e].kind {
	case atomIDPlus:
		return 1
	case atomStream:
		return 2
	}
	return 0
}

// onMembers reports whether a comparison or value path is about the group's members.
func onMembers(e filter.Expr) bool {
	switch e := e.(type) {
	case *filter.Compare:
		return strings.EqualFold(e.Attr.Name, "members")
	case *filter.ValuePath:
		return strings.EqualFold(e.Attr.Name, "members")
	}
	return false
}

// impliedID returns the member id an atom on members requires (members.value eq "x",
// members eq "x", or a value path whose conditions include value eq "x" joined by "and");
// alone when that is all the atom requires.
func impliedID(e filter.Expr) (id string, alone, ok bool) {
	idEq := func(c *filter.Compare, sub string) (string, bool) {
		if c.Op != filter.OpEq || c.Value.Kind != filter.KindString || !(sub == "" || strings.EqualFold(sub, "value")) {
			return "", false
		}
		return c.Value.Text, true
	}
	switch e := e.(type) {
	case *filter.Compare:
		id, ok := idEq(e, e.Attr.Sub)
		return id, ok, ok
	case *filter.ValuePath:
		var conds []filter.Expr
		var flatten func(x filter.Expr)
		flatten = func(x filter.Expr) {
			if l, ok := x.(*filter.Logical); ok && l.Op == filter.And {
				for _, t := range l.Terms {
					flatten(t)
				}
				return
			}
			conds = append(conds, x)
		}
		flatten(e.Filter)
		if e.Then != nil {
			conds = append(conds, e.Then)
		}
		for _, x := range conds {
			if c, isCmp := x.(*filter.Compare); isCmp && c.Attr.URI == "" && c.Attr.Sub == "" && strings.EqualFold(c.Attr.Name, "value") {
				if id, ok := idEq(c, ""); ok {
					return id, len(conds) == 1, true
				}
			}
		}
	}
	return "", false, false
}

// match evaluates the filter on group g (read without members).
func (f *memberFilter) match(ctx context.Context, g *scim.Resource) (bool, error) {
	return f.eval(ctx, f.root, g)
}

func (f *memberFilter) eval(ctx context.Context, e filter.Expr, g *scim.Resource) (bool, error) {
	switch e := e.(type) {
	case *filter.Logical:
		for _, t := range f.ordered[e] {
			v, err := f.eval(ctx, t, g)
			if err != nil {
				return false, err
			}
			if v != (e.Op == filter.And) {
				return v, nil // a false term of "and", a true one of "or"
			}
		}
		return e.Op == filter.And, nil
	case *filter.Not:
		v, err := f.eval(ctx, e.X, g)
		return !v, err
	}
	a := f.atoms[e]
	switch a.kind {
	case atomID:
		return f.groupsOf[a.id][g.ID], nil
	case atomIDPlus:
		if !f.groupsOf[a.id][g.ID] {
			return false, nil
		}
		m, ok, err := f.s.store.Member(ctx, g.ID, a.id)
		if err != nil || !ok {
			return false, err
		}
		return a.m.Match(&scim.Resource{Type: scim.GroupType, ID: g.ID, Members: []scim.Member{m}}), nil
	case atomStream:
		v, present := false, false
		one := &scim.Resource{Type: scim.GroupType, ID: g.ID, Members: make([]scim.Member, 1)}
		_, err := f.s.store.StreamGroup(ctx, g.ID, func(*scim.Resource) error { return nil }, func(m cache.MemberBytes) error {
			one.Members[0] = scim.Member{Value: string(m.ID), Type: m.Type, Display: string(m.Display)}
			if a.pres != nil && !a.pres.Match(one) {
				return nil // does not count
			}
			present = true
			if v = a.m.Match(one); v || a.byPresence {
				return errDecided
			}
			return nil
		})
		if err != nil && !errors.Is(err, errDecided) {
			return false, err
		}
		if !present {
			return a.empty, nil
		}
		return v, nil
	}
	return a.m.Match(g), nil
}
