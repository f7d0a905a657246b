package ldapsync

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/ldapwire"
)

// Range retrieval. AD returns at most MaxValRange (1,500) values of an attribute per request,
// as "member;range=0-1499"; the rest must be asked for with "member;range=1500-*" and so on
// until a chunk ends in "-*". A gateway that reads only the first chunk silently drops every
// member past 1,500 and, worse, removes them from the cache. Samba ranges only when asked, so
// the step is configurable (range_step) and the tests ask for small ranges.

// rangeEnd is the high bound of the last chunk ("-*").
const rangeEnd = ldapwire.RangeEnd

// rangedEntry is an entry whose ranged attributes have been read to the end.
type rangedEntry struct {
	attrGetter
	full map[string][][]byte // lower-case attribute name → every value
}

func (e rangedEntry) Get(name string) [][]byte {
	if v, ok := e.full[strings.ToLower(name)]; ok {
		return v
	}
	return e.attrGetter.Get(name)
}

// adRanges returns e with every ranged attribute complete. It fetches the remaining chunks with
// base searches on the go-ldap connection (the bulk reader is mid-search). A chunk that cannot
// be read makes the read partial (invariant 4): the entry is not applied, nothing is deleted.
func (p *pass) adRanges(ctx context.Context, entryDN string, e attrGetter) (attrGetter, error) {
	chunks := rangedAttrs(e)
	if len(chunks) == 0 {
		return e, nil
	}
	full := make(map[string][][]byte, len(chunks))
	for _, c := range chunks {
		all := c.values
		for hi := c.high; hi != rangeEnd; {
			next, err := p.fetchRange(ctx, entryDN, c.name, hi+1)
			if err != nil {
				return nil, &partialError{why: fmt.Sprintf("range retrieval of %s of %q stopped after %d values: %v",
					c.name, entryDN, len(all), err)}
			}
			all = append(all, next.values...)
			hi = next.high
		}
		full[strings.ToLower(c.name)] = all
	}
	return rangedEntry{e, full}, nil
}

// rangeChunk is one "name;range=low-high" attribute of an entry.
type rangeChunk struct {
	name      string
	low, high int
	values    [][]byte
}

// rangedAttrs lists the entry's ranged attributes.
func rangedAttrs(e attrGetter) []rangeChunk {
	var out []rangeChunk
	add := func(desc string, vals [][]byte) {
		if name, lo, hi, ok := parseRanged(desc); ok {
			out = append(out, rangeChunk{name: name, low: lo, high: hi, values: vals})
		}
	}
	switch e := e.(type) {
	case *ldapwire.Entry:
		for i := range e.Attrs {
			if strings.IndexByte(string(e.Attrs[i].Name), ';') >= 0 {
				add(string(e.Attrs[i].Name), e.Attrs[i].Values)
			}
		}
	case ldapEntry:
		for _, a := range e.Attributes {
			if strings.IndexByte(a.Name, ';') >= 0 {
				add(a.Name, a.ByteValues)
			}
		}
	case rangedEntry:
		return nil
	}
	return out
}

// parseRanged splits "member;range=0-1499" into ("member", 0, 1499) and "member;range=1500-*"
// into ("member", 1500, rangeEnd).
func parseRanged(desc string) (name string, low, high int, ok bool) {
	name, opts, found := strings.Cut(desc, ";")
	if !found {
		return "", 0, 0, false
	}
	for _, opt := range strings.Split(opts, ";") {
		if len(opt) < 6 || !strings.EqualFold(opt[:6], "range=") {
			continue
		}
		lo, hi, found := strings.Cut(opt[6:], "-")
		l, err := strconv.Atoi(lo)
		if !found || err != nil || l < 0 {
			return "", 0, 0, false
		}
		if hi == "*" {
			return name, l, rangeEnd, true
		}
		h, err := strconv.Atoi(hi)
		if err != nil || h < l {
			return "", 0, 0, false
		}
		return name, l, h, true
	}
	return "", 0, 0, false
}

// fetchRange reads the chunk of attribute name that starts at low.
func (p *pass) fetchRange(ctx context.Context, entryDN, name string, low int) (rangeChunk, error) {
	if ctx.Err() != nil {
		return rangeChunk{}, ctx.Err()
	}
	if p.s.rangeFault != nil {
		if err := p.s.rangeFault(entryDN, low); err != nil {
			return rangeChunk{}, err
		}
	}
	want := fmt.Sprintf("%s;range=%d-*", name, low)
	if step := p.s.cfg.RangeStep; step > 0 {
		want = fmt.Sprintf("%s;range=%d-%d", name, low, low+step-1)
	}
	conn, err := p.lookupConn(ctx)
	if err != nil {
		return rangeChunk{}, err
	}
	res, err := conn.Search(ldap.NewSearchRequest(entryDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{want}, nil))
	if err != nil {
		return rangeChunk{}, err
	}
	if len(res.Entries) != 1 {
		return rangeChunk{}, fmt.Errorf("the entry is gone")
	}
	for _, c := range rangedAttrs(ldapEntry{res.Entries[0]}) {
		if strings.EqualFold(c.name, name) {
			if c.low != low {
				return rangeChunk{}, fmt.Errorf("asked for values from %d, got a chunk from %d", low, c.low)
			}
			return c, nil
		}
	}
	return rangeChunk{}, fmt.Errorf("the server returned no %s chunk (the attribute changed during the read?)", want)
}
