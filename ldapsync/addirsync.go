package ldapsync

import (
	"context"
	"fmt"
	"maps"
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
//
// Offboarding in AD often takes an account out of scope instead of deleting it: moved to an OU
// outside the users' base, or disabled under a users filter that leaves disabled accounts out.
// DirSync reports such a change only when asked in the right terms (Samba 4.17, measured;
// docs/directories.md): a move changes the object's name and nothing the pass reads, so "name"
// is among the attributes asked for; a user disabled under an enabled-only filter no longer
// matches that filter, so the filter also takes every user and group (dirSyncFilter). A changed
// object that the cache holds and that a read by GUID now finds in neither scope left the scope
// and is deleted as a full pass would, through the threshold (deleteIDs). The evidence is a
// current read of that object on the DC that reported it, never a comparison of ranges.
func (p *pass) dirSyncDelta(ctx context.Context, ad *adMark, dc dcInfo) error {
	changed := map[string]string{} // id → the DN the DirSync answer gave
	var deleted, named []string
	cookie, flags, err := p.dirSync(ctx, dc.defaultNC, p.s.dirSyncFilter(), p.s.dirSyncAttrs(), ad.DirSyncFlags, ad.DirSync, func(e *ldap.Entry) error {
		g := e.GetRawAttributeValue("objectGUID")
		if len(g) != 16 {
			return nil
		}
		if strings.EqualFold(e.GetAttributeValue("isDeleted"), "TRUE") {
			deleted = append(deleted, guidString(g))
		} else {
			changed[guidString(g)] = e.DN
			if len(e.GetRawAttributeValues("name")) > 0 {
				named = append(named, guidString(g))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	exits, err := p.readChanged(ctx, changed)
	if err != nil {
		return err
	}
	containers, err := p.dirSyncContainers(ctx, named)
	if err != nil {
		return err
	}
	if err := p.followContainers(ctx, containers); err != nil {
		return err
	}
	if err := p.deleteIDs(ctx, exits); err != nil {
		return err
	}
	if err := p.deleteIDs(ctx, deleted); err != nil {
		return err
	}
	ad.DirSync, ad.DirSyncFlags = cookie, flags
	return nil
}

// dirSyncContainers returns the DNs of the OUs and containers among the objects DirSync reported
// with a name (moved, renamed or created), which readChanged did not read as users or groups. A
// move changes the name of the OU only, not of the users under it, so DirSync reports the OU
// alone and the pass follows it (subtrees.go). DirSync sends only the attributes that changed,
// without objectClass: each such object costs one base read by GUID, on the DC that reported it.
func (p *pass) dirSyncContainers(ctx context.Context, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		if p.wasRead(id) {
			continue
		}
		ref, err := p.s.store.Ref(ctx, id)
		switch {
		case err == nil && (ref.Type == scim.UserType || ref.Type == scim.GroupType):
			continue
		case err != nil && !isNotFound(err):
			return nil, err
		}
		res, err := p.conn.Search(ldap.NewSearchRequest("<GUID="+id+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			adContainerFilter, []string{"1.1"}, nil))
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			continue
		}
		if err != nil {
			return nil, classify(fmt.Errorf("reading %s: %w", id, err))
		}
		if len(res.Entries) == 1 {
			out = append(out, res.Entries[0].DN)
		}
	}
	return out, nil
}

// readChanged re-reads the objects DirSync reported changed (id → DN) and returns the cached
// ones that are in neither scope now. The wide DirSync filter also reports objects that never
// were in scope (computers, accounts under CN=Users, disabled accounts): each costs one cache
// lookup, and a read only when the cache holds it or its DN lies under a scope's base. A cached
// object is read in its own type's scope only. Users go first, so that groups changed in the
// same pass resolve members read in it.
func (p *pass) readChanged(ctx context.Context, changed map[string]string) (exits []string, err error) {
	type todo struct {
		id              string
		cached          bool
		asUser, asGroup bool
	}
	var list []todo
	for _, id := range slices.Sorted(maps.Keys(changed)) {
		t := todo{id: id}
		ref, err := p.s.store.Ref(ctx, id)
		switch {
		case err == nil && (ref.Type == scim.UserType || ref.Type == scim.GroupType):
			t.cached, t.asUser, t.asGroup = true, ref.Type == scim.UserType, ref.Type == scim.GroupType
		case err != nil && !isNotFound(err):
			return nil, err
		default:
			entryDN := changed[id]
			t.asUser = entryDN == "" || under(entryDN, p.s.cfg.Users.BaseDN)
			t.asGroup = entryDN == "" || under(entryDN, p.s.cfg.Groups.BaseDN)
		}
		if t.asUser || t.asGroup {
			list = append(list, t)
		}
	}
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		rest := list[:0]
		for _, t := range list {
			if typ == scim.UserType && !t.asUser || typ == scim.GroupType && !t.asGroup {
				rest = append(rest, t)
				continue
			}
			found, err := p.readByGUID(ctx, typ, t.id)
			switch {
			case err != nil:
				return nil, err
			case found:
			case typ == scim.UserType && t.asGroup:
				rest = append(rest, t)
			case t.cached:
				exits = append(exits, t.id)
			}
		}
		list = rest
	}
	return exits, nil
}

// dirSyncAttrs are the attributes whose changes matter: everything users and groups read,
// without range options, and name, the attribute a move or rename changes (DirSync leaves out
// an object none of whose requested attributes changed, and a move changes none of the others).
func (s *Syncer) dirSyncAttrs() []string {
	var out []string
	for _, a := range append(append([]string{}, s.uattrs...), s.gattrs...) {
		a, _, _ = strings.Cut(a, ";")
		out = append(out, a)
	}
	return dedupFold(append(out, "name", "isDeleted"))
}

// dirSyncFilter is the DirSync search's filter. DirSync matches the filter against the object
// as it is now, so the users' and groups' filters alone would never report a user disabled
// under a filter that leaves disabled accounts out: every user and group is taken too. OUs and
// containers are taken for their moves (dirSyncContainers).
func (s *Syncer) dirSyncFilter() string {
	return "(|" + s.cfg.Users.Filter + s.cfg.Groups.Filter + "(objectClass=user)(objectClass=group)" + adContainerFilter + "(isDeleted=TRUE))"
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
// typ's filter and lies under typ's base DN. It reports whether it did. The read goes to
// p.conn, idle once the DirSync searches are done: the DC that reported the change, whose
// answer can decide a deletion (a DNS name may lead another connection to another DC).
func (p *pass) readByGUID(ctx context.Context, typ scim.ResourceType, id string) (bool, error) {
	base, filter, attrs := p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()
	if typ == scim.GroupType {
		base, filter, attrs = p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrs()
	}
	if p.s.guidRead != nil {
		p.s.guidRead(typ, id)
	}
	res, err := p.conn.Search(ldap.NewSearchRequest("<GUID="+id+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
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
