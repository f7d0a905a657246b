package ldapsync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"

	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// Moving or renaming a whole OU (a modrdn of an entry with children) changes the DN of every
// entry below it without writing any of them: their entryCSN, uSNChanged and DirSync state stay
// as they were, and only the OU itself changes. No delta read of users or groups sees it, so an
// OU moved out of the users' base (contractors offboarded, a site closed) left its users active
// in every target until the next full pass, and an OU moved in left its users out until then.
//
// So a delta also looks for the containers (entries that are neither users nor groups: OUs,
// AD containers) that changed since its watermark, anywhere in the naming context, since an OU
// moved out is outside the bases now, and follows each one (followContainers):
//
//   - under a type's base DN: its subtree is read with that type's filter and attributes
//     through the pass's usual read, skipping what the pass read already. Newcomers then get
//     the groups that already list them (rejoin.go);
//   - outside a type's base DN (and not above it): the cached resources of that type in its
//     subtree, by the type's filter, left the scope and are deleted as a full pass would delete
//     them, through the [safety] threshold and holds. The evidence is a current read showing
//     the entry under a container outside the type's base;
//   - the base itself, or a container above it (the naming context, say), is left alone:
//     nothing under the base moved relative to it.
//
// The cost is a read of each changed container's subtree, proportional to the change: a moved
// OU's size. An OU that changed for another reason (a description edit) costs the same read,
// which finds nothing to change.

// followContainers applies the moves or renames of the containers (their DNs now) to both types.
func (p *pass) followContainers(ctx context.Context, containers []string) error {
	if len(containers) == 0 {
		return nil
	}
	list := make([]container, len(containers))
	for i, c := range containers {
		list[i] = container{dn: c, norm: dn.Normalize(c)}
	}
	// Ancestors first, so that a container under one already followed is skipped.
	slices.SortFunc(list, func(a, b container) int { return len(a.norm) - len(b.norm) })
	for _, typ := range []scim.ResourceType{scim.UserType, scim.GroupType} {
		if err := p.followContainersOf(ctx, typ, list); err != nil {
			return err
		}
	}
	return nil
}

// container is a changed container's DN and its normalized form.
type container struct{ dn, norm string }

// below reports whether the normalized DN n lies at or below the normalized DN base.
func below(n, base string) bool { return n == base || strings.HasSuffix(n, ","+base) }

func (p *pass) followContainersOf(ctx context.Context, typ scim.ResourceType, containers []container) error {
	base, filter, attrs := p.s.cfg.Users.BaseDN, p.s.cfg.Users.Filter, p.s.userAttrs()
	if typ == scim.GroupType {
		base, filter, attrs = p.s.cfg.Groups.BaseDN, p.s.cfg.Groups.Filter, p.s.groupAttrs()
	}
	nbase := dn.Normalize(base)
	var done []string
	for _, ct := range containers {
		if below(nbase, ct.norm) || slices.ContainsFunc(done, func(d string) bool { return below(ct.norm, d) }) {
			continue
		}
		done = append(done, ct.norm)
		c := ct.dn
		var err error
		if below(ct.norm, nbase) {
			err = p.readSubtree(ctx, typ, c, filter, attrs)
		} else {
			err = p.leftWithSubtree(ctx, typ, c, filter)
		}
		if errors.Is(err, errContainerGone) {
			// Moved or deleted again since it was found: that change is past this pass's
			// watermark, and the next delta follows it.
			p.s.log.Info("a changed container is gone before its subtree could be read; the next pass follows it", "dn", c)
			continue
		}
		if err != nil {
			return fmt.Errorf("following the %ss under the changed container %q: %w", strings.ToLower(string(typ)), c, err)
		}
	}
	return nil
}

// errContainerGone means a changed container was no longer there when its subtree was read.
var errContainerGone = errors.New("the container is gone")

// gone turns the error of a subtree search that returned no entry because its base does not
// exist into errContainerGone.
func gone(err error, entries int) error {
	if entries == 0 && ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return errContainerGone
	}
	return err
}

// readSubtree reads into the pass the entries of typ under the container c, a container under
// typ's base DN that changed (moved in, or renamed), unless the pass read them already.
func (p *pass) readSubtree(ctx context.Context, typ scim.ResourceType, c, filter string, attrs []string) error {
	// These entries' timestamps say nothing about the entries the delta did not read (readNewUser).
	maxMod := p.maxMod
	defer func() { p.maxMod = maxMod }()
	n, seen := 0, 0
	req := ldap.NewSearchRequest(c, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, attrs, p.s.searchControls())
	err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		seen++
		if id, ok := p.s.idOf(ldapEntry{e}); ok && p.wasRead(id) {
			return nil
		}
		n++
		return p.read(ctx, typ, e.DN, ldapEntry{e})
	})
	if n > 0 {
		p.s.log.Info("read the entries under a container that changed (moved or renamed)", "type", typ, "container", c, "entries", n)
	}
	return gone(err, seen)
}

// leftWithSubtree marks for deletion the cached resources of typ under the container c, a
// container outside typ's base DN that changed (moved out): they left the scope.
func (p *pass) leftWithSubtree(ctx context.Context, typ scim.ResourceType, c, filter string) error {
	req := ldap.NewSearchRequest(c, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, p.s.idAttrs(), p.s.searchControls())
	var ids []string
	seen := 0
	err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
		seen++
		if id, ok := p.s.idOf(ldapEntry{e}); ok && !p.wasRead(id) && !p.core.Dels.Marked(id) {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return gone(err, seen)
	}
	n, err := p.markCached(ctx, typ, ids)
	if n > 0 {
		p.s.log.Info("entries left the scope with a container moved out of the base", "type", typ, "container", c, "entries", n)
	}
	return err
}

// syncreplContainers follows the containers whose entryCSN is past the previous cookies' CSN
// (changedContainers). Cookies with several CSNs (a multi-provider directory) are skipped, as
// pastSnapshot does: there is no single CSN to compare with.
func (p *pass) syncreplContainers(ctx context.Context, prev *watermark) error {
	csn, ok := olderCSN(prev.UsersCookie, prev.GroupsCookie)
	if !ok {
		return nil
	}
	c := ldap.EscapeFilter(csn)
	return p.changedContainers(ctx, "(entryCSN>="+c+")(!(entryCSN="+c+"))")
}

// changedContainers follows the containers that cond (a filter's terms: the delta's change
// condition) matches: the entries with children that are neither users nor groups, in the
// naming contexts that hold the bases. back-mdb computes hasSubordinates in a filter; a server
// that does not matches nothing, and such moves wait for the full pass as before.
func (p *pass) changedContainers(ctx context.Context, cond string) error {
	ncs, err := p.s.namingContexts(p.conn)
	if err != nil {
		return err
	}
	filter := "(&" + cond + "(hasSubordinates=TRUE)(!" + p.s.cfg.Users.Filter + ")(!" + p.s.cfg.Groups.Filter + "))"
	var containers []string
	for _, nc := range ncs {
		req := ldap.NewSearchRequest(nc, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false, filter, []string{"modifyTimestamp"}, nil)
		err := p.s.pagedSearch(ctx, p.conn, req, func(e *ldap.Entry) error {
			containers = append(containers, e.DN)
			// The modifyTimestamp watermark moves past the container, or every later delta
			// would follow it again until a user or group changes.
			if ts := e.GetAttributeValue("modifyTimestamp"); ts > p.maxMod {
				p.maxMod = ts
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("looking for the containers that changed since the last pass under %q: %w", nc, err)
		}
	}
	return p.followContainers(ctx, containers)
}

// namingContexts returns the naming contexts of the root DSE that hold the users' or the
// groups' base DN, the deepest one for each.
func (s *Syncer) namingContexts(conn ldapConn) ([]string, error) {
	root, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"namingContexts"}, nil))
	if err != nil || len(root.Entries) == 0 {
		return nil, fmt.Errorf("reading the naming contexts of the root DSE: %w", errors.Join(err, classifyEmpty(root)))
	}
	all := root.Entries[0].GetAttributeValues("namingContexts")
	var out []string
	for _, base := range []string{s.cfg.Users.BaseDN, s.cfg.Groups.BaseDN} {
		if nc := holdingNC(all, base); nc != "" && !slices.ContainsFunc(out, func(o string) bool { return under(nc, o) }) {
			out = append(out, nc)
		}
	}
	return out, nil
}

// holdingNC returns the deepest of the naming contexts ncs that holds base, or "".
func holdingNC(ncs []string, base string) string {
	var nc string
	for _, n := range ncs {
		if under(base, n) && len(n) > len(nc) {
			nc = n
		}
	}
	return nc
}
