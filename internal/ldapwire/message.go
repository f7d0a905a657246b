package ldapwire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// message is one LDAPMessage; body and controls alias the read buffer.
//
//	LDAPMessage ::= SEQUENCE {
//	     messageID       MessageID,
//	     protocolOp      CHOICE { ... },
//	     controls       [0] Controls OPTIONAL }
type message struct {
	id       int32
	op       byte   // tag of protocolOp
	body     []byte // content of protocolOp
	controls []byte // content of [0] Controls, nil when absent
}

// parseMessage decodes the content of the outer LDAPMessage SEQUENCE.
func parseMessage(b []byte) (message, error) {
	var m message
	idv, rest, err := expect(b, tagInteger)
	if err != nil {
		return m, err
	}
	if m.id, err = parseInt(idv); err != nil {
		return m, err
	}
	if m.op, m.body, rest, err = next(rest); err != nil {
		return m, err
	}
	if len(rest) > 0 {
		// Unknown trailing elements are ignored, as RFC 4511 section 4.1.1
		// asks for extensibility; only [0] is meaningful.
		if tag, ctrls, _, err := next(rest); err != nil {
			return m, err
		} else if tag == tagControls {
			m.controls = ctrls
		}
	}
	return m, nil
}

// msgReader reads one LDAPMessage at a time. A message that fits in the
// bufio buffer is returned in place (Peek), so the common case copies
// nothing; bigger ones are read into a buffer kept for reuse.
type msgReader struct {
	br      *bufio.Reader
	pending int    // bytes of the previous message still to Discard
	big     []byte // for messages larger than br's buffer
	// owned is true when the last message's bytes are in a buffer the reader drops rather
	// than reuses (one larger than bigKeep): they stay valid after the next read.
	owned bool
}

// readBufferSize is large so one read syscall fetches many small entries.
const readBufferSize = 256 << 10

// bigKeep is the largest oversize buffer kept between messages.
const bigKeep = 4 << 20

// next returns the content of the next LDAPMessage. It is valid until the
// following call. io.EOF is returned only for a clean close between messages.
func (r *msgReader) next() ([]byte, error) {
	if r.pending > 0 {
		_, _ = r.br.Discard(r.pending) // cannot fail: the bytes were peeked
		r.pending = 0
	}
	if cap(r.big) > bigKeep {
		r.big = nil
	}
	r.owned = false
	hdr, err := r.br.Peek(2)
	if err != nil {
		if len(hdr) > 0 && err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if hdr[0] != tagSequence {
		return nil, malformed("LDAPMessage is not a SEQUENCE")
	}
	hlen := 2
	if hdr[1] > 0x80 {
		hlen += int(hdr[1] & 0x7f)
		if hdr, err = r.br.Peek(hlen); err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	n, _, err := parseLength(hdr[1:hlen])
	if err != nil {
		return nil, malformed("LDAPMessage length invalid or over 512 MiB")
	}
	if total := hlen + n; total <= r.br.Size() {
		b, err := r.br.Peek(total)
		if err != nil {
			return nil, unexpectedEOF(err)
		}
		r.pending = total
		return b[hlen:], nil
	}
	_, _ = r.br.Discard(hlen)
	if cap(r.big) < n {
		r.big = make([]byte, n)
	}
	b := r.big[:n]
	if _, err := io.ReadFull(r.br, b); err != nil {
		return nil, unexpectedEOF(err)
	}
	r.owned = cap(r.big) > bigKeep
	return b, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// result is a decoded LDAPResult.
//
//	LDAPResult ::= SEQUENCE {
//	     resultCode         ENUMERATED,
//	     matchedDN          LDAPDN,
//	     diagnosticMessage  LDAPString,
//	     referral           [3] Referral OPTIONAL }
type result struct {
	code      int32
	matchedDN []byte
	diag      []byte
	referrals []string
}

// decodeResult decodes the LDAPResult at the start of body; rest holds any
// operation-specific fields that follow (e.g. an ExtendedResponse's name).
func decodeResult(body []byte) (r result, rest []byte, err error) {
	v, rest, err := expect(body, tagEnumerated)
	if err != nil {
		return r, nil, err
	}
	if r.code, err = parseInt(v); err != nil {
		return r, nil, err
	}
	if r.matchedDN, rest, err = expect(rest, tagOctetString); err != nil {
		return r, nil, err
	}
	if r.diag, rest, err = expect(rest, tagOctetString); err != nil {
		return r, nil, err
	}
	if len(rest) > 0 && rest[0] == tagReferral {
		var refs []byte
		if refs, rest, err = expect(rest, tagReferral); err != nil {
			return r, nil, err
		}
		if r.referrals, err = decodeURIs(refs); err != nil {
			return r, nil, err
		}
	}
	return r, rest, nil
}

// decodeURIs decodes a SEQUENCE OF LDAPURL content (Referral and
// SearchResultReference share it).
func decodeURIs(b []byte) ([]string, error) {
	var uris []string
	for len(b) > 0 {
		v, rest, err := expect(b, tagOctetString)
		if err != nil {
			return nil, err
		}
		uris = append(uris, string(v))
		b = rest
	}
	return uris, nil
}

// err turns a non-success result into an *ldap.Error, so callers can use
// ldap.IsErrorWithCode / IsErrorAnyOf exactly as with go-ldap.
func (r *result) err(op string) error {
	if r.code == ldap.LDAPResultSuccess {
		return nil
	}
	// ldap.Error prints the result code and its name; add what the server said beyond them.
	msg := "ldapwire: " + op
	if len(r.diag) > 0 {
		msg += ": " + string(r.diag)
	}
	if r.code == ldap.LDAPResultNoSuchObject && len(r.matchedDN) > 0 {
		msg += fmt.Sprintf(" (the nearest entry that exists is %q)", r.matchedDN)
	}
	if len(r.referrals) > 0 {
		msg += " (referrals: " + strings.Join(r.referrals, " ") + ")"
	}
	return &ldap.Error{
		ResultCode: uint16(r.code),
		MatchedDN:  string(r.matchedDN),
		Err:        errors.New(msg),
	}
}

// pagedCookie looks for the RFC 2696 control in the content of a Controls
// element and returns a copy of its cookie (the read buffer is reused).
//
//	Control ::= SEQUENCE { controlType LDAPOID, criticality BOOLEAN DEFAULT FALSE,
//	                       controlValue OCTET STRING OPTIONAL }
//	realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING }
func pagedCookie(controls []byte) (cookie []byte, found bool, err error) {
	for len(controls) > 0 {
		var ctrl, oid []byte
		if ctrl, controls, err = expect(controls, tagSequence); err != nil {
			return nil, false, err
		}
		if oid, ctrl, err = expect(ctrl, tagOctetString); err != nil {
			return nil, false, err
		}
		if string(oid) != ldap.ControlTypePaging {
			continue
		}
		if len(ctrl) > 0 && ctrl[0] == tagBoolean {
			if _, ctrl, err = expect(ctrl, tagBoolean); err != nil {
				return nil, false, err
			}
		}
		value, _, err := expect(ctrl, tagOctetString)
		if err != nil {
			return nil, false, err
		}
		seq, _, err := expect(value, tagSequence)
		if err != nil {
			return nil, false, err
		}
		_, rest, err := expect(seq, tagInteger)
		if err != nil {
			return nil, false, err
		}
		c, _, err := expect(rest, tagOctetString)
		if err != nil {
			return nil, false, err
		}
		return append([]byte(nil), c...), true, nil
	}
	return nil, false, nil
}

// ErrPagingIgnored reports a full page that came back without the
// paged-results control: the server may have ignored paging and cut the
// result, so the caller must treat the read as partial (delete nothing).
var ErrPagingIgnored = errors.New("ldapwire: server answered a full page without the paged-results control; result may be incomplete")
