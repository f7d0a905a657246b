package ldapsync

// SetRangeFault makes the range-retrieval request for (dn, low) fail when fn returns an error
// (tests: "a later range request fails").
func SetRangeFault(s *Syncer, fn func(dn string, low int) error) { s.rangeFault = fn }

// ReadAttributes returns the LDAP attributes a pass asks for, users then groups.
func ReadAttributes(s *Syncer) (users, groups []string) { return s.userAttrs(), s.groupAttrs() }
