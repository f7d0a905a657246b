package cache

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// side is one version of a resource as diffs see it: top-level fields and the JSON value of
// each attribute. The zero side is "no resource". Members are diffed on their own (members.go).
type side struct {
	externalID string
	dn         string
	attrs      map[string]json.RawMessage
}

func sideOfEncoded(e *encoded) side {
	return side{externalID: e.res.ExternalID, dn: e.res.DN, attrs: e.attrs}
}

func sideOfStored(st *stored) side {
	return side{externalID: st.ExternalID, dn: st.DN, attrs: st.Attributes}
}

// active reports the side's "active" attribute as scim.Resource.Active does.
func (s side) active() bool { return !bytes.Equal(s.attrs["active"], []byte("false")) }

// diffSides returns the changed top-level attribute names (sorted) and the audit diff between
// two versions of a resource.
func diffSides(a, b side) (changed []string, diff []AttrChange) {
	add := func(path string, old, new any) {
		changed = append(changed, path)
		diff = append(diff, AttrChange{Path: path, Old: old, New: new})
	}
	if a.externalID != b.externalID {
		add("externalId", stringOrNil(a.externalID), stringOrNil(b.externalID))
	}
	if a.dn != b.dn {
		add("dn", stringOrNil(a.dn), stringOrNil(b.dn))
	}
	for _, name := range unionKeys(a.attrs, b.attrs) {
		if old, new := a.attrs[name], b.attrs[name]; !bytes.Equal(old, new) {
			add(name, rawOrNil(old), rawOrNil(new))
		}
	}
	slices.Sort(changed)
	slices.SortFunc(diff, func(x, y AttrChange) int { return strings.Compare(x.Path, y.Path) })
	return changed, diff
}

// createdChanges returns the attribute names a create sets (sorted) and an audit diff that
// names them without values. The values are not lost: the resource holds them, every later
// update's diff records the Old values it replaces, and a delete records all Old values, so any
// past version can be rebuilt backwards from the current one. This keeps a 100k-user initial
// sync from writing every user twice.
func createdChanges(e *encoded) (changed []string, diff []AttrChange) {
	r := e.res
	changed = make([]string, 0, len(e.attrs)+3)
	for name := range e.attrs {
		changed = append(changed, name)
	}
	for name, set := range map[string]bool{"externalId": r.ExternalID != "", "dn": r.DN != "", "members": len(e.members) > 0} {
		if set {
			changed = append(changed, name)
		}
	}
	slices.Sort(changed)
	diff = make([]AttrChange, len(changed))
	for i, name := range changed {
		diff[i].Path = name
	}
	return changed, diff
}

func unionKeys(a, b map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// The helpers below return an untyped nil for "absent", so omitempty drops it.

func stringOrNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func rawOrNil(r json.RawMessage) any {
	if len(r) == 0 {
		return nil
	}
	return r
}

func idsOrNil(ids []string) any {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
