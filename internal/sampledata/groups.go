package sampledata

import (
	"bufio"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

type groupKind int

const (
	kindNames  groupKind = iota // groupOfNames, size spread 2..500
	kindBig                     // groupOfNames with BigGroupSize members
	kindComma                   // groupOfNames whose cn holds a comma: an escaped DN
	kindNested                  // groupOfNames with groups among its members
	kindUnique                  // groupOfUniqueNames (uniqueMember)
	kindPosix                   // posixGroup (memberUid): structural on its own in nis.schema
)

// kind lays out the special groups first, so that even small files have one of each.
func (g *generator) kind(i int) groupKind {
	var kinds []groupKind
	if g.o.Users >= BigGroupSize {
		kinds = append(kinds, kindBig)
	}
	kinds = append(kinds, kindComma)
	if g.o.NestedGroup {
		kinds = append(kinds, kindNested)
	}
	kinds = append(kinds, kindUnique, kindPosix, kindUnique, kindPosix)
	if i < len(kinds) {
		return kinds[i]
	}
	return kindNames
}

func (g *generator) groupName(i int) string {
	switch g.kind(i) {
	case kindBig:
		return "all-staff"
	case kindComma:
		return "Sales, EMEA"
	case kindNested:
		return "engineering-all"
	case kindUnique:
		return fmt.Sprintf("unique-%s-%d", groupWords[i%len(groupWords)], i)
	case kindPosix:
		return fmt.Sprintf("posix-%s-%d", groupWords[i%len(groupWords)], i)
	}
	return fmt.Sprintf("%s-%d", groupWords[i%len(groupWords)], i)
}

func (g *generator) groupDN(i int) string {
	return "cn=" + ldap.EscapeDN(g.groupName(i)) + ",ou=groups," + g.o.Suffix
}

func (g *generator) writeGroup(w *bufio.Writer, i int) {
	kind, name := g.kind(i), g.groupName(i)
	size := g.groupSize()
	if kind == kindBig {
		size = BigGroupSize
	}
	members := g.sample(g.o.Users, size)
	a := []string{"objectClass", "top"}
	switch kind {
	case kindPosix:
		a = append(a, "objectClass", "posixGroup", "cn", name, "gidNumber", fmt.Sprint(10000+i),
			"description", "RFC 2307 group")
		for _, m := range members {
			a = append(a, "memberUid", g.uids[m])
		}
	case kindUnique:
		a = append(a, "objectClass", "groupOfUniqueNames", "cn", name)
		for _, m := range members {
			a = append(a, "uniqueMember", g.userDN(m))
		}
	default:
		a = append(a, "objectClass", "groupOfNames", "cn", name)
		if kind == kindNested {
			a = append(a, "description", "has groups among its members")
			for _, sub := range g.nestedMembers(i) {
				a = append(a, "member", g.groupDN(sub))
			}
		}
		for _, m := range members {
			a = append(a, "member", g.userDN(m))
		}
	}
	entry(w, g.groupDN(i), a...)
}

// nestedMembers are the comma group (earlier in the file) and, if there is one, the last
// group (later in the file) when it is a groupOfNames.
func (g *generator) nestedMembers(self int) []int {
	var subs []int
	for i := range self {
		if g.kind(i) == kindComma {
			subs = append(subs, i)
		}
	}
	if last := g.o.Groups - 1; last > self && g.kind(last) == kindNames {
		subs = append(subs, last)
	}
	return subs
}
