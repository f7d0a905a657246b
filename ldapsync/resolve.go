package ldapsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/internal/dn"
	"github.com/ldapscim/ldapscim/scim"
)

// pendingResource is a resource waiting for its references, kept encoded: on a first sync about
// half the users name a manager that is read later, and a decoded resource is several times
// larger than its JSON.
type pendingResource struct {
	raw    []byte
	rf     refs
	digest [16]byte
	mod    int64 // the entry's modifyTimestamp in Unix nanoseconds (0: none); see entryTime
}

// resolve turns r's DN references into ids. Until final, a reference to an entry not read yet
// makes it return false (the caller retries after the read); when final, references that still
// do not resolve are dropped: a DN that names no entry is not a member or manager.
func (p *pass) resolve(ctx context.Context, r *scim.Resource, rf refs, final bool) (ok bool, mgr cache.Ref, err error) {
	if rf.manager != "" {
		ref, ok, err := p.res.dn(ctx, rf.manager, final, nil)
		if err != nil || (!ok && !final) {
			return false, cache.Ref{}, err
		}
		if !ok && final {
			// A held deletion keeps its reports' manager (invariant 5, docs/architecture.md).
			ref, ok = p.core.Held.Manager(r.ID)
		}
		mgr = ref
		if ok {
			setManager(r, ref)
		}
	}
	if r.Type != scim.GroupType {
		return true, mgr, nil
	}
	members := make([]scim.Member, 0, len(rf.memberDNs)+len(rf.memberUIDs))
	for start := 0; start < len(rf.memberDNs); start += resolveChunk {
		chunk := rf.memberDNs[start:min(start+resolveChunk, len(rf.memberDNs))]
		pre, err := p.res.prefetch(ctx, chunk, final)
		if err != nil {
			return false, mgr, err
		}
		for i, d := range chunk {
			ref, ok, err := p.res.dn(ctx, d, final, pre.at(i))
			if err != nil || (!ok && !final) {
				return false, mgr, err
			}
			if ok && ref.ID != r.ID {
				members = append(members, scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display})
			}
		}
	}
	for _, u := range rf.memberUIDs {
		ref, ok, err := p.res.uid(ctx, u, final)
		if err != nil || (!ok && !final) {
			return false, mgr, err
		}
		if ok {
			members = append(members, scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display})
		}
	}
	// Sorted by id, one member per id (two DNs or a DN and a uid may name the same entry).
	slices.SortStableFunc(members, func(a, b scim.Member) int { return strings.Compare(a.Value, b.Value) })
	r.Members = slices.CompactFunc(members, func(a, b scim.Member) bool { return a.Value == b.Value })
	p.core.Held.KeepMembers(r)
	if err := p.holdMassRemoval(ctx, r); err != nil {
		return false, mgr, err
	}
	return true, mgr, nil
}

// setManager makes ref r's manager, if it is another user.
func setManager(r *scim.Resource, ref cache.Ref) {
	if ref.Type == scim.UserType && ref.ID != r.ID {
		ext, _ := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			r.Attributes[scim.SchemaEnterpriseUser] = ext
		}
		ext["manager"] = map[string]any{"value": ref.ID, "displayName": ref.Display}
	}
}

// verifyTentative re-resolves, once the read is complete, every resource that used a cached
// reference the read did not confirm, and queues those whose references changed.
func (p *pass) verifyTentative(ctx context.Context) error {
	stale := p.res.stale()
	mgrs, err := p.staleManagers(ctx)
	if err != nil {
		return err
	}
	stale = append(stale, mgrs...)
	if len(stale) == 0 {
		return nil
	}
	// The resources may still be in flight: write everything, then read them back.
	if err := p.flush(ctx); err != nil {
		return err
	}
	if err := p.drain(); err != nil {
		return err
	}
	for _, rc := range stale {
		// Without members: resolve restates a group's members from its references.
		rs, err := p.s.store.GetMany(ctx, rc.typ, []string{rc.id}, false)
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("%s %s: %w", rc.typ, rc.id, cache.ErrNotFound)
		}
		r := rs[0]
		if ext, ok := r.Attributes[scim.SchemaEnterpriseUser].(map[string]any); ok {
			delete(ext, "manager")
		}
		var mgr cache.Ref
		if rc.mgr != nil {
			mgr = *rc.mgr
			if held, ok := p.core.Held.Manager(rc.id); ok && mgr.ID == "" {
				mgr = held
			}
			setManager(r, mgr)
		} else if _, mgr, err = p.resolve(ctx, r, rc.rf, true); err != nil {
			return err
		}
		p.setSource(r, rc.digest, mgr)
		if err := p.queue(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// resolvePending resolves every entry that waited for references, now that the read is over.
func (p *pass) resolvePending(ctx context.Context) error {
	pending, spill := p.pending, p.spill
	p.pending, p.spill = nil, nil
	do := func(pr pendingResource) error {
		r := &scim.Resource{}
		if err := cache.DecodeResource(pr.raw, r); err != nil {
			return err
		}
		_, mgr, err := p.resolve(ctx, r, pr.rf, true)
		if err != nil {
			return err
		}
		p.setSource(r, pr.digest, mgr)
		if pr.mod != 0 {
			p.batchTimes[r.ID] = time.Unix(0, pr.mod).UTC()
		}
		return p.queue(ctx, r)
	}
	if spill != nil {
		return spill.each(do)
	}
	for i, pr := range pending {
		pending[i].raw = nil
		if err := do(pr); err != nil {
			return err
		}
	}
	return nil
}

// resolveDNOnServer resolves, in a delta pass, a DN the cache does not know through the
// directory: the entry's id (entryUUID or objectGUID), then the cached resource with that id.
// Renaming or moving an OU changes the DNs of everything below it without changing those
// entries: neither syncrepl nor uSNChanged reports them, so no delta re-reads them. A group
// edited afterwards names its members by the new DNs. The cached DN of such a resource stays
// old until the entry changes or a full pass reads it; its id is what counts.
func (p *pass) resolveDNOnServer(ctx context.Context, d string) (cache.Ref, bool, error) {
	idAttr := "entryUUID"
	if p.s.cfg.Dialect == DialectActiveDirectory {
		idAttr = "objectGUID"
	}
	conn, err := p.lookupConn(ctx)
	if err != nil {
		return cache.Ref{}, false, classify(fmt.Errorf("resolving %q: %w", d, err))
	}
	res, err := conn.Search(ldap.NewSearchRequest(d, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{idAttr}, nil))
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultInvalidDNSyntax) {
		return cache.Ref{}, false, nil
	}
	if err != nil {
		return cache.Ref{}, false, classify(fmt.Errorf("resolving %q: %w", d, err))
	}
	if len(res.Entries) != 1 {
		return cache.Ref{}, false, nil
	}
	id, ok := p.s.idOf(ldapEntry{res.Entries[0]})
	if !ok {
		return cache.Ref{}, false, nil
	}
	ref, err := p.s.store.Ref(ctx, id)
	if isNotFound(err) {
		return p.readNewUser(ctx, conn, d)
	}
	if err == nil && ref.Type != scim.UserType && ref.Type != scim.GroupType {
		return cache.Ref{}, false, nil
	}
	if err != nil {
		return cache.Ref{}, false, err
	}
	return ref, true, nil
}

// readNewUser reads into a delta pass a user that a reference names and that exists in the
// directory but neither in the cache nor among the entries read: it was created after the pass
// read the users (created, then added to a group, while the pass ran). Were the reference
// dropped, the member would be lost for good with syncrepl: the next delta's cookie is past the
// member add, so it does not look at the group again. Only once the users' read is over (an
// entry the stream has yet to deliver would be read twice), and only a user in scope (under the
// users base, matching the users filter), as the next pass reads it; reading it again then is
// harmless. The pass's modifyTimestamp watermark stays: this entry's timestamp says nothing
// about the others.
func (p *pass) readNewUser(ctx context.Context, conn ldapConn, d string) (cache.Ref, bool, error) {
	n, base := dn.Normalize(d), dn.Normalize(p.s.cfg.Users.BaseDN)
	if !p.usersRead || (n != base && !strings.HasSuffix(n, ","+base)) {
		return cache.Ref{}, false, nil
	}
	res, err := conn.Search(ldap.NewSearchRequest(d, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		p.s.cfg.Users.Filter, p.s.userAttrs(), p.s.searchControls()))
	if ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject, ldap.LDAPResultInvalidDNSyntax) {
		return cache.Ref{}, false, nil
	}
	if err != nil {
		return cache.Ref{}, false, classify(fmt.Errorf("reading %q: %w", d, err))
	}
	if len(res.Entries) != 1 {
		return cache.Ref{}, false, nil // out of scope: not a member, as in a full read
	}
	maxMod := p.maxMod
	err = p.read(ctx, scim.UserType, res.Entries[0].DN, ldapEntry{res.Entries[0]})
	p.maxMod = maxMod
	if err != nil {
		return cache.Ref{}, false, err
	}
	p.s.log.Debug("read a user created during the pass that a reference names", "dn", d)
	ref, ok := p.ents.byDNKey(dnKey(d))
	return ref, ok, nil
}
