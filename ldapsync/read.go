package ldapsync

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/ldapwire"
	"github.com/ldapscim/ldapscim/scim"
)

// idOf returns the entry's immutable id: entryUUID (OpenLDAP, 389-ds) or objectGUID rendered as
// a canonical UUID (Active Directory; the first three groups are little-endian).
func (s *Syncer) idOf(e attrGetter) (string, bool) {
	if s.cfg.Dialect == DialectActiveDirectory {
		v := e.Get("objectGUID")
		if len(v) == 0 || len(v[0]) != 16 {
			return "", false
		}
		return guidString(v[0]), true
	}
	v := e.Get("entryUUID")
	if len(v) == 0 || len(v[0]) == 0 {
		return "", false
	}
	return strings.ToLower(string(v[0])), true
}

func guidString(g []byte) string {
	b := []byte{g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]}
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// userAttrs and groupAttrs are the LDAP attributes a pass asks for.
func (s *Syncer) userAttrs() []string  { return s.uattrs }
func (s *Syncer) groupAttrs() []string { return s.gattrs }

// groupAttrsWithoutMembers is groupAttrs without the attributes that list members.
func (s *Syncer) groupAttrsWithoutMembers() []string {
	members := append(append([]string{}, s.cfg.Groups.MemberAttributes...), s.cfg.Groups.MemberUIDAttributes...)
	out := make([]string, 0, len(s.gattrs))
	for _, a := range s.gattrs {
		if !containsFold(members, a) {
			out = append(out, a)
		}
	}
	return out
}

func dedupFold(in []string) []string {
	var out []string
	for _, a := range in {
		if !slices.ContainsFunc(out, func(b string) bool { return strings.EqualFold(a, b) }) {
			out = append(out, a)
		}
	}
	return out
}

// readAll reads users, then groups, with paged searches.
func (p *pass) readAll(ctx context.Context) error {
	if err := p.readType(ctx, scim.UserType, p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()); err != nil {
		return err
	}
	// Managers are users: every user is read now, so resolve them before reading groups.
	if err := p.resolvePending(ctx); err != nil {
		return err
	}
	// Whether the users not read will be held is known now, before any group is resolved.
	if err := p.decideUserHolds(ctx); err != nil {
		return err
	}
	return p.readType(ctx, scim.GroupType, p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrs())
}

func (p *pass) readType(ctx context.Context, typ scim.ResourceType, base, filter string, attrs []string) error {
	if err := p.search(ctx, typ, base, ldap.ScopeWholeSubtree, filter, attrs); err != nil {
		return fmt.Errorf("reading %ss under %q: %w", strings.ToLower(string(typ)), base, err)
	}
	return nil
}

// search reads the entries of one search into the pass, through ldapwire where it can.
func (p *pass) search(ctx context.Context, typ scim.ResourceType, base string, scope int, filter string, attrs []string) error {
	if p.s.cfg.BindDN == "" && strings.HasPrefix(p.s.cfg.URL, "ldapi:") {
		// SASL EXTERNAL needs go-ldap; ldapwire only does simple binds.
		req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, p.s.searchControls())
		return p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
			return p.read(ctx, typ, e.DN, ldapEntry{e})
		})
	}
	return p.wireSearch(ctx, typ, base, scope, filter, attrs)
}

// wireSearch is the bulk read: a paged search through ldapwire, which decodes entries without
// building go-ldap's packet trees (most of a full pass's time is decoding).
func (p *pass) wireSearch(ctx context.Context, typ scim.ResourceType, base string, scope int, filter string, attrs []string) error {
	if p.wire == nil {
		tlsCfg, err := p.s.cfg.tlsConfig()
		if err != nil {
			return err
		}
		c, err := ldapwire.Dial(ctx, ldapwire.DialOptions{URL: p.s.cfg.URL, TLSConfig: tlsCfg, StartTLS: p.s.cfg.StartTLS, Timeout: p.s.cfg.Timeout.D()})
		if err != nil {
			return classify(fmt.Errorf("connecting to %s: %w%s", redactURL(p.s.cfg.URL), err, tlsHint(p.s.cfg.URL, err)))
		}
		if p.s.cfg.BindDN != "" {
			if err := c.Bind(ctx, p.s.cfg.BindDN, p.s.cfg.BindPassword.Reveal()); err != nil {
				c.Close()
				return bindError(p.s.cfg.BindDN, err)
			}
		}
		p.wire = c
	}
	proc := p.startProcessing(ctx, typ)
	res, err := p.wire.Search(ctx, ldapwire.SearchRequest{
		BaseDN: base, Scope: scope, Filter: filter, Attributes: attrs, PageSize: p.s.cfg.PageSize,
		Controls: p.s.searchControls(),
	}, proc.add)
	if perr := proc.finish(); perr != nil && (err == nil || errors.Is(err, perr)) {
		return perr
	}
	if err != nil {
		var pe *partialError
		if errors.As(err, &pe) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if errors.Is(err, ldapwire.ErrPagingIgnored) {
			return &partialError{why: "the server ignored the paging control"}
		}
		var le *ldap.Error
		if errors.As(err, &le) {
			return classify(err)
		}
		return err
	}
	if len(res.Referrals) > 0 {
		return &partialError{why: fmt.Sprintf("the server returned %d referral(s), e.g. %s", len(res.Referrals), res.Referrals[0])}
	}
	return nil
}

// processor hands entries from the bulk reader to the pass on a second goroutine, in order, so
// that decoding the next entries from the socket overlaps with digesting, normalizing and
// recording the previous ones. Entries are cloned (the reader reuses its buffers) and sent in
// batches to keep channel traffic low. All pass state is touched by the processing goroutine
// only.
type processor struct {
	ch     chan []*ldapwire.Entry
	done   chan struct{}
	batch  []*ldapwire.Entry
	failed atomic.Pointer[error] // the first error of the processing goroutine
}

const processBatch = 256

func (p *pass) startProcessing(ctx context.Context, typ scim.ResourceType) *processor {
	// 16 batches (4k entries) let the reader run ahead of the processing.
	pr := &processor{ch: make(chan []*ldapwire.Entry, 16), done: make(chan struct{}),
		batch: make([]*ldapwire.Entry, 0, processBatch)}
	type fetched struct {
		es  []*ldapwire.Entry
		src map[string][]byte
	}
	// A full pass compares users with their stored source records: a third goroutine fetches
	// them for a batch (one cache transaction) while the previous batch is processed.
	in := make(chan fetched, 2)
	go func() {
		defer close(in)
		for b := range pr.ch {
			var src map[string][]byte
			if pr.failed.Load() == nil && p.full && typ == scim.UserType && !p.noSources {
				var err error
				if src, err = p.fetchSources(ctx, b); err != nil {
					pr.failed.Store(&err)
				}
			}
			in <- fetched{b, src}
		}
	}()
	go func() {
		defer close(pr.done)
		for b := range in {
			if pr.failed.Load() != nil {
				continue // keep draining so the reader never blocks
			}
			p.srcBatch = b.src
			for _, e := range b.es {
				if err := p.read(ctx, typ, string(e.DN), e); err != nil {
					pr.failed.Store(&err)
					break
				}
			}
			p.srcBatch = nil
		}
	}()
	return pr
}

// add is the reader's callback: it stops the search once processing has failed.
func (pr *processor) add(e *ldapwire.Entry) error {
	if err := pr.failed.Load(); err != nil {
		return *err
	}
	pr.batch = append(pr.batch, e.Clone())
	if len(pr.batch) == processBatch {
		pr.ch <- pr.batch
		pr.batch = make([]*ldapwire.Entry, 0, processBatch)
	}
	return nil
}

// finish hands over the last batch, waits until every entry is processed and returns the
// processing error, if any.
func (pr *processor) finish() error {
	if len(pr.batch) > 0 {
		pr.ch <- pr.batch
	}
	close(pr.ch)
	<-pr.done
	if err := pr.failed.Load(); err != nil {
		return *err
	}
	return nil
}
