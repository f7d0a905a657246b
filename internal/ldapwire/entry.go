package ldapwire

import (
	"strconv"
	"strings"
)

// Attr is one attribute of an Entry. Name is the attribute description as the
// server sent it, options included (e.g. "member;range=0-1499").
type Attr struct {
	Name   []byte
	Values [][]byte
}

// Entry is one search result entry. DN, names and values alias the
// connection's read buffer and the Entry itself is reused: they are valid only
// during the callback that received them. Use Clone to keep a copy.
type Entry struct {
	DN    []byte
	Attrs []Attr
	// owned: DN, names and values are in a message buffer the connection will never reuse (a
	// message bigger than bigKeep), so Clone need not copy the bytes, only the slices that
	// point at them. A group of a million members is one such message of about 50 MB.
	owned bool
}

// Get returns the values of the attribute whose description equals name,
// ignoring ASCII case, or nil. It does not match descriptions with options:
// Get("member") does not see "member;range=0-1499"; use GetRange for that.
func (e *Entry) Get(name string) [][]byte {
	for i := range e.Attrs {
		if equalFold(e.Attrs[i].Name, name) {
			return e.Attrs[i].Values
		}
	}
	return nil
}

// RangeEnd is the high bound GetRange reports for the last chunk of a ranged
// attribute ("member;range=1500-*").
const RangeEnd = -1

// GetRange finds an Active Directory range-retrieval chunk of attribute name,
// sent as "name;range=low-high" (high "*" is reported as RangeEnd). ok is
// false when there is no such attribute; the caller then uses Get, since the
// server returned the whole attribute (or nothing). When ok and high is not
// RangeEnd, more values exist: ask for "name;range=<high+1>-*".
func (e *Entry) GetRange(name string) (values [][]byte, low, high int, ok bool) {
	for i := range e.Attrs {
		a := &e.Attrs[i]
		if len(a.Name) <= len(name) || a.Name[len(name)] != ';' || !equalFold(a.Name[:len(name)], name) {
			continue
		}
		if low, high, ok = parseRangeOption(string(a.Name[len(name)+1:])); ok {
			return a.Values, low, high, true
		}
	}
	return nil, 0, 0, false
}

// parseRangeOption finds "range=low-high" among ';'-separated options.
func parseRangeOption(opts string) (low, high int, ok bool) {
	for opt := range strings.SplitSeq(opts, ";") {
		if len(opt) < 6 || !strings.EqualFold(opt[:6], "range=") {
			continue
		}
		lo, hi, found := strings.Cut(opt[6:], "-")
		if !found {
			return 0, 0, false
		}
		l, err := strconv.Atoi(lo)
		if err != nil || l < 0 {
			return 0, 0, false
		}
		if hi == "*" {
			return l, RangeEnd, true
		}
		h, err := strconv.Atoi(hi)
		if err != nil || h < l {
			return 0, 0, false
		}
		return l, h, true
	}
	return 0, 0, false
}

// Clone returns a deep copy of e that stays valid after the callback returns.
func (e *Entry) Clone() *Entry {
	size := len(e.DN)
	nvals := 0
	for _, a := range e.Attrs {
		size += len(a.Name)
		nvals += len(a.Values)
		for _, v := range a.Values {
			size += len(v)
		}
	}
	// One backing array for all bytes and one for all value headers.
	var buf []byte
	if !e.owned {
		buf = make([]byte, 0, size)
	}
	vals := make([][]byte, 0, nvals)
	take := func(b []byte) []byte {
		if e.owned {
			return b[:len(b):len(b)]
		}
		start := len(buf)
		buf = append(buf, b...)
		return buf[start:len(buf):len(buf)]
	}
	c := &Entry{DN: take(e.DN), Attrs: make([]Attr, len(e.Attrs)), owned: e.owned}
	for i, a := range e.Attrs {
		start := len(vals)
		for _, v := range a.Values {
			vals = append(vals, take(v))
		}
		c.Attrs[i] = Attr{Name: take(a.Name), Values: vals[start:len(vals):len(vals)]}
	}
	return c
}

// equalFold reports whether b equals s ignoring ASCII case, without
// allocating. Attribute descriptions are ASCII (RFC 4512 section 2.5).
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || x|0x20 < 'a' || x|0x20 > 'z' {
			return false
		}
	}
	return true
}

// decodeEntry fills e from the content of a SearchResultEntry, reusing e's
// slices:
//
//	SearchResultEntry ::= [APPLICATION 4] SEQUENCE {
//	     objectName      LDAPDN,
//	     attributes      PartialAttributeList }
//	PartialAttributeList ::= SEQUENCE OF partialAttribute PartialAttribute
//	PartialAttribute ::= SEQUENCE { type AttributeDescription, vals SET OF value AttributeValue }
func decodeEntry(body []byte, e *Entry) error {
	dn, rest, err := expect(body, tagOctetString)
	if err != nil {
		return err
	}
	list, _, err := expect(rest, tagSequence)
	if err != nil {
		return err
	}
	e.DN = dn
	e.Attrs = e.Attrs[:0]
	for len(list) > 0 {
		var pa []byte
		if pa, list, err = expect(list, tagSequence); err != nil {
			return err
		}
		if err = e.appendAttr(pa); err != nil {
			return err
		}
	}
	return nil
}

// keepValues is the most value slots a reused Entry keeps between entries: a group of a
// million members would otherwise hold 24 MB of slice headers for the rest of the search.
const keepValues = 64 << 10

// release drops the slices of an entry that held more than keepValues values, and the
// reference to a buffer the connection gave up (owned), once its callback has returned.
func (e *Entry) release() {
	n := 0
	for _, a := range e.Attrs {
		n += cap(a.Values)
	}
	if n > keepValues || e.owned {
		*e = Entry{}
	}
}

// appendAttr decodes one PartialAttribute into the next slot of e.Attrs,
// reusing the slot's Values backing array from a previous entry.
func (e *Entry) appendAttr(pa []byte) error {
	name, rest, err := expect(pa, tagOctetString)
	if err != nil {
		return err
	}
	set, _, err := expect(rest, tagSet)
	if err != nil {
		return err
	}
	n := len(e.Attrs)
	if n < cap(e.Attrs) {
		e.Attrs = e.Attrs[:n+1]
	} else {
		e.Attrs = append(e.Attrs, Attr{})
	}
	a := &e.Attrs[n]
	a.Name = name
	a.Values = a.Values[:0]
	for len(set) > 0 {
		var v []byte
		if v, set, err = expect(set, tagOctetString); err != nil {
			return err
		}
		a.Values = append(a.Values, v)
	}
	return nil
}
