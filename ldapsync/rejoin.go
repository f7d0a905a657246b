package ldapsync

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/ingest"
	"github.com/ldapscim/ldapscim/scim"
)

// A user or group that a delta pass brings into the cache may already be listed by groups, and
// named as manager by users, that the delta does not read, because the directory did not change
// them:
//
//   - an account disabled under a users filter that leaves disabled accounts out, and enabled
//     again (leave of absence, rehire): its groups kept listing it all along;
//   - an account created outside the users' base, added to its groups, then moved in (AD
//     keeps a moved member's DN current without writing the group);
//   - on OpenLDAP, a group listing a DN before the entry exists.
//
// A full pass finds those memberships, since it reads every group; a delta left them out until
// the next one. So at the end of a delta, for each resource new to the cache, one search of the
// groups' base finds the groups that list it, and each such group the pass did not read gets
// the member through a member edit: O(1) writes, however big the group. For a new user, one
// more search finds the users that name it as manager, and reads them again. That is two
// indexed searches a newcomer (paged: a manager may have more reports than a page), proportional
// to the change; above rejoinLimit newcomers the searches would cost more than a full pass, so
// the next pass is made a full one instead.

// rejoinLimit is how many resources new to the cache a delta looks up.
var rejoinLimit = 1000

// newcomer is a resource a delta read that the cache did not hold.
type newcomer struct {
	id, dn, display, uid string
	typ                  scim.ResourceType
}

// noteNewcomer records the resource of a delta's entry when the cache does not hold it.
func (p *pass) noteNewcomer(ctx context.Context, r *scim.Resource, entryDN string, e attrGetter) error {
	if p.full || len(p.newcomers) > rejoinLimit {
		return nil
	}
	if _, err := p.s.store.Ref(ctx, r.ID); !isNotFound(err) {
		return err
	}
	nc := newcomer{id: r.ID, dn: entryDN, display: displayOf(r), typ: r.Type}
	if uids := e.Get("uid"); r.Type == scim.UserType && len(uids) > 0 {
		nc.uid = str(uids[0])
	}
	p.newcomers = append(p.newcomers, nc)
	return nil
}

// rejoin adds the newcomers of a delta to the groups that list them and reads again the
// users that name them as manager (see above). Groups the pass read are left alone: their
// read is the directory's word.
func (p *pass) rejoin(ctx context.Context, edits ingest.Edits) error {
	if len(p.newcomers) == 0 {
		return nil
	}
	if len(p.newcomers) > rejoinLimit {
		reason := fmt.Sprintf("a delta brought more than %d users and groups into the cache; the groups that already listed them are read by a full pass", rejoinLimit)
		p.s.log.Info("the next pass is a full one", "why", reason)
		p.s.setFullMarker(ctx, reason)
		return nil
	}
	done := map[string]bool{}
	for _, nc := range p.newcomers {
		if done[nc.id] {
			continue
		}
		done[nc.id] = true
		if err := p.joinListingGroups(ctx, nc, edits); err != nil {
			return err
		}
		if nc.typ == scim.UserType {
			if err := p.readReportsOf(ctx, nc); err != nil {
				return err
			}
		}
	}
	return nil
}

// joinListingGroups adds nc to the cached groups, not read in this pass, that list it.
func (p *pass) joinListingGroups(ctx context.Context, nc newcomer, edits ingest.Edits) error {
	var or strings.Builder
	for _, a := range p.s.cfg.Groups.MemberAttributes {
		fmt.Fprintf(&or, "(%s=%s)", a, ldap.EscapeFilter(nc.dn))
	}
	if nc.uid != "" {
		for _, a := range p.s.cfg.Groups.MemberUIDAttributes {
			fmt.Fprintf(&or, "(%s=%s)", a, ldap.EscapeFilter(nc.uid))
		}
	}
	if or.Len() == 0 {
		return nil
	}
	var listing []*ldap.Entry
	req := ldap.NewSearchRequest(p.s.cfg.Groups.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&"+p.s.cfg.Groups.Filter+"(|"+or.String()+"))", p.s.idAttrs(), p.s.searchControls())
	if err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error { listing = append(listing, e); return nil }); err != nil {
		return classify(fmt.Errorf("looking for the groups that list %q: %w", nc.dn, err))
	}
	for _, e := range listing {
		gid, ok := p.s.idOf(ldapEntry{e})
		if !ok || gid == nc.id || p.wasRead(gid) {
			continue
		}
		ref, err := p.s.store.Ref(ctx, gid)
		if isNotFound(err) || (err == nil && ref.Type != scim.GroupType) {
			continue // not ours: out of scope, or skipped
		}
		if err != nil {
			return err
		}
		edits.Set(gid, scim.Member{Value: nc.id, Type: nc.typ, Display: nc.display})
		p.sum.Rejoined++
		p.s.log.Debug("a newcomer joins a group that listed it", "dn", nc.dn, "group", e.DN)
	}
	return nil
}

// readReportsOf reads again the users, not read in this pass, that name nc as manager.
func (p *pass) readReportsOf(ctx context.Context, nc newcomer) error {
	attrs := p.s.users.managerSources()
	if len(attrs) == 0 {
		return nil
	}
	var or strings.Builder
	for _, a := range attrs {
		fmt.Fprintf(&or, "(%s=%s)", a, ldap.EscapeFilter(nc.dn))
	}
	// Collected first, read after: reading one may look a DN up, and the search must be over.
	var reports []*ldap.Entry
	req := ldap.NewSearchRequest(p.s.cfg.Users.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		"(&"+p.s.cfg.Users.Filter+"(|"+or.String()+"))", p.s.userAttrs(), p.s.searchControls())
	if err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error { reports = append(reports, e); return nil }); err != nil {
		return classify(fmt.Errorf("looking for the users whose manager is %q: %w", nc.dn, err))
	}
	maxMod := p.maxMod // these entries' timestamps say nothing about the others (readNewUser)
	defer func() { p.maxMod = maxMod }()
	for _, e := range reports {
		id, ok := p.s.idOf(ldapEntry{e})
		if !ok || p.wasRead(id) {
			continue
		}
		if err := p.read(ctx, scim.UserType, e.DN, ldapEntry{e}); err != nil {
			return err
		}
	}
	return nil
}

// idAttrs is the attribute that holds an entry's id (idOf).
func (s *Syncer) idAttrs() []string {
	if s.cfg.Dialect == DialectActiveDirectory {
		return []string{"objectGUID"}
	}
	return []string{"entryUUID"}
}

// managerSources are the LDAP attributes the users' manager is read from.
func (m *mapping) managerSources() []string {
	for i := range m.fields {
		if f := &m.fields[i]; f.Schema != "" && (f.Raw == managerPath || f.Attr == "manager") {
			return f.sources
		}
	}
	return nil
}
