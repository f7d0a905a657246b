// Package dn turns LDAP distinguished names into a canonical key, so that two spellings of
// one DN ("CN=Ann,OU=People" and "cn=ann, ou=people") compare equal in maps and indexes.
package dn

import (
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// Normalize returns the canonical, case-folded form of dn: attribute types and values
// lower-cased, no spaces around separators, escapes resolved and re-applied in one way.
// A DN that does not parse is folded as a plain string, so it still compares to itself.
func Normalize(dn string) string {
	if simple(dn) {
		return strings.ToLower(dn)
	}
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(dn))
	}
	var b strings.Builder
	for i, rdn := range parsed.RDNs {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, a := range rdn.Attributes {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(strings.ToLower(a.Type))
			b.WriteByte('=')
			b.WriteString(escape(strings.ToLower(a.Value)))
		}
	}
	return b.String()
}

// simple reports whether dn can be folded by lower-casing alone: plain ASCII with no escapes,
// quotes, multi-valued RDNs or spaces (spaces may sit around separators).
func simple(dn string) bool {
	for i := 0; i < len(dn); i++ {
		switch c := dn[i]; {
		case c >= 0x80, c == '\\', c == '"', c == '+', c == '#', c == ' ', c == ';', c == '<', c == '>':
			return false
		}
	}
	return dn != ""
}

// escape applies RFC 4514 escaping to an attribute value.
func escape(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';' || c == '=':
			b.WriteByte('\\')
			b.WriteByte(c)
		case (i == 0 && (c == ' ' || c == '#')) || (i == len(v)-1 && c == ' '):
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// StripUID returns the DN part of a Name and Optional UID value (RFC 4517 section 3.3.21, the
// syntax of groupOfUniqueNames' uniqueMember): "uid=ann,dc=example,dc=com#'0101'B" becomes
// "uid=ann,dc=example,dc=com". Other values are returned unchanged. An escaped "\#" is part of
// the DN, not the start of a UID.
func StripUID(v string) string {
	if !strings.HasSuffix(v, "'B") {
		return v
	}
	i := strings.LastIndex(v, "#'")
	if i <= 0 || v[i-1] == '\\' {
		return v
	}
	for _, c := range v[i+2 : len(v)-2] {
		if c != '0' && c != '1' {
			return v
		}
	}
	return v[:i]
}
