package ldapwire

import (
	"context"
	"errors"
	"fmt"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// SearchRequest describes one search. Scope, DerefAliases, SizeLimit and
// TimeLimit have RFC 4511 meanings (use ldap.ScopeWholeSubtree etc.).
type SearchRequest struct {
	BaseDN       string
	Scope        int
	DerefAliases int // 0: ldap.NeverDerefAliases
	Filter       string
	Attributes   []string // nil: all user attributes
	// PageSize > 0 adds the RFC 2696 paged-results control and loops over
	// pages until the server returns an empty cookie. 0 sends a plain search.
	PageSize  int
	SizeLimit int
	TimeLimit int // seconds
	// Controls are extra request controls sent with every page (e.g. AD's
	// domain scope). They must not include a paging control.
	Controls []ldap.Control
}

// SearchResult summarises a search: entries passed to the callback, pages
// requested and every continuation reference the server returned.
type SearchResult struct {
	Entries   int
	Referrals []string
	Pages     int
}

// Search runs r and calls fn for every entry, in the order the server sends
// them. The *Entry and everything it points to are reused: valid only until
// fn returns.
//
// Errors: a non-success result (sizeLimitExceeded, busy, referral, ...) is
// an *ldap.Error with that ResultCode, returned together with the counts so
// far; a full page without the paging control is ErrPagingIgnored; a network
// or decoding failure is an *ldap.Error with ldap.ErrorNetwork or
// ldap.ErrorMalformedPacket. Any error means the read is partial. If ctx is
// cancelled the search is abandoned, the Conn closed and ctx's error
// returned (wrapped). If fn returns an error, Search stops calling fn, reads
// and discards the rest of the current page, asks the server to release the
// paged search, and returns fn's error; the Conn stays usable.
func (c *Conn) Search(ctx context.Context, r SearchRequest, fn func(*Entry) error) (SearchResult, error) {
	var res SearchResult
	if ldap.FindControl(r.Controls, ldap.ControlTypePaging) != nil {
		return res, errors.New("ldapwire: SearchRequest.Controls must not contain a paging control; set PageSize")
	}
	filter, err := ldap.CompileFilter(r.Filter)
	if err != nil {
		return res, err
	}
	end, err := c.begin(ctx)
	if err != nil {
		return res, err
	}
	defer end()

	var cookie []byte
	for {
		p, err := c.searchPage(ctx, &r, filter, cookie, &res, fn)
		if err != nil {
			return res, err
		}
		if p.cbErr != nil {
			if r.PageSize > 0 && len(p.cookie) > 0 {
				err = c.releasePaging(ctx, &r, filter, p.cookie)
			}
			return res, errors.Join(p.cbErr, err)
		}
		if more, err := continuePaging(&r, p, res.Pages); !more {
			return res, err
		}
		cookie = p.cookie
	}
}

// continuePaging decides from one page's SearchResultDone whether to ask for
// another page. A full page without the paging control is an error: the
// server may have ignored paging and truncated the result.
func continuePaging(r *SearchRequest, p page, pages int) (bool, error) {
	switch {
	case r.PageSize <= 0:
		return false, nil
	case !p.paged && p.entries >= r.PageSize:
		return false, fmt.Errorf("%w (page %d had %d entries)", ErrPagingIgnored, pages, p.entries)
	case !p.paged:
		return false, nil
	}
	return len(p.cookie) > 0, nil
}

// page is what one SearchResultDone told us.
type page struct {
	entries int
	paged   bool   // the paging control was present
	cookie  []byte // copied out of the read buffer
	cbErr   error  // fn's error; the page was drained after it
}

// searchPage sends one search request and reads its responses up to and
// including SearchResultDone.
func (c *Conn) searchPage(ctx context.Context, r *SearchRequest, filter *ber.Packet, cookie []byte, res *SearchResult, fn func(*Entry) error) (page, error) {
	var p page
	id, err := c.send(ctx, encodeSearch(r, filter), pageControls(r, cookie))
	if err != nil {
		return p, err
	}
	res.Pages++
	c.inflight = id
	defer func() { c.inflight = 0 }()
	for {
		m, err := c.read(ctx, id)
		if err != nil {
			return p, err
		}
		switch m.op {
		case tagSearchEntry:
			c.entry.owned = c.rd.owned
			if err := decodeEntry(m.body, &c.entry); err != nil {
				return p, c.fail(ctx, malformed("SearchResultEntry"))
			}
			p.entries++
			if p.cbErr == nil {
				res.Entries++
				p.cbErr = fn(&c.entry)
			}
			c.entry.release()
			// The page may already sit in our buffer, where the deadline
			// set on cancel cannot reach; ctx.Err is an atomic load.
			if err := ctx.Err(); err != nil {
				return p, c.fail(ctx, err)
			}
		case tagSearchReference:
			uris, err := decodeURIs(m.body)
			if err != nil {
				return p, c.fail(ctx, malformed("SearchResultReference"))
			}
			res.Referrals = append(res.Referrals, uris...)
		case tagIntermediate:
			// Allowed in a search response (RFC 4511 4.13); nothing we use.
		case tagSearchDone:
			return c.searchDone(ctx, m, p, res)
		default:
			return p, c.fail(ctx, malformed(fmt.Sprintf("unexpected tag 0x%02x in search response", m.op)))
		}
	}
}

// searchDone decodes SearchResultDone: result code and the paging cookie.
func (c *Conn) searchDone(ctx context.Context, m message, p page, res *SearchResult) (page, error) {
	r, _, err := decodeResult(m.body)
	if err != nil {
		return p, c.fail(ctx, malformed("SearchResultDone"))
	}
	if p.cookie, p.paged, err = pagedCookie(m.controls); err != nil {
		return p, c.fail(ctx, malformed("paged results control"))
	}
	res.Referrals = append(res.Referrals, r.referrals...)
	return p, r.err("search")
}

// releasePaging tells the server we will not fetch more pages (RFC 2696:
// page size 0 with the last cookie) so it can free the paged search state.
func (c *Conn) releasePaging(ctx context.Context, r *SearchRequest, filter *ber.Packet, cookie []byte) error {
	rr := *r
	rr.PageSize = 0
	ctrls := append(append([]ldap.Control(nil), r.Controls...), &ldap.ControlPaging{PagingSize: 0, Cookie: cookie})
	id, err := c.send(ctx, encodeSearch(&rr, filter), ctrls)
	if err != nil {
		return err
	}
	for {
		m, err := c.read(ctx, id)
		if err != nil {
			return err
		}
		if m.op == tagSearchDone {
			return nil
		}
	}
}

// pageControls returns the request controls for one page.
func pageControls(r *SearchRequest, cookie []byte) []ldap.Control {
	if r.PageSize <= 0 {
		return r.Controls
	}
	ctrls := make([]ldap.Control, 0, len(r.Controls)+1)
	ctrls = append(ctrls, r.Controls...)
	return append(ctrls, &ldap.ControlPaging{PagingSize: uint32(r.PageSize), Cookie: cookie})
}

// encodeSearch builds the SearchRequest protocolOp (RFC 4511 4.5.1).
func encodeSearch(r *SearchRequest, filter *ber.Packet) *ber.Packet {
	op := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationSearchRequest, nil, "")
	op.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, r.BaseDN, ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(r.Scope), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, int64(r.DerefAliases), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(r.SizeLimit), ""))
	op.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(r.TimeLimit), ""))
	op.AppendChild(ber.NewBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, false, ""))
	op.AppendChild(filter)
	attrs := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "")
	for _, a := range r.Attributes {
		attrs.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, a, ""))
	}
	op.AppendChild(attrs)
	return op
}
