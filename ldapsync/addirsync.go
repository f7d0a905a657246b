package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// change_tracking = "dirsync": the DirSync control (1.2.840.113556.1.4.841) with a stored
// cookie. An incremental DirSync answer holds only the attributes that changed (a cleared one
// comes back without values), objectGUID, and deleted objects with isDeleted. Rather than merge
// partial attribute sets into resources whose raw attributes the cache does not keep, a pass
// re-reads each changed object by GUID with the same attributes, filter and range retrieval
// as any other read: a partial set can then never leave a stale value behind. Deletions come
// from isDeleted. An account that is not a domain admin needs the object-security flag; the
// pass adds it when the server refuses the search without it, and remembers it.

// dirSyncStart returns a cookie for "now": an initial DirSync whose filter matches no object
// returns the DC's current position without sending the directory.
func (p *pass) dirSyncStart(ctx context.Context, dc dcInfo) ([]byte, int64, error) {
	return p.dirSync(ctx, dc.defaultNC, "(&(objectClass=user)(objectClass=group)(!(objectClass=*)))", []string{"objectGUID"}, 0, nil,
		func(*ldap.Entry) error { return nil })
}

// dirSyncDelta reads what changed since ad.DirSync and moves the cookie in ad.
func (p *pass) dirSyncDelta(ctx context.Context, ad *adMark, dc dcInfo) error {
	changed := map[string]struct{}{}
	var deleted []string
	filter := "(|" + p.s.cfg.Users.Filter + p.s.cfg.Groups.Filter + "(isDeleted=TRUE))"
	cookie, flags, err := p.dirSync(ctx, dc.defaultNC, filter, p.s.dirSyncAttrs(), ad.DirSyncFlags, ad.DirSync, func(e *ldap.Entry) error {
		g := e.GetRawAttributeValue("objectGUID")
		if len(g) != 16 {
			return nil
		}
		if strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE") {
			deleted = append(deleted, guidString(g))
		} else {
			changed[guidString(g)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Users first, so that groups changed in the same pass resolve members read in it.
	var rest []string
	for _, id := range slices.Sorted(mapsKeys(changed)) {
		found, err := p.readByGUID(ctx, scim.UserType, id)
		if err != nil {
			return err
		}
		if !found {
			rest = append(rest, id)
		}
	}
	for _, id := range rest {
		if _, err := p.readByGUID(ctx, scim.GroupType, id); err != nil {
			return err
		}
	}
	if err := p.deleteIDs(ctx, deleted); err != nil {
		return err
	}
	ad.DirSync, ad.DirSyncFlags = cookie, flags
	return nil
}

func mapsKeys(m map[string]struct{}) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// dirSyncAttrs are the attributes whose changes matter: everything users and groups read,
// without range options.
func (s *Syncer) dirSyncAttrs() []string {
	var out []string
	for _, a := range append(append([]string{}, s.uattrs...), s.gattrs...) {
		a, _, _ = strings.Cut(a, ";")
		out = append(out, a)
	}
	return dedupFold(append(out, "isDeleted"))
}

// dirSync runs DirSync searches from cookie until the server has no more data, calling fn for
// every entry, and returns the last cookie and the flags it used.
func (p *pass) dirSync(ctx context.Context, base, filter string, attrs []string, flags int64, cookie []byte, fn func(*ldap.Entry) error) ([]byte, int64, error) {
	for sent := 0; ; {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs,
			[]ldap.Control{ldap.NewRequestControlDirSync(flags, 0, cookie)})
		var done []ldap.Control
		err := p.s.stream(ctx, p.conn.SearchAsync, req, func(resp ldap.Response) error {
			if e := resp.Entry(); e != nil {
				sent++
				return fn(e)
			}
			if ref := resp.Referral(); ref != "" {
				return &partialError{why: "the DirSync search returned a referral to " + ref}
			}
			done = resp.Controls()
			return nil
		})
		if err != nil && sent == 0 && flags&ldap.DirSyncObjectSecurity == 0 &&
			ldap.IsErrorAnyOf(err, ldap.LDAPResultInsufficientAccessRights, ldap.LDAPResultUnwillingToPerform) {
			p.s.log.Info("DirSync refused without the object-security flag; retrying with it (the bind account is not privileged)")
			flags |= ldap.DirSyncObjectSecurity
			continue
		}
		if err != nil {
			return nil, flags, fmt.Errorf("DirSync search: %w", err)
		}
		c, _ := ldap.FindControl(done, ldap.ControlTypeDirSync).(*ldap.ControlDirSync)
		if c == nil {
			return nil, flags, &partialError{why: "the DirSync search ended without a DirSync control"}
		}
		if len(c.Cookie) > 0 {
			cookie = c.Cookie
		}
		if c.Flags == 0 { // no more data
			return cookie, flags, nil
		}
	}
}

// readByGUID re-reads the object with that id as a resource of typ, if it exists, matches
// typ's filter and lies under typ's base DN. It reports whether it did.
func (p *pass) readByGUID(ctx context.Context, typ scim.ResourceType, id string) (bool, error) {
	base, filter, attrs := p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()
	if typ == scim.GroupType {
		base, filter, attrs = p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrs()
	}
	conn, err := p.lookupConn(ctx)
	if err != nil {
		return false, classify(fmt.Errorf("re-reading %s: %w", id, err))
	}
	res, err := conn.Search(ldap.NewSearchRequest("<GUID="+id+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		filter, attrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return false, nil
	}
	if err != nil {
		return false, classify(fmt.Errorf("re-reading %s: %w", id, err))
	}
	if len(res.Entries) == 0 || !under(res.Entries[0].DN, base) {
		return false, nil
	}
	e := res.Entries[0]
	return true, p.read(ctx, typ, e.DN, ldapEntry{e})
}

// under reports whether entry lies at or below base.
func under(entry, base string) bool {
	e, b := dn.Normalize(entry), dn.Normalize(base)
	return e == b || strings.HasSuffix(e, ","+b)
}
