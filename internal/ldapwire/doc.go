// Package ldapwire is a minimal LDAP v3 client for one job: reading a large
// result set (a full sync of every user and group) as fast as the directory
// can send it.
//
// It speaks just enough of RFC 4511 to dial (ldap, ldaps, ldapi, StartTLS),
// simple-bind and run a streaming search with the RFC 2696 paged-results
// control. Requests are encoded with go-asn1-ber (cheap, once per page);
// responses are decoded by a hand-written BER reader that walks each
// LDAPMessage in place and reuses the Entry it hands to the caller, so a
// search of any size performs a constant number of allocations per page
// rather than several per attribute value, as go-ldap does.
//
// Everything else (modify, syncrepl, DirSync, ...) stays on go-ldap; errors
// from this package are *ldap.Error values so callers classify both the same
// way with ldap.IsErrorWithCode and ldap.IsErrorAnyOf.
//
// A Conn serves one operation at a time and is not safe for concurrent use.
package ldapwire
