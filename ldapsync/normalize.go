package ldapsync

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// attrGetter is what normalization needs from an LDAP entry, whichever client decoded it.
type attrGetter interface {
	// Get returns the values of the attribute, matching its name case-insensitively.
	Get(name string) [][]byte
}

// refs are an entry's references to other entries, resolved to ids after the entry is read.
type refs struct {
	manager    string   // manager DN
	memberDNs  []string // group member DNs
	memberUIDs []string // posixGroup memberUid values
}

func (r refs) empty() bool { return r.manager == "" && len(r.memberDNs) == 0 && len(r.memberUIDs) == 0 }

// str turns an LDAP value into a SCIM string: valid UTF-8, surrounding space trimmed.
func str(b []byte) string {
	if utf8.Valid(b) {
		return strings.TrimSpace(string(b))
	}
	return strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// first returns the values of the first source attribute that has any non-empty value.
func first(e attrGetter, sources []string) [][]byte {
	for _, s := range sources {
		if vs := e.Get(s); len(vs) > 0 {
			for _, v := range vs {
				if len(v) > 0 {
					return vs
				}
			}
		}
	}
	return nil
}

// apply writes the mapped attributes of e into r and returns the DN of a manager reference.
func (m *mapping) apply(r *scim.Resource, e attrGetter) (managerDN string) {
	attrs := r.Attributes
	for i := range m.fields {
		f := &m.fields[i]
		vals := first(e, f.sources)
		if f.absent {
			attrs[f.Attr] = len(vals) == 0
			continue
		}
		if len(vals) == 0 {
			continue
		}
		switch {
		case f.Schema != "" && (f.Raw == managerPath || f.Attr == "manager"):
			managerDN = str(vals[0])
		case f.conv != "" && f.Schema == "" && f.Attr != "externalId":
			if v, ok := convert(f.conv, str(vals[0])); ok {
				attrs[f.Attr] = v
			}
		case f.Multi:
			ss := make([]string, len(vals))
			for i, v := range vals {
				ss[i] = str(v)
			}
			f.Set(r, ss...)
		default:
			f.Set(r, str(vals[0]))
		}
	}
	scim.MarkPrimaryEmail(r)
	return managerDN
}

// convert applies a value converter: "uac" reads AD's userAccountControl (bit 2 = disabled),
// "bool" reads an LDAP Boolean.
func convert(conv, v string) (bool, bool) {
	switch conv {
	case "uac":
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false, false
		}
		return n&2 == 0, true
	case "bool":
		switch strings.ToUpper(v) {
		case "TRUE":
			return true, true
		case "FALSE":
			return false, true
		}
	}
	return false, false
}

// normalizeUser builds a User from an entry. It returns ok=false (with a reason) for an entry
// that cannot be a SCIM user, such as one without a userName.
func (s *Syncer) normalizeUser(id, entryDN string, e attrGetter) (*scim.Resource, refs, string) {
	r := &scim.Resource{Type: scim.UserType, ID: id, DN: entryDN, Attributes: make(map[string]any, 12)}
	var rf refs
	rf.manager = s.users.apply(r, e)
	if r.UserName() == "" {
		return nil, refs{}, "no value for userName"
	}
	return r, rf, ""
}

// normalizeGroup builds a Group from an entry; members are resolved later.
func (s *Syncer) normalizeGroup(id, entryDN string, e attrGetter) (*scim.Resource, refs, string) {
	r := &scim.Resource{Type: scim.GroupType, ID: id, DN: entryDN, Attributes: make(map[string]any, 2)}
	s.groups.apply(r, e)
	if r.DisplayName() == "" {
		return nil, refs{}, "no value for displayName"
	}
	var rf refs
	for _, a := range s.cfg.Groups.MemberAttributes {
		for _, v := range e.Get(a) {
			// uniqueMember is a Name and Optional UID: "dn#'0101'B" names dn.
			if d := dn.StripUID(str(v)); d != "" {
				rf.memberDNs = append(rf.memberDNs, d)
			}
		}
	}
	for _, a := range s.cfg.Groups.MemberUIDAttributes {
		for _, v := range e.Get(a) {
			if u := str(v); u != "" {
				rf.memberUIDs = append(rf.memberUIDs, u)
			}
		}
	}
	return r, rf, ""
}
