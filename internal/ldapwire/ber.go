package ldapwire

import (
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

// BER tags (identifier octets) used by the LDAP messages this package reads.
// LDAP only uses single-octet tags.
const (
	tagBoolean     = 0x01
	tagInteger     = 0x02
	tagOctetString = 0x04
	tagEnumerated  = 0x0a
	tagSequence    = 0x30
	tagSet         = 0x31

	tagBindResponse     = 0x61 // [APPLICATION 1] constructed
	tagSearchEntry      = 0x64 // [APPLICATION 4]
	tagSearchDone       = 0x65 // [APPLICATION 5]
	tagSearchReference  = 0x73 // [APPLICATION 19]
	tagExtendedResponse = 0x78 // [APPLICATION 24]
	tagIntermediate     = 0x79 // [APPLICATION 25]
	tagControls         = 0xa0 // [0] constructed, in LDAPMessage
	tagReferral         = 0xa3 // [3] constructed, in LDAPResult
)

// maxMessageSize bounds one LDAPMessage so garbage on the wire (or a hostile
// server) cannot make us allocate gigabytes. OpenLDAP sends a group's members
// in one message (it has no range retrieval): a million members are about
// 50 MiB with short DNs and 85 MiB with AD-length ones (80 bytes), so 512 MiB
// takes groups of several million members.
const maxMessageSize = 512 << 20

// errMalformed is the cause of every decoding failure. It is a sentinel so the
// hot path never allocates; the caller wraps it once with context.
var errMalformed = errors.New("malformed BER")

// malformed builds the error returned to callers for an undecodable message.
func malformed(what string) error {
	return ldap.NewError(ldap.ErrorMalformedPacket, fmt.Errorf("ldapwire: %s: %w", what, errMalformed))
}

// next splits the first TLV element off b. It returns the tag octet, the
// content octets and the remaining bytes, all aliasing b.
func next(b []byte) (tag byte, val, rest []byte, err error) {
	if len(b) < 2 {
		return 0, nil, nil, errMalformed
	}
	tag = b[0]
	if tag&0x1f == 0x1f { // multi-octet tag: never used by LDAP
		return 0, nil, nil, errMalformed
	}
	n, hdr, err := parseLength(b[1:])
	if err != nil {
		return 0, nil, nil, err
	}
	b = b[1+hdr:]
	if n > len(b) {
		return 0, nil, nil, errMalformed
	}
	return tag, b[:n:n], b[n:], nil
}

// expect is next plus a check that the tag is want.
func expect(b []byte, want byte) (val, rest []byte, err error) {
	tag, val, rest, err := next(b)
	if err == nil && tag != want {
		err = errMalformed
	}
	return val, rest, err
}

// parseLength decodes BER length octets at the start of b and returns the
// length and how many octets encoded it. The indefinite form (0x80) is not
// allowed in LDAP (RFC 4511 section 5.1) and is rejected, as is any length
// above maxMessageSize.
func parseLength(b []byte) (n, size int, err error) {
	if len(b) == 0 {
		return 0, 0, errMalformed
	}
	first := b[0]
	if first < 0x80 {
		return int(first), 1, nil
	}
	k := int(first & 0x7f)
	if k == 0 || k > 4 || len(b) < 1+k {
		return 0, 0, errMalformed
	}
	// Accumulate unsigned: four octets of 0xff overflow a 32-bit int into a negative length.
	var u uint64
	for _, c := range b[1 : 1+k] {
		u = u<<8 | uint64(c)
	}
	if u > maxMessageSize {
		return 0, 0, errMalformed
	}
	return int(u), 1 + k, nil
}

// parseInt decodes a two's-complement INTEGER or ENUMERATED of at most 4
// octets, which covers message IDs and result codes.
func parseInt(v []byte) (int32, error) {
	if len(v) == 0 || len(v) > 4 {
		return 0, errMalformed
	}
	n := int32(int8(v[0])) // sign-extend the first octet
	for _, c := range v[1:] {
		n = n<<8 | int32(c)
	}
	return n, nil
}
