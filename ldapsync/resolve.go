package ldapsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
	"github.com/ldapscim/ldapscim/cache"
	"github.com/ldapscim/ldapscim/scim"
)

// recheck names a resource resolved with tentative references, and its references.
type recheck struct {
	id     string
	typ    scim.ResourceType
	rf     refs
	digest [16]byte
	mgr    *cache.Ref // set instead of rf for a skipped user: what its manager DN resolves to now
}

// pendingResource is a resource waiting for its references, kept encoded: on a first sync about
// half the users name a manager that is read later, and a decoded resource is several times
// larger than its JSON.
type pendingResource struct {
	raw    []byte
	rf     refs
	digest [16]byte
}

// resolve turns r's DN references into ids. Until final, a reference to an entry not read yet
// makes it return false (the caller retries after the read); when final, references that still
// do not resolve are dropped: a DN that names no entry is not a member or manager.
func (p *pass) resolve(ctx context.Context, r *scim.Resource, rf refs, final bool) (ok bool, mgr cache.Ref, err error) {
	if rf.manager != "" {
		ref, ok, err := p.lookupDN(ctx, rf.manager, final)
		if err != nil || (!ok && !final) {
			return false, cache.Ref{}, err
		}
		if !ok && final {
			// A held deletion keeps its reports' manager (invariant 5, docs/architecture.md).
			ref, ok = p.heldManager(r.ID)
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
		pre, err := p.prefetchDNs(ctx, chunk, final)
		if err != nil {
			return false, mgr, err
		}
		for i, d := range chunk {
			ref, ok, err := p.lookupDNFrom(ctx, d, final, pre.at(i))
			if err != nil || (!ok && !final) {
				return false, mgr, err
			}
			if ok && ref.ID != r.ID {
				members = append(members, scim.Member{Value: ref.ID, Type: ref.Type, Display: ref.Display})
			}
		}
	}
	for _, u := range rf.memberUIDs {
		ref, ok, err := p.lookupUID(ctx, u, final)
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
	p.keepHeldMembers(r)
	if err := p.holdMassRemoval(ctx, r); err != nil {
		return false, mgr, err
	}
	return true, mgr, nil
}

// resolveChunk is how many member DNs of a group are resolved against the cache in one
// snapshot: a group of a million members costs a thousand reads, not a million, and the
// answers held at once stay small.
const resolveChunk = 1024

// preResolved holds the cache's answers for a chunk of DNs; nil when the cache was not asked.
type preResolved struct {
	refs []cache.Ref
	ok   []bool
}

// at returns the answer for the i-th DN of the chunk, or nil.
func (pr *preResolved) at(i int) *cachedDN {
	if pr == nil {
		return nil
	}
	return &cachedDN{ref: pr.refs[i], ok: pr.ok[i]}
}

// cachedDN is the cache's answer for one DN.
type cachedDN struct {
	ref cache.Ref
	ok  bool
}

// prefetchDNs asks the cache, in one snapshot, for the DNs of chunk that lookupDN would ask it
// for: those not read in this pass, unless the pass is a complete full pass at its end (which
// never asks). It returns nil when there are none.
func (p *pass) prefetchDNs(ctx context.Context, chunk []string, final bool) (*preResolved, error) {
	if p.full && final && p.sum.Partial == "" {
		return nil, nil
	}
	ask := make([]string, len(chunk))
	n := 0
	for i, d := range chunk {
		if _, ok := p.ents.byDNKey(dnKey(d)); !ok {
			ask[i] = d
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	refs, ok, err := p.s.store.ResolveDNs(ctx, ask)
	if err != nil {
		return nil, err
	}
	return &preResolved{refs: refs, ok: ok}, nil
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

// lookupDN finds the entry a DN names: first among entries read in this pass, then in the cache.
// In a full pass the cache's answer is tentative until the read is over (the entry may have gone,
// or its DN may now name another entry): it is recorded and checked by verifyTentative. A full
// pass whose read was complete does not ask the cache at the end: a DN it did not read names no
// entry.
func (p *pass) lookupDN(ctx context.Context, d string, final bool) (cache.Ref, bool, error) {
	return p.lookupDNFrom(ctx, d, final, nil)
}

// lookupDNFrom is lookupDN with the cache's answer for d already read (pre), or nil to ask.
func (p *pass) lookupDNFrom(ctx context.Context, d string, final bool, pre *cachedDN) (cache.Ref, bool, error) {
	key := dnKey(d)
	if ref, ok := p.ents.byDNKey(key); ok {
		return ref, true, nil
	}
	if p.full && final && p.sum.Partial == "" {
		return cache.Ref{}, false, nil
	}
	var ref cache.Ref
	var ok bool
	var err error
	if pre != nil {
		ref, ok = pre.ref, pre.ok
	} else {
		ref, ok, err = p.s.store.ResolveDN(ctx, d)
	}
	if err == nil && !ok && !p.full {
		ref, ok, err = p.resolveDNOnServer(ctx, d)
	}
	if err != nil || !ok || !p.full || final {
		return ref, ok, err
	}
	p.tentative[key] = ref
	p.usedTentative = true
	return ref, true, nil
}

// verifyTentative re-resolves, once the read is complete, every resource that used a cached
// reference the read did not confirm, and queues those whose references changed.
func (p *pass) verifyTentative(ctx context.Context) error {
	var stale []recheck
	for _, rc := range p.recheck {
		keys := append([]string{rc.rf.manager}, rc.rf.memberDNs...)
		for _, d := range keys {
			if d == "" {
				continue
			}
			k := dnKey(d)
			if t, ok := p.tentative[k]; ok {
				if now, _ := p.ents.byDNKey(k); now != t {
					stale = append(stale, rc)
					break
				}
			}
		}
	}
	p.recheck, p.tentative = nil, nil
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
			if held, ok := p.heldManager(rc.id); ok && mgr.ID == "" {
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

func (p *pass) lookupUID(ctx context.Context, uid string, final bool) (cache.Ref, bool, error) {
	if ref, ok := p.ents.byUIDValue(uid); ok {
		return ref, true, nil
	}
	if p.full && (!final || p.sum.Partial == "") {
		return cache.Ref{}, false, nil
	}
	ids, err := p.s.store.Lookup(ctx, cache.IndexUserName, uid)
	if err != nil || len(ids) != 1 {
		return cache.Ref{}, false, err
	}
	u, err := p.s.store.Get(ctx, scim.UserType, ids[0])
	if errors.Is(err, cache.ErrNotFound) {
		return cache.Ref{}, false, nil
	} else if err != nil {
		return cache.Ref{}, false, err
	}
	return cache.Ref{ID: u.ID, Type: scim.UserType, Display: u.DisplayName()}, true, nil
}

// resolvePending resolves every entry that waited for references, now that the read is over.
func (p *pass) resolvePending(ctx context.Context) error {
	pending, spill := p.pending, p.spill
	p.pending, p.spill = nil, nil
	do := func(pr pendingResource) error {
		r := &scim.Resource{}
		if err := json.Unmarshal(pr.raw, r); err != nil {
			return err
		}
		_, mgr, err := p.resolve(ctx, r, pr.rf, true)
		if err != nil {
			return err
		}
		p.setSource(r, pr.digest, mgr)
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
	if isNotFound(err) || err == nil && ref.Type != scim.UserType && ref.Type != scim.GroupType {
		return cache.Ref{}, false, nil
	}
	if err != nil {
		return cache.Ref{}, false, err
	}
	return ref, true, nil
}
