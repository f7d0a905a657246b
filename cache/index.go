package cache

import (
	"encoding/json"
	"strings"

	"github.com/ldapscim/ldapscim/scim"
)

// Index names a secondary index for Lookup.
type Index string

// The secondary indexes. Lookup folds the value the same way the index does.
const (
	IndexUserName    Index = "userName"    // users' userName, case-folded
	IndexExternalID  Index = "externalId"  // externalId, exact
	IndexEmail       Index = "email"       // users' emails[].value, case-folded
	IndexDN          Index = "dn"          // dn.Normalize(Resource.DN)
	IndexDisplayName Index = "displayName" // groups' displayName, case-folded
)

// indexByte returns the key byte of a non-unique index ('x' keys), or 0.
func indexByte(idx Index) byte {
	switch idx {
	case IndexUserName:
		return 'u'
	case IndexExternalID:
		return 'e'
	case IndexEmail:
		return 'm'
	case IndexDisplayName:
		return 'n'
	}
	return 0
}

// fold returns v as index idx stores it.
func fold(idx Index, v string) string {
	switch idx {
	case IndexExternalID:
		return v
	case IndexDN:
		return normalizeDN(v)
	}
	return strings.ToLower(v)
}

// indexValues are the values of a resource that non-unique indexes hold.
type indexValues struct {
	userName, externalID, displayName string
	emails                            []string
}

func valuesOf(r *scim.Resource) indexValues {
	return indexValues{userName: r.UserName(), externalID: r.ExternalID, displayName: r.DisplayName(),
		emails: r.Emails()}
}

// valuesOfStored decodes the indexed attributes of a stored resource.
func valuesOfStored(st *stored) indexValues {
	r := scim.Resource{Attributes: map[string]any{}}
	for _, name := range []string{"userName", "displayName", "emails"} {
		if raw, ok := st.Attributes[name]; ok {
			var v any
			if json.Unmarshal(raw, &v) == nil {
				r.Attributes[name] = v
			}
		}
	}
	v := valuesOf(&r)
	v.externalID = st.ExternalID
	return v
}

// indexKeys returns the 'x' keys (as strings) of a resource of type tb.
func indexKeys(tb byte, id string, v indexValues) []string {
	keys := make([]string, 0, 4+len(v.emails))
	add := func(idx Index, value string) {
		if value == "" {
			return
		}
		k := string(indexKey(indexByte(idx), fold(idx, value), id))
		if !contains(keys, k) {
			keys = append(keys, k)
		}
	}
	add(IndexExternalID, v.externalID)
	switch tb {
	case 'U':
		add(IndexUserName, v.userName)
		for _, e := range v.emails {
			add(IndexEmail, e)
		}
	case 'G':
		add(IndexDisplayName, v.displayName)
	}
	return keys
}
