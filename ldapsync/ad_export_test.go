package ldapsync

import "github.com/ldapscim/ldapscim/scim"

// SetRangeFault makes the range-retrieval request for (dn, low) fail when fn returns an error
// (tests: "a later range request fails").
func SetRangeFault(s *Syncer, fn func(dn string, low int) error) { s.rangeFault = fn }

// SetGUIDReadHook calls fn for every re-read by GUID of a DirSync pass.
func SetGUIDReadHook(s *Syncer, fn func(typ scim.ResourceType, id string)) { s.guidRead = fn }

// ReadAttributes returns the LDAP attributes a pass asks for, users then groups.
func ReadAttributes(s *Syncer) (users, groups []string) { return s.userAttrs(), s.groupAttrs() }
